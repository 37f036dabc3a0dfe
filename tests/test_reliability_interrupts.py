"""Reliability, interrupts and storage faults with real processes: SIGINT/SIGTERM into a child that
trains (``bpgpu train`` and ``fit``) stop it at a step boundary, keep what was asked for and resume to
bit-identical weights; a file-size limit (RLIMIT_FSIZE, the storage fault a test can make without
mounting a tmpfs) while saving leaves the previous file and no temporary file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bpgpu

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and resource limits")

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "BPGPU_DEVICE": "cpu",
       "PYTHONUNBUFFERED": "1"}

# A fit that announces each epoch on stdout (so the parent can signal it mid-run), slow enough
# (many small batches) that the signal lands inside an epoch.
TRAINER = r"""
import sys, numpy as np, bpgpu
ck, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.normal(size=(12000, 20)); y = (x[:, 0] > 0).astype(np.int64)
net = bpgpu.MLP([20, 64, 2], dtype="float64", seed=0)
print("ready", flush=True)
try:
    net.fit(x, y, epochs, 4, optimizer=bpgpu.SGD(0.01, momentum=0.9), seed=0, progress=False,
            checkpoint=ck if ck != "-" else None)
except bpgpu.TrainingInterrupted as exc:
    net.save(out)
    print("interrupted", exc.signal, exc.epoch, exc.batch, exc.checkpoint, flush=True)
    sys.exit(3)
net.save(out)
print("finished", flush=True)
"""


def _uninterrupted(epochs: int) -> bpgpu.MLP:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12000, 20))
    y = (x[:, 0] > 0).astype(np.int64)
    net = bpgpu.MLP([20, 64, 2], dtype="float64", seed=0)
    net.fit(x, y, epochs, 4, optimizer=bpgpu.SGD(0.01, momentum=0.9), seed=0, progress=False)
    return net, x, y


def _params(net):
    w, b = net.get_parameters()
    return w + b


def _signal_child(script: str, args: list[str], sig: int, delay: float) -> tuple[int, str, str]:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_fit_at_a_step_boundary_and_the_resume_is_bit_identical(tmp_path, sig):
    ck, out = tmp_path / "ck.npz", tmp_path / "net.npz"
    code, stdout, stderr = _signal_child(TRAINER, [str(ck), str(out), "6"], sig, 0.4)
    assert code == 3, (stdout, stderr)
    words = stdout.split()
    assert words[-5] == "interrupted" and words[-4] == signal.Signals(sig).name and words[-1] == str(ck)
    stopped = bpgpu.load(out)
    # the saved network is exactly the checkpoint's (a step boundary, nothing half-applied)
    state = bpgpu.io.checkpoint.load(ck)
    assert all(np.array_equal(a, b) for a, b in zip(_params(stopped), state.weights + state.biases))
    whole, x, y = _uninterrupted(6)
    resumed = bpgpu.MLP([20, 64, 2], dtype="float64", seed=0)
    resumed.fit(x, y, 6, 4, resume=ck, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(_params(resumed), _params(whole)))
    assert sorted(os.listdir(tmp_path)) == ["ck.npz", "net.npz"]


def test_sigkill_after_a_checkpoint_resumes_bit_identically(tmp_path):
    ck, out = tmp_path / "ck-{epoch}.npz", tmp_path / "net.npz"
    proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(ck), str(out), "6"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not (tmp_path / "ck-1.npz").exists() and time.time() < deadline:
            time.sleep(0.02)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = sorted(p.name for p in tmp_path.iterdir())
    assert "ck-1.npz" in done and not any(n.startswith(".bpgpu-") for n in done), done
    last = max(int(n[3:-4]) for n in done if n.startswith("ck-"))
    whole, x, y = _uninterrupted(6)
    resumed = bpgpu.MLP([20, 64, 2], dtype="float64", seed=0)
    resumed.fit(x, y, 6, 4, resume=tmp_path / f"ck-{last}.npz", progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(_params(resumed), _params(whole)))


CLI = r"""
import sys
from bpgpu.cli.main import main
print("ready", flush=True)
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_in_bpgpu_train_saves_and_exits_130_with_one_line(tmp_path):
    model, ck = tmp_path / "m.npz", tmp_path / "ck.npz"
    code, stdout, stderr = _signal_child(
        CLI, ["train", "--epochs", "400", "--batch-size", "4", "--no-progress", "--save", str(model),
              "--checkpoint", str(ck)], signal.SIGINT, 1.5)
    assert code == 130, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted (SIGINT) at a step boundary" in lines[0], stderr
    assert "Traceback" not in stderr and str(model) in lines[0]
    assert bpgpu.load(model).sizes == [64, 128, 64, 10]
    assert bpgpu.io.checkpoint.load(ck).config["sizes"] == [64, 128, 64, 10]


# -- storage faults ------------------------------------------------------------------------------------

FSIZE = r"""
import os, resource, signal, sys, numpy as np, bpgpu
path, limit, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG as an OSError instead of death by signal
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
net = bpgpu.MLP([200, 300, 10], dtype="float64", seed=5)     # ~500 kB, above the limit
try:
    if what == "save":
        net.save(path)
    else:
        x = np.zeros((16, 200)); y = np.arange(16) % 10
        net.fit(x, y, 2, 8, checkpoint=path, progress=False, seed=0)
except OSError as exc:
    print("oserror", exc.errno, flush=True)
    sys.exit(0)
print("no error", flush=True)
"""


@pytest.mark.parametrize("what", ["save", "checkpoint"])
def test_a_file_size_limit_while_saving_leaves_the_old_file_and_no_temporary(tmp_path, what):
    path = tmp_path / ("m.npz" if what == "save" else "ck.npz")
    old = bpgpu.MLP([2, 2], seed=0)
    if what == "save":
        old.save(path)
    else:
        old.fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]), 1, 2, checkpoint=path, progress=False, seed=0)
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", FSIZE, str(path), "65536", what], capture_output=True,
                            text=True, env=ENV, timeout=120)
    assert result.returncode == 0 and result.stdout.split()[:2] == ["oserror", "27"], (result.stdout, result.stderr)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]
