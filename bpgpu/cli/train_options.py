"""``bpgpu train`` options for the user's own data and the training features: ``--data FILE
--target COLUMN`` (CSV/NPZ via :mod:`bpgpu.data.tabular`), the held-out split, the learning-rate
schedule, checkpoints and early stopping. :mod:`bpgpu.cli.train` adds these to its parser and calls
:func:`load_user_data` / :func:`make_schedule`."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpgpu.errors import ConfigError

SCHEDULES = ("step", "constant", "cosine", "one-cycle", "plateau", "invscaling")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"--validation-split takes a fraction in [0, 1), e.g. 0.2; got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"--dropout takes the probability of dropping a hidden unit, in [0, 1), e.g. 0.2; got {text!r}")
    return value


def _positive(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (value > 0.0 and value < float("inf")):
            raise argparse.ArgumentTypeError(f"{flag} takes a finite number > 0, e.g. 1.0; got {text!r}")
        return value
    return parse


def _patience(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--early-stopping takes a patience in epochs (a whole number ≥ 0); got {text!r}")
    return int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own data (instead of the digits)")
    g.add_argument("--data", metavar="FILE", default=None,
                   help="a CSV/TSV (header row, numeric features) or NPZ (one array per column) to train on")
    g.add_argument("--target", metavar="COLUMN", default=None, help="the column of --data to predict")
    g.add_argument("--task", default="auto", choices=("auto", "classification", "regression"),
                   help="auto: text or whole-number targets are classes, other numbers regression (default auto)")
    g.add_argument("--validation-split", type=_fraction, default=0.2, metavar="FRACTION",
                   help="share of --data held out (stratified) to validate and report on; 0: none (default 0.2)")
    t = p.add_argument_group("schedule, regularisation, checkpoints, early stopping")
    t.add_argument("--schedule", default="step", choices=SCHEDULES,
                   help="learning-rate schedule per epoch: step (--lr-step/--lr-gamma), constant, cosine (after "
                        "--warmup epochs), one-cycle (peak --lr), plateau (x--lr-gamma after 10 epochs without "
                        "improvement, scikit-learn's 'adaptive'), invscaling (scikit-learn's) (default step)")
    t.add_argument("--warmup", type=int, default=0, metavar="EPOCHS", help="linear warm-up epochs of --schedule cosine")
    t.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="write a checkpoint after every epoch (PATH may contain {epoch})")
    t.add_argument("--resume", metavar="PATH", default=None,
                   help="continue from a checkpoint (same options; --epochs is the total)")
    g.add_argument("--standardize", action="store_true",
                   help="z-score each feature by the training rows' mean and std; the saved model still takes raw "
                        "features (the scaling is folded into the first layer after training)")
    t.add_argument("--dropout", type=_rate, default=0.0, metavar="P",
                   help="drop each hidden unit with probability P in training (inverted dropout; default 0)")
    t.add_argument("--clip-norm", type=_positive("--clip-norm"), default=None, metavar="C",
                   help="scale each step's gradient down to global norm C when larger (torch's clip_grad_norm_)")
    t.add_argument("--clip-value", type=_positive("--clip-value"), default=None, metavar="C",
                   help="clip each gradient entry to [-C, C] (torch's clip_grad_value_)")
    t.add_argument("--class-weight", default=None, metavar="balanced|LABEL=W,…",
                   help="weigh each class's rows: 'balanced' (n / (k·n_c), scikit-learn's) or LABEL=W pairs, e.g. "
                        "setosa=2,virginica=0.5 (labels as in the data; others weigh 1)")
    t.add_argument("--early-stopping", type=_patience, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better held-out cost (training cost without one) "
                        "and keep the best epoch's weights")


@dataclass
class UserData:
    """The arrays ``bpgpu train`` uses: training rows, held-out rows (None without a split)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray | None
    y_held: np.ndarray | None
    name: str
    classes: np.ndarray | None  # None: regression
    scaler: tuple[np.ndarray, np.ndarray] | None = None  # --standardize: (mean, std) of the training rows
    raw: np.ndarray | None = None                         # the unscaled rows reported on (held-out, else training)

    @property
    def n_outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)

    def describe_target(self, target: str) -> str:
        if self.classes is None:
            text = f"target {target!r}: regression (identity output, quadratic cost)"
        else:
            shown = ", ".join(str(c) for c in self.classes[:10]) + (", …" if len(self.classes) > 10 else "")
            text = f"target {target!r}: {len(self.classes)} classes ({shown})"
        return text + "".join("\n           " + line for line in self._scaling_lines())

    def _scaling_lines(self) -> list[str]:
        if self.scaler is not None:
            return ["features standardized with the training rows' mean and std (folded into W¹, b¹ after training: "
                    "the saved model takes raw features)"]
        std = self.x_train.std(axis=0)
        spread = std[std > 0]
        if spread.size and (spread.max() / spread.min() > 100 or np.abs(self.x_train.mean(axis=0)).max() > 100):
            return [f"note: the features' scales differ widely (std {spread.min():.3g} to {spread.max():.3g}); "
                    "--standardize usually trains much better"]
        return []


def load_data(args: argparse.Namespace) -> UserData:
    """The training data ``bpgpu train`` was asked for: ``--data``, ``--mnist`` or the bundled digits
    (whose test split is the held-out part)."""
    from bpgpu import datasets

    if args.data:
        return load_user_data(args)
    if args.target:
        raise ConfigError("--target names a column of --data FILE; give --data too.")
    if args.mnist:
        (x, y), (xt, yt) = datasets.load_mnist(args.mnist, dtype=args.dtype)
        return UserData(x, y, xt, yt, f"MNIST ({args.mnist})", np.arange(int(y.max()) + 1))
    (x, y), (xt, yt) = datasets.load_digits(dtype=args.dtype)
    return UserData(x, y, xt, yt, "digits (bundled, 8×8)", np.arange(int(y.max()) + 1))


def standardize(args: argparse.Namespace, data: UserData) -> UserData:
    """``--standardize``: z-score every feature by the training rows' mean and std (constant features: std 1)."""
    if not args.standardize:
        return data
    mean = data.x_train.mean(axis=0, dtype=np.float64)
    std = data.x_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    scale = lambda x: None if x is None else ((x - mean) / std).astype(data.x_train.dtype)  # noqa: E731
    raw = data.x_held if data.x_held is not None else data.x_train
    return UserData(scale(data.x_train), data.y_train, scale(data.x_held), data.y_held, data.name, data.classes,
                    (mean, std), raw)


def fold_scaler(net: Any, data: UserData, x: Any) -> Any:
    """After training on standardized features: W¹ ← W¹ diag(1/σ), b¹ ← b¹ − W¹_new μ, so the network takes raw
    features (exact up to rounding); returns the raw rows matching ``x`` (the rows reported on)."""
    if data.scaler is None:
        return x
    from bpgpu.backend.arrays import to_host

    mean, std = data.scaler
    weights = [np.asarray(to_host(w), dtype=np.float64) for w in net.weights]
    biases = [np.asarray(to_host(b), dtype=np.float64) for b in net.biases]
    weights[0] = weights[0] / std[None, :]
    biases[0] = biases[0] - weights[0] @ mean
    net.set_parameters(weights, biases)
    return data.raw


def load_user_data(args: argparse.Namespace) -> UserData:
    """``--data``/``--target``/``--task``/``--validation-split`` → arrays (errors name the flags)."""
    from bpgpu.data.tabular import load_table, split

    if not args.target:
        raise ConfigError("--data needs --target COLUMN: the column to predict.")
    if args.mnist:
        raise ConfigError("--data and --mnist both choose the training data; give one of them.")
    table = load_table(args.data, args.target, dtype=args.dtype, task=args.task,
                       names={"path": "--data", "target": "--target", "task": "--task"})
    y_of = (lambda t: t.y) if table.classes is not None else (lambda t: t.y.astype(args.dtype).reshape(-1, 1))
    name = f"{args.data} (target {args.target!r})"
    if args.validation_split == 0:
        return UserData(table.x, y_of(table), None, None, name, table.classes)
    train, held = split(table, args.validation_split, seed=args.seed)
    return UserData(train.x, y_of(train), held.x, y_of(held), name, table.classes)


def class_weight(args: argparse.Namespace, classes: np.ndarray | None) -> Any:
    """``--class-weight`` as fit's class_weight: "balanced" or {class code: weight} (labels as the data spells them)."""
    text = args.class_weight
    if text is None:
        return None
    if classes is None:
        raise ConfigError("--class-weight needs classes, but the target is a regression target (see --task).")
    if text.strip() == "balanced":
        return "balanced"
    names = {str(c): code for code, c in enumerate(classes)}
    weights = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        label, sep, value = pair.rpartition("=")
        if not sep or label.strip() not in names:
            shown = ", ".join(list(names)[:10])
            raise ConfigError(f"--class-weight {pair!r}: expected LABEL=WEIGHT with a label of the data ({shown}) or 'balanced'.")
        try:
            weights[names[label.strip()]] = float(value)
        except ValueError:
            raise ConfigError(f"--class-weight {pair!r}: the weight {value!r} is not a number.") from None
        if not (weights[names[label.strip()]] >= 0 and weights[names[label.strip()]] < float("inf")):
            raise ConfigError(f"--class-weight {pair!r}: a weight must be a finite number ≥ 0.")
    return weights


def describe_features(args: argparse.Namespace) -> str:
    """", dropout 0.2, clip norm 1" — the training features asked for, for the header line."""
    parts = [f"dropout {args.dropout:g}"] if args.dropout else []
    parts += [f"clip norm {args.clip_norm:g}"] if args.clip_norm is not None else []
    parts += [f"clip value {args.clip_value:g}"] if args.clip_value is not None else []
    parts += [f"class weight {args.class_weight}"] if args.class_weight is not None else []
    return "".join(", " + part for part in parts)


def make_schedule(args: argparse.Namespace, lr: float, n_train: int, has_validation: bool) -> Any:
    """``--schedule`` (with ``--lr``, ``--lr-step``, ``--lr-gamma``, ``--warmup``, ``--epochs``) → a schedule."""
    from bpgpu import schedules

    kind = args.schedule
    if args.warmup and kind != "cosine":
        raise ConfigError(f"--warmup applies to --schedule cosine, not --schedule {kind}.")
    try:
        if kind == "step":
            every = args.lr_step if args.lr_step is not None else (0 if args.optimizer in ("adam", "adamw") else 20)
            return schedules.step(lr, every, args.lr_gamma) if every > 0 else schedules.constant(lr)
        if kind == "constant":
            return schedules.constant(lr)
        if kind == "cosine":
            return schedules.warmup_cosine(lr, args.epochs, warmup=args.warmup)
        if kind == "one-cycle":
            return schedules.one_cycle(lr, args.epochs)
        if kind == "plateau":
            return schedules.plateau(lr, factor=args.lr_gamma, monitor="val_cost" if has_validation else "cost")
        return schedules.invscaling(lr, samples_per_epoch=n_train)
    except ConfigError as exc:  # in the flags' terms
        text = str(exc)
        for arg, flag in (("warmup", "--warmup"), ("epochs", "--epochs"), ("factor", "--lr-gamma"),
                          ("gamma", "--lr-gamma"), ("every", "--lr-step"), ("max_lr", "--lr"), ("lr", "--lr")):
            text = re.sub(rf"(?<![\w-]){arg}(=| (?=must))", flag + " ", text)
        raise ConfigError(f"--schedule {kind}: {text}") from None


def r_squared(net: Any, x: np.ndarray, y: np.ndarray) -> float:
    """R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² of a regression network on host rows (the score scikit-learn reports)."""
    from bpgpu.backend.arrays import to_host

    pred = np.asarray(to_host(net.forward(x)), dtype=np.float64).reshape(y.shape)
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else float("nan")
