"""Files: saving is atomic under SIGKILL, loading rejects every damaged or unsafe file with
ModelFileError (fuzzed with random byte corruptions), and a training run killed mid-way resumes from
its last checkpoint to the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import ModelFileError
from bpgpu.io import format as fmt

CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "BPGPU_DEVICE": "cpu"}


def _same_parameters(a: bpgpu.MLP, b: bpgpu.MLP) -> bool:
    (wa, ba), (wb, bb) = a.get_parameters(), b.get_parameters()
    return all(np.array_equal(p, q) for p, q in zip(wa + ba, wb + bb))


# -- atomic save -----------------------------------------------------------------------------------

SAVER = """
import sys, bpgpu
path = sys.argv[1]
nets = [bpgpu.MLP([600, 1500, 10], dtype="float64", seed=s) for s in (1, 2)]
print("ready", flush=True)
i = 0
while True:
    nets[i % 2].save(path)
    i += 1
"""


@pytest.mark.slow
def test_a_save_killed_at_random_times_leaves_the_old_or_the_new_file(tmp_path):
    """SIGKILL a process that keeps saving (alternately two networks) over the same path, ~20
    times at random moments: the file at the path always loads, and equals one of the two."""
    path = tmp_path / "model.npz"
    versions = [bpgpu.MLP([600, 1500, 10], dtype="float64", seed=s) for s in (1, 2)]
    versions[0].save(path)
    rng = np.random.default_rng(0)
    kills, mid_write, deadline = 0, 0, time.monotonic() + 13
    while kills < 20 and time.monotonic() < deadline:
        child = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, env=CHILD_ENV)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        kills += 1
        leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        mid_write += bool(leftovers)
        for p in leftovers:  # a killed writer leaves its temp file, never a half-written target
            p.unlink()
        loaded = bpgpu.load(path)
        assert any(_same_parameters(loaded, v) for v in versions), f"kill {kills}: the file is neither version"
    assert kills >= 5, f"only {kills} kills in the time allowed"
    assert mid_write >= 1, "no kill landed during a write; the test did not exercise atomicity"


def test_a_failed_save_leaves_the_previous_file_and_no_temp_file(saved, monkeypatch):
    net, path = saved
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", boom)
    other = bpgpu.MLP([4, 5, 3], hidden="tanh", dtype="float64", seed=4)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# -- load rejects damaged and unsafe files -------------------------------------------------------

def _rewrite(path, header_update=None, arrays_update=None, drop=()):
    """Rewrite a saved file with its header and arrays edited (no validation)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays.pop(fmt.HEADER_KEY)).decode())
    if header_update:
        header.update(header_update(header) if callable(header_update) else header_update)
    arrays.update(arrays_update or {})
    for name in drop:
        arrays.pop(name)
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **{fmt.HEADER_KEY: blob}, **arrays)


def _expect_model_file_error(path, *words):
    with pytest.raises(ModelFileError) as info:
        bpgpu.load(path)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert str(path) in msg, msg
    for word in words:
        assert word in msg, (word, msg)
    return msg


def test_save_load_round_trip_is_exact(saved):
    net, path = saved
    loaded = bpgpu.load(path)
    assert loaded.config() == net.config()
    assert _same_parameters(loaded, net)


@pytest.mark.parametrize("keep", [0, 1, 30, 100, 0.5, -1])
def test_truncated_files_are_rejected(saved, keep):
    _, path = saved
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:n])
    _expect_model_file_error(path, "truncated")


def test_files_that_are_not_npz_are_rejected(tmp_path):
    for name, content in [("text.npz", b"hello, world\n" * 10), ("empty.npz", b""),
                          ("npy.npz", b"\x93NUMPY" + b"\0" * 100), ("zip.npz", b"PK\x05\x06" + b"\0" * 18)]:
        path = tmp_path / name
        path.write_bytes(content)
        _expect_model_file_error(path)


def test_a_plain_npz_without_a_header_is_rejected(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, W1=np.ones((3, 4)))
    _expect_model_file_error(path, "not a bpgpu file")


def test_a_newer_format_version_is_rejected(saved):
    _, path = saved
    _rewrite(path, {"format_version": fmt.FORMAT_VERSION + 1})
    _expect_model_file_error(path, f"format version {fmt.FORMAT_VERSION + 1}", "upgrade bpgpu")


@pytest.mark.parametrize("version", [0, -1, "1", None, 1.5])
def test_an_invalid_format_version_is_rejected(saved, version):
    _, path = saved
    _rewrite(path, {"format_version": version})
    _expect_model_file_error(path, "format_version")


def test_a_checkpoint_is_not_a_model(saved):
    _, path = saved
    _rewrite(path, {"format": "bpgpu-checkpoint"})
    _expect_model_file_error(path, "bpgpu-checkpoint")


def test_array_shapes_are_checked_against_the_header(saved):
    _, path = saved
    _rewrite(path, arrays_update={"W1": np.zeros((5, 5))})
    _expect_model_file_error(path, "'W1'", "(5, 5)", "(5, 4)")


def test_parameters_are_checked_against_the_saved_sizes(saved):
    _, path = saved
    _rewrite(path, lambda h: {"config": {**h["config"], "sizes": [4, 6, 3]}})
    _expect_model_file_error(path, "do not fit")


def test_a_missing_array_is_rejected(saved):
    _, path = saved
    _rewrite(path, drop=("b2",))
    _expect_model_file_error(path, "'b2'")


@pytest.mark.parametrize("config", [
    None, [], {"sizes": [4, 5, 3]}, {"sizes": [4, 5, 3], "hidden": "swish", "output": "softmax",
                                     "cost": "cross_entropy", "dtype": "float64", "init": "glorot"},
])
def test_a_bad_configuration_in_the_header_is_rejected(saved, config):
    _, path = saved
    _rewrite(path, {"config": config})
    _expect_model_file_error(path)


def test_non_finite_and_non_float_parameters_are_rejected(saved):
    net, path = saved
    w, _ = net.get_parameters()
    _rewrite(path, arrays_update={"W1": np.where(w[0] > 0, np.nan, w[0])})
    _expect_model_file_error(path, "NaN")
    _rewrite(path, arrays_update={"W1": np.ones(w[0].shape, dtype=np.int64)})
    _expect_model_file_error(path, "int64")


PAYLOAD_MARKER = "bpgpu_pickle_payload_ran"


class _Payload:
    """Unpickling this would create a marker file: proof of code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_bearing_files_are_rejected_without_running_code(saved, tmp_path):
    net, path = saved
    marker = tmp_path / PAYLOAD_MARKER
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(str(marker))
    _rewrite(path, arrays_update={"W1": evil})
    _expect_model_file_error(path)
    # and as an extra entry the header does not mention
    net.save(path)
    _rewrite(path, arrays_update={"extra": evil})
    _expect_model_file_error(path)
    assert not marker.exists(), "loading a bpgpu file ran code from a pickle"


def test_fuzzed_files_give_only_model_file_errors(saved, tmp_path):
    """A few hundred seeded random corruptions (byte flips, overwritten runs, truncations): each
    load either succeeds with the right shapes or raises ModelFileError; nothing else, no code runs."""
    net, path = saved
    good = path.read_bytes()
    rng = np.random.default_rng(2024)
    target = tmp_path / "fuzz.npz"
    outcomes = {"ok": 0, "rejected": 0}
    for trial in range(300):
        data = bytearray(good)
        kind = trial % 3
        if kind == 0:  # flip 1–4 random bytes
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 5))):
                data[pos] = int(rng.integers(0, 256))
        elif kind == 1:  # overwrite a random run with random bytes
            start = int(rng.integers(0, len(data)))
            run = rng.integers(0, 256, size=min(int(rng.integers(1, 64)), len(data) - start), dtype=np.uint8)
            data[start:start + len(run)] = run.tobytes()
        else:  # truncate, then maybe flip a byte
            data = data[: int(rng.integers(0, len(data)))]
            if data:
                data[int(rng.integers(0, len(data)))] ^= 0xFF
        target.write_bytes(bytes(data))
        try:
            loaded = bpgpu.load(target)
        except ModelFileError:
            outcomes["rejected"] += 1
            continue
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            pytest.fail(f"trial {trial} ({kind=}): {type(exc).__name__}: {exc}")
        outcomes["ok"] += 1  # a corruption in a byte nothing reads: the model must still be right
        assert loaded.sizes == net.sizes
        for a, b in zip(loaded.weights + loaded.biases, net.weights + net.biases):
            assert a.shape == b.shape
    assert outcomes["rejected"] > 200, outcomes


def test_a_bad_load_argument_is_not_blamed_on_the_file(saved):
    _, path = saved
    with pytest.raises(bpgpu.ConfigError) as info:
        bpgpu.load(path, device="tpu")
    assert not isinstance(info.value, ModelFileError)
    with pytest.raises(FileNotFoundError):
        bpgpu.load(path.parent / "missing.npz")


# -- resume after SIGKILL ------------------------------------------------------------------------

TRAINER = """
import sys, numpy as np, bpgpu
path = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 20)); y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
net = bpgpu.MLP([20, 64, 3], dtype="float64", seed=0)
net.fit(x, y, 40, 16, optimizer=bpgpu.SGD(0.05, momentum=0.9), seed=7, checkpoint=path, progress=False)
print("finished", flush=True)
"""


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 20))
    return x, (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_the_same_weights(tmp_path):
    path = tmp_path / "run.ckpt"
    child = subprocess.Popen([sys.executable, "-c", TRAINER, str(path)], stdout=subprocess.PIPE, env=CHILD_ENV)
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.005)
    time.sleep(float(np.random.default_rng().uniform(0.0, 0.05)))  # somewhere in the next epoch or two
    assert child.poll() is None, "the run ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    out = child.stdout.read()
    child.stdout.close()
    assert b"finished" not in out, "the run finished before it could be killed; make it longer"
    done = bpgpu.io.checkpoint.load(path).epoch
    assert 1 <= done < 40

    x, y = _data()
    resumed = bpgpu.MLP([20, 64, 3], dtype="float64", seed=123)  # the checkpoint supplies the weights
    history = resumed.fit(x, y, 40, 16, resume=path, progress=False)
    assert len(history) == 40

    straight = bpgpu.MLP([20, 64, 3], dtype="float64", seed=0)
    straight.fit(x, y, 40, 16, optimizer=bpgpu.SGD(0.05, momentum=0.9), seed=7, progress=False)
    assert _same_parameters(resumed, straight), f"resumed after epoch {done} but ended elsewhere"


# -- header fuzz: the zip is intact (so its CRCs pass) but the JSON header is garbled ---------------

def _header_fuzz(path, loader, trials, seed):
    """Rewrite ``path`` ``trials`` times with 1–3 bytes of its JSON header replaced by printable
    characters; ``loader`` must succeed or raise ModelFileError. Returns the number rejected."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    text = bytes(arrays.pop(fmt.HEADER_KEY))
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b'0123456789-.,:[]{}"e aEtruefalsnl', dtype=np.uint8)
    target = path.parent / "header-fuzz.npz"
    rejected = 0
    for trial in range(trials):
        data = bytearray(text)
        for pos in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            data[pos] = int(rng.choice(alphabet))
        with open(target, "wb") as handle:
            np.savez(handle, **{fmt.HEADER_KEY: np.frombuffer(bytes(data), dtype=np.uint8)}, **arrays)
        try:
            loader(target)
        except ModelFileError:
            rejected += 1
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            pytest.fail(f"trial {trial}: {type(exc).__name__}: {exc}\nheader: {bytes(data)!r}")
    return rejected


def test_garbled_model_headers_give_only_model_file_errors(saved):
    _, path = saved
    assert _header_fuzz(path, bpgpu.load, 250, seed=5) > 50


def test_garbled_or_damaged_checkpoints_give_only_model_file_errors(tmp_path):
    from bpgpu.io import checkpoint as ckpt

    x = np.random.default_rng(0).normal(size=(12, 3))
    net = bpgpu.MLP([3, 4, 2], dtype="float64", seed=0)
    path = tmp_path / "c.ckpt"
    net.fit(x, np.arange(12) % 2, 2, 4, optimizer=bpgpu.Adam(0.01), early_stopping=1,
            validation_data=(x, np.arange(12) % 2), seed=0, checkpoint=path, progress=False)
    assert ckpt.load(path).epoch == 2
    assert _header_fuzz(path, ckpt.load, 250, seed=6) > 50
    good = path.read_bytes()
    rng = np.random.default_rng(7)
    for trial in range(100):
        data = bytearray(good[: int(rng.integers(1, len(good) + 1))])
        data[int(rng.integers(0, len(data)))] ^= 0x5A
        path.write_bytes(bytes(data))
        try:
            ckpt.load(path)
        except ModelFileError:
            pass
        except Exception as exc:  # pragma: no cover
            pytest.fail(f"trial {trial}: {type(exc).__name__}: {exc}")


def test_bad_load_dtype_is_the_callers_error(saved):
    _, path = saved
    with pytest.raises(bpgpu.ConfigError, match="dtype='int32'") as info:
        bpgpu.load(path, dtype="int32")
    assert not isinstance(info.value, ModelFileError)
    assert bpgpu.load(path, dtype="float32").dtype_name == "float32"


@pytest.fixture(scope="module")
def checkpoint_parts(tmp_path_factory):
    """A real checkpoint's (header, arrays), and the data it was trained on."""
    x = np.random.default_rng(0).normal(size=(12, 3))
    y = np.arange(12) % 2
    path = tmp_path_factory.mktemp("ckpt") / "c.ckpt"
    bpgpu.MLP([3, 4, 2], dtype="float64", seed=0).fit(
        x, y, 2, 4, optimizer=bpgpu.Adam(0.01), seed=0, checkpoint=path, progress=False)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(bytes(arrays.pop(fmt.HEADER_KEY)).decode()), arrays, x, y


DAMAGED_FIELDS = [(key, value) for key in ("config", "epoch", "optimizer", "rng", "history")
                  for value in (None, [], 5, "x", -3, [1, 2], {"a": 1})
                  if not (key in ("rng", "history") and value is None)
                  and not (key == "epoch" and value == 5) and not (key == "history" and value == {"a": 1})]
DAMAGED_FIELDS += [(f"optimizer.{sub}", value) for sub in ("config", "scalars", "state")
                   for value in (None, 5, "x", [1, 2])]


@pytest.mark.parametrize("field,value", DAMAGED_FIELDS, ids=[f"{k}={v!r}" for k, v in DAMAGED_FIELDS])
def test_a_damaged_checkpoint_header_is_a_model_file_error_on_resume(tmp_path, checkpoint_parts, field, value):
    header, arrays, x, y = checkpoint_parts
    header = json.loads(json.dumps(header))
    if "." in field:
        outer, inner = field.split(".")
        header[outer][inner] = value
    else:
        header[field] = value
    path = tmp_path / "damaged.ckpt"
    with open(path, "wb") as handle:
        np.savez(handle, **{fmt.HEADER_KEY: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}, **arrays)
    net = bpgpu.MLP([3, 4, 2], dtype="float64", seed=0)
    with pytest.raises((ModelFileError, bpgpu.ConfigError)) as info:
        net.fit(x, y, 4, 4, resume=path, progress=False)
    assert str(path) in str(info.value)


def test_resuming_with_another_batch_size_is_refused(tmp_path, checkpoint_parts):
    header, arrays, x, y = checkpoint_parts
    path = tmp_path / "c.ckpt"
    with open(path, "wb") as handle:
        np.savez(handle, **{fmt.HEADER_KEY: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}, **arrays)
    net = bpgpu.MLP([3, 4, 2], dtype="float64", seed=0)
    with pytest.raises(bpgpu.ConfigError, match=r"batch_size=4 but fit was given batch_size=6"):
        net.fit(x, y, 4, 6, resume=path, progress=False)
    assert len(net.fit(x, y, 4, 4, resume=path, progress=False)) == 4
