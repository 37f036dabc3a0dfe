"""``bpgpu train``: train an MLP on the bundled digits (or the user's MNIST) and report test accuracy.

The default — [64, 128, 64, 10], ReLU, softmax + cross-entropy, SGD η = 0.05 (×0.2 every 20 epochs),
momentum 0.9, L2 weight_decay 1e-4, batch 32, 50 epochs, seed 0 — reaches about 98% on the digits'
400 test images in about a second on a CPU. The device is ``--device``, else ``BPGPU_DEVICE``, else cpu.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from bpgpu.cli import train_options
from bpgpu.errors import ConfigError, TrainingInterrupted

DEFAULT_HIDDEN_SIZES = (128, 64)


def _sizes(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", ",").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes layer widths like 64,128,64,10; got {text!r}") from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train an MLP on the bundled digits, MNIST or your CSV/NPZ (--data) and report accuracy",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="layer widths, e.g. 64,128,64,10 (default: inputs,128,64,classes)")
    p.add_argument("--hidden", default="relu", help="hidden activation: sigmoid, tanh, relu, identity (default relu)")
    p.add_argument("--output", default=None, help="output activation: softmax, sigmoid, identity (default softmax)")
    p.add_argument("--cost", default=None, help="cross_entropy or quadratic (default cross_entropy)")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam", "adamw"),
                   help="sgd, adam, or adamw (Adam with decoupled weight decay: --weight-decay is its λ) (default sgd)")
    p.add_argument("--lr", type=float, default=None, help="learning rate η (default 0.05 for sgd, 0.001 for adam)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9; 0 = plain SGD)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2, Nielsen's λ/n (default 1e-4)")
    p.add_argument("--lr-step", type=int, default=None,
                   help="multiply η by --lr-gamma every this many epochs (0: constant η; default 20 for sgd, 0 for adam)")
    p.add_argument("--lr-gamma", type=float, default=0.2, help="the step decay factor (default 0.2)")
    p.add_argument("--epochs", type=int, default=50, help="default 50")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--device", default=None, help="cpu, gpu, cuda:N, auto (default: BPGPU_DEVICE, else cpu)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="default float32")
    p.add_argument("--precision", default=None, choices=("float32", "float64", "mixed16", "mixedbf16"),
                   help="mixed16: float16 math, float32 master weights, dynamic loss scaling (default: --dtype)")
    p.add_argument("--tf32", action="store_true", default=None, help="float32 products in TF32 on a GPU (default off; BPGPU_TF32)")
    p.add_argument("--seed", type=int, default=0, help="initial weights and shuffling (default 0)")
    p.add_argument("--save", metavar="PATH", default=None, help="save the trained model (load with bpgpu.load)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="train on MNIST IDX files in DIR instead of the digits")
    p.add_argument("--plot", metavar="PATH", default=None, help="save cost/accuracy/gradient-norm plots (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--distributed", default="auto", choices=("auto", "none", "mpi", "nccl"),
                   help="data-parallel training: auto = MPI when started by mpirun (mpirun -np N bpgpu train), "
                        "else one process; nccl = NCCL between GPUs (default auto)")
    train_options.add_arguments(p)  # --data/--target/--validation-split, --schedule, --checkpoint, …
    p.add_argument("--resume-allow", metavar="WHAT", default="",
                   help="with --resume: continue although the data and/or optimizer options differ from the "
                        "checkpoint's run (data, optimizer, or data,optimizer); otherwise that is refused")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bpgpu import distributed

    comm = distributed.init(args.distributed)
    with contextlib.ExitStack() as stack:
        stack.enter_context(distributed.abort_on_error(comm))  # one rank failing stops all (no hang)
        if comm.rank != 0:  # only rank 0 reports
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        return _train(args, comm)


def check_options(args: argparse.Namespace) -> None:
    """Every option that can be checked without the data, before anything runs (ConfigError naming the
    flag): counts, and that --save / --plot can be written (folder exists, a regular file, matplotlib
    installed and a suffix it writes) — so a typo never costs a whole training run. Fills in the
    optimizer-dependent default of --lr-step (SGD's tuned step decay is not Adam's)."""
    from bpgpu.io.format import check_target
    from bpgpu.plot import INSTALL_HINT, check_plot_path

    if args.lr_step is None:
        args.lr_step = 0 if args.optimizer in ("adam", "adamw") else 20
    for flag, value, low in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1),
                             ("--lr-step", args.lr_step, 0)):
        if value < low:
            raise ConfigError(f"{flag} must be an integer ≥ {low}; got {value}.")
    if args.save:
        check_target(args.save, what=f"--save {args.save}")
    if getattr(args, "checkpoint", None):
        from bpgpu.training.resume import check_checkpoint_path

        try:
            check_checkpoint_path(args.checkpoint, args.epochs)
        except TypeError as exc:
            raise ConfigError(f"--checkpoint: {exc}") from None
    if args.plot:
        try:
            check_plot_path(args.plot, what="--plot")
        except ImportError:
            raise ConfigError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}; or leave out --plot.") from None


def _device_note(args: argparse.Namespace, net: Any) -> str | None:
    """What BPGPU_DEVICE=auto / --device auto chose, and why (None when no automatic choice was made)."""
    spec = args.device if args.device is not None else os.environ.get("BPGPU_DEVICE")
    if not isinstance(spec, str) or spec.strip().lower() != "auto":
        return None
    source = "--device auto" if args.device is not None else "BPGPU_DEVICE=auto"
    if net.backend.name == "cupy":
        return f"{net.backend.label} ({source}: a usable GPU was found)"
    from bpgpu.backend.device import cuda_status
    from bpgpu.cli.main import cli_syntax

    return f"{net.backend.label} ({source}: no usable GPU: {cli_syntax(cuda_status(0))})"


def _check_sizes(sizes: list[int], n_features: int, n_outputs: int, data_name: str) -> None:
    """--sizes against the data, before the header is printed (ConfigError naming --sizes)."""
    if len(sizes) < 2:
        raise ConfigError(f"--sizes needs at least an input and an output layer, e.g. {n_features},128,{n_outputs}.")
    if sizes[0] != n_features:
        raise ConfigError(f"--sizes starts with {sizes[0]} inputs but the {data_name} data has {n_features} features; "
                          f"start it with {n_features} (e.g. --sizes {n_features},{','.join(map(str, sizes[1:]))}).")
    if sizes[-1] != n_outputs and not (sizes[-1] == 1 and n_outputs == 2):
        raise ConfigError(f"--sizes ends with {sizes[-1]} outputs but the {data_name} data needs {n_outputs} "
                          f"({'one per class' if n_outputs > 1 else 'one target'}); end it with {n_outputs} (e.g. --sizes {','.join(map(str, sizes[:-1]))},{n_outputs}).")


def _interrupted(exc: KeyboardInterrupt, net: Any, args: argparse.Namespace, root: bool) -> int:
    """Ctrl-C / SIGTERM during fit: one line saying where it stopped and what was kept; 128 + signal."""
    name = getattr(exc, "signal", "SIGINT")
    code = 128 + int(getattr(signal, str(name), signal.SIGINT))
    if not isinstance(exc, TrainingInterrupted):  # not fit's step-boundary stop: the state is not trustworthy
        print(f"bpgpu train: interrupted ({name}) outside a training step boundary; nothing was saved.", file=sys.stderr)
        return code
    where = f" after epoch {exc.epoch}, batch {exc.batch}" if exc.epoch is not None else ""
    kept = []
    if exc.checkpoint:
        kept.append(f"checkpoint {exc.checkpoint} (continue with --resume {exc.checkpoint})")
    if args.save and root:
        kept.append(f"model {net.save(args.save)}")
    print(f"bpgpu train: interrupted ({name}) at a step boundary{where}; "
          f"{'kept ' + ', '.join(kept) if kept else 'nothing saved (no --save or --checkpoint given)'}.", file=sys.stderr)
    return code


def _resume(args: argparse.Namespace) -> Any:
    """--resume PATH [--resume-allow data,optimizer] as fit's resume= (a path or a bpgpu.Resume)."""
    allow = tuple(a for a in args.resume_allow.replace(" ", ",").split(",") if a)
    if allow and not args.resume:
        raise ConfigError("--resume-allow needs --resume PATH (the checkpoint to continue from).")
    if not args.resume:
        return None
    from bpgpu.training.resume import ALLOW, Resume

    bad = [a for a in allow if a not in ALLOW]
    if bad:
        raise ConfigError(f"--resume-allow takes {' and/or '.join(ALLOW)} (comma-separated); got {','.join(bad)}.")
    return Resume(args.resume, allow=allow) if allow else args.resume


def _train(args: argparse.Namespace, comm: Any) -> int:
    import bpgpu

    root = comm.rank == 0
    check_options(args)
    _resume(args)  # a bad --resume-allow fails before the header
    if args.device is None and comm.name == "nccl":
        args.device = comm.device  # this rank's GPU

    data = train_options.standardize(args, train_options.load_data(args))  # --data FILE / --mnist DIR / the digits
    class_weight = train_options.class_weight(args, data.classes)  # --class-weight, checked before training
    x_train, y_train, x_test, y_test, data_name = data.x_train, data.y_train, data.x_held, data.y_held, data.name
    held = "test" if not args.data else "held-out" if x_test is not None else "training"
    n_features = x_train.shape[1]
    sizes = args.sizes or [n_features, *DEFAULT_HIDDEN_SIZES, data.n_outputs]
    _check_sizes(sizes, n_features, data.n_outputs, data_name)
    output = args.output or ("identity" if data.classes is None else None)  # regression: identity output
    net = bpgpu.MLP(sizes, hidden=args.hidden, output=output, cost=args.cost, dtype=args.dtype,
                    precision=args.precision, tf32=args.tf32,
                    device=args.device, seed=args.seed)
    if net.output != "softmax" and net.sizes[-1] > 1 and data.classes is not None:  # sigmoid outputs learn one-hot rows
        import numpy as np

        eye = np.eye(net.sizes[-1], dtype=args.dtype)
        y_train, y_test = eye[y_train], (eye[y_test] if y_test is not None else None)
    if x_test is None:  # no held-out split: report on the training rows
        x_test, y_test = x_train, y_train
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer in ("adam", "adamw") else 0.05)
    schedule = train_options.make_schedule(args, lr, len(x_train), held != "training")
    if args.optimizer == "adam":
        optimizer: Any = bpgpu.Adam(schedule=schedule, weight_decay=args.weight_decay)
    elif args.optimizer == "adamw":
        optimizer = bpgpu.AdamW(schedule=schedule, weight_decay=args.weight_decay)
    else:
        optimizer = bpgpu.SGD(schedule=schedule, momentum=args.momentum, weight_decay=args.weight_decay)
    print(f"data:      {data_name}: {len(x_train)} training, " + (f"{len(x_test)} {held} examples" if held != "training" else "no held-out examples"))
    if args.data:
        print(f"           {data.describe_target(args.target)}")
    print(f"network:   {net!r}, {net.num_parameters:,} parameters")
    note = _device_note(args, net)
    if note:
        print(f"device:    {note}")
    print(f"optimizer: {optimizer!r}, batch {args.batch_size}, {args.epochs} epochs{train_options.describe_features(args)}")
    if comm.size > 1:
        print(f"parallel:  {comm.describe()}; each rank takes 1/{comm.size} of every batch")

    if net.backend.is_gpu:  # first-use kernel compile (NVRTC) and cuBLAS load, kept out of epoch 1's time
        from bpgpu.engines.warmup import warm_up

        print(f"warm-up:   {warm_up(net, optimizer, args.batch_size):.2f} s (first-use kernel compile and library load; not in the epoch times)")
    start = time.perf_counter()
    try:
        history = net.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                          validation_data=(x_test, y_test) if held != "training" else None, seed=args.seed,
                          progress=not args.no_progress, comm=comm, early_stopping=args.early_stopping,
                          checkpoint=args.checkpoint, resume=_resume(args), dropout=args.dropout,
                          clip_norm=args.clip_norm, clip_value=args.clip_value, class_weight=class_weight)
    except KeyboardInterrupt as exc:  # fit stops at a step boundary (TrainingInterrupted)
        if isinstance(exc, TrainingInterrupted):  # --standardize: the saved model takes raw features too
            train_options.fold_scaler(net, data, x_test)
        return _interrupted(exc, net, args, root)
    seconds = time.perf_counter() - start
    x_test = train_options.fold_scaler(net, data, x_test)  # --standardize: from here on the model takes raw features
    result = net.evaluate(x_test, y_test)
    accuracy = result["accuracy"]
    shown = f"{100 * accuracy:.2f}%" if accuracy is not None else "n/a (regression)"
    if data.classes is None:
        shown += f", R² {train_options.r_squared(net, x_test, y_test):.4f}"
    print(f"{held} accuracy: {shown} ({result['n']} examples), {held} cost {result['cost']:.4f}")
    print(f"time: {seconds:.2f} s for {len(history)} epochs ({seconds / max(len(history), 1):.3f} s/epoch) on {net.backend.label}")
    if args.save and root:
        print(f"saved:     {net.save(args.save)}")
    if args.plot and root:
        print(f"plot:      {bpgpu.plot_history(history, args.plot, title=repr(net))}")
    return 0
