"""Reliability, files a user did not write and targets a user did not mean: compression bombs, ambiguous
or odd archives, non-regular files, hostile RNG states; saving to devices, FIFOs and symlinks; file
modes; numbers across dtypes. Every case must end in a clear BpgpuError naming the file (or a
successful load), in bounded time and memory, leaving no temporary file behind."""

from __future__ import annotations

import io
import json
import os
import stat
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import ConfigError, DataError, ModelFileError
from bpgpu.io import format as fmt

ZEROS = bytes(1 << 20)


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), allow_pickle=False)
    return out.getvalue()


def _parts(path) -> tuple[dict, dict[str, bytes]]:
    """A saved file's header (dict) and its members' raw .npy bytes, by member name."""
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    header = json.loads(bytes(np.load(io.BytesIO(members.pop("__header__.npy")))).decode())
    return header, members


def _craft(path, header: dict, members: list[tuple[str, object]], compression=zipfile.ZIP_STORED) -> None:
    """Write a zip: the header as __header__.npy, then each (member name, bytes or an iterable of
    byte chunks) in order (duplicates allowed: that is the point)."""
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("__header__.npy", _npy(blob))
        for name, data in members:
            if isinstance(data, bytes):
                with zf.open(zipfile.ZipInfo(name), "w") if compression == zipfile.ZIP_STORED else \
                        zf.open(name, "w") as handle:
                    handle.write(data)
            else:
                with zf.open(name, "w", force_zip64=True) as handle:
                    for chunk in data:
                        handle.write(chunk)


def _refused(path, *words, loader=None):
    with pytest.raises(ModelFileError) as info:
        (loader or bpgpu.load)(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for word in words:
        assert word in msg, (word, msg)
    return msg


def _bounded(call, limit_bytes: int, limit_s: float = 5.0):
    """Run ``call``; return (its error, peak Python/NumPy allocation, seconds), checking the bounds."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        call()
        error = None
    except ModelFileError as exc:
        error = exc
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < limit_bytes, f"peak allocation {peak:,} bytes"
    assert seconds < limit_s, f"{seconds:.1f} s"
    return error, peak, seconds


# -- compression bombs ---------------------------------------------------------------------------------

def test_an_unlisted_bomb_member_is_refused_without_inflating_it(saved, tmp_path):
    _, path = saved
    header, members = _parts(path)
    bomb = tmp_path / "bomb.npz"
    _craft(bomb, header, [(n, d) for n, d in members.items()] + [("junk.npy", (ZEROS for _ in range(256)))],
           compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 << 20  # 256 MiB of zeros deflate to well under 2 MiB
    error, peak, _ = _bounded(lambda: bpgpu.load(bomb), limit_bytes=4 << 20)
    assert error is not None and "does not list" in str(error) and "junk" in str(error)


@pytest.mark.parametrize("mib, words", [(16, ("declares", "refused unread")), (256, ("compression bomb", "1,0"))])
def test_a_listed_member_declaring_more_bytes_than_its_shape_is_refused_unread(saved, tmp_path, mib, words):
    _, path = saved
    header, members = _parts(path)
    w1 = members.pop("W1.npy")
    bomb = tmp_path / "bomb.npz"
    _craft(bomb, header, [("W1.npy", (chunk for chunk in [w1] + [ZEROS] * mib))] + list(members.items()),
           compression=zipfile.ZIP_DEFLATED)
    error, _, _ = _bounded(lambda: bpgpu.load(bomb), limit_bytes=4 << 20)
    assert error is not None and "'W1'" in str(error)
    for word in words:
        assert word in str(error), str(error)


def test_a_header_claiming_a_huge_network_is_refused_before_any_array_is_read(saved, tmp_path):
    """The shapes table and the config agree with each other (a 'consistent' bomb) but not with the
    arrays' own .npy headers; or the config asks for a huge network the arrays do not have."""
    _, path = saved
    header, members = _parts(path)
    big = json.loads(json.dumps(header))
    big["config"]["sizes"] = [40000, 50000, 3]
    big["arrays"].update({"W1": [50000, 40000], "b1": [50000], "W2": [3, 50000]})
    bomb = tmp_path / "big.npz"
    _craft(bomb, big, list(members.items()))
    error, _, _ = _bounded(lambda: bpgpu.load(bomb), limit_bytes=4 << 20)
    assert error is not None and "shape" in str(error)


def test_an_oversized_header_member_is_refused_unread(saved, tmp_path):
    _, path = saved
    _, members = _parts(path)
    bomb = tmp_path / "hdr.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("__header__.npy", "w", force_zip64=True) as handle:
            handle.write(_npy(np.zeros(0, dtype=np.uint8)))
            for _ in range(80):
                handle.write(ZEROS)
    error, _, _ = _bounded(lambda: bpgpu.load(bomb), limit_bytes=4 << 20)
    assert error is not None and "header" in str(error)


def test_loading_needs_about_the_models_own_size_in_memory(tmp_path):
    net = bpgpu.MLP([1000, 1000, 10], dtype="float64", seed=0)  # 8 MB of weights
    path = tmp_path / "m.npz"
    net.save(path)
    size = sum(w.nbytes for w in net.weights + net.biases)
    tracemalloc.start()
    loaded = bpgpu.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2.5 * size, (peak, size)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_parameters()[0], net.get_parameters()[0]))


# -- ambiguous and odd archives ------------------------------------------------------------------------

def test_duplicate_member_names_are_refused(saved, tmp_path):
    net, path = saved
    header, members = _parts(path)
    evil = tmp_path / "dup.npz"
    other = _npy(np.zeros(net.weights[0].shape))
    with pytest.warns(UserWarning, match="Duplicate name"):
        _craft(evil, header, list(members.items()) + [("W1.npy", other)])
    _refused(evil, "twice", "W1.npy")


def test_a_member_without_the_npy_suffix_is_refused(saved, tmp_path):
    _, path = saved
    header, members = _parts(path)
    evil = tmp_path / "odd.npz"
    _craft(evil, header, list(members.items()) + [("README", b"hello")])
    _refused(evil, "'README'", ".npy")


@pytest.mark.parametrize("dtype", ["complex128", "int64", "<U3", "bool"])
def test_non_float_members_are_refused_by_name(saved, tmp_path, dtype):
    net, path = saved
    header, members = _parts(path)
    members["W1.npy"] = _npy(np.ones(net.weights[0].shape, dtype=dtype))
    evil = tmp_path / "typed.npz"
    _craft(evil, header, list(members.items()))
    _refused(evil, "'W1'", "dtype")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_loading_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    error, _, seconds = _bounded(lambda: bpgpu.load(fifo), limit_bytes=1 << 20, limit_s=2.0)
    assert error is not None and "FIFO" in str(error) and "regular file" in str(error)
    from bpgpu.io import checkpoint

    with pytest.raises(ModelFileError, match="FIFO"):
        checkpoint.load(fifo)


def test_loading_a_folder_or_a_device_is_refused(tmp_path):
    _refused(tmp_path, "folder")
    if os.path.exists("/dev/zero"):
        with pytest.raises(ModelFileError, match="character device"):
            bpgpu.load("/dev/zero")


# -- saving: targets and modes -------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_saving_onto_a_fifo_a_device_or_a_folder_is_refused_and_leaves_them(tmp_path):
    net = bpgpu.MLP([3, 2], seed=0)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, kind in ((fifo, "FIFO"), (tmp_path, "folder")) + ((("/dev/null", "character device"),)
                                                                   if os.path.exists("/dev/null") else ()):
        with pytest.raises(ConfigError, match=kind) as info:
            net.save(target)
        assert "regular file" in str(info.value)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temporary file left behind


def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    real_dir = tmp_path / "store"
    real_dir.mkdir()
    target = real_dir / "model.npz"
    bpgpu.MLP([3, 2], seed=0).save(target)
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    net = bpgpu.MLP([3, 2], seed=1)
    assert net.save(link) == str(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.array_equal(bpgpu.load(target).get_parameters()[0][0], net.get_parameters()[0][0])
    assert sorted(os.listdir(real_dir)) == ["model.npz"] and sorted(os.listdir(tmp_path)) == ["latest.npz", "store"]
    dangling = tmp_path / "new.npz"
    dangling.symlink_to(real_dir / "fresh.npz")
    net.save(dangling)
    assert dangling.is_symlink() and (real_dir / "fresh.npz").is_file()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_new_files_get_the_umask_mode_and_existing_files_keep_theirs(tmp_path):
    net = bpgpu.MLP([3, 2], seed=0)
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.npz"
        net.save(fresh)
        assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o640
        os.chmod(fresh, 0o604)
        net.save(fresh)  # re-saving keeps the mode the user chose
        assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o604
        x = np.zeros((4, 3))
        ck = tmp_path / "ck.npz"
        net.fit(x, np.array([0, 1, 0, 1]), 1, 2, checkpoint=ck, progress=False, seed=0)
        assert stat.S_IMODE(os.stat(ck).st_mode) == 0o640
        pytest.importorskip("matplotlib", reason="the plot case needs matplotlib (the plot extra)")
        history = net.fit(x, np.array([0, 1, 0, 1]), 1, 2, progress=False, seed=0)
        png = tmp_path / "h.png"
        bpgpu.plot_history(history, png)
        assert stat.S_IMODE(os.stat(png).st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_missing_folder_is_named_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bpgpu.MLP([3, 2]).save(tmp_path / "no" / "m.npz")
    assert os.listdir(tmp_path) == []


# -- numbers across dtypes -----------------------------------------------------------------------------

def test_loading_as_float32_refuses_values_that_overflow_it(tmp_path):
    net = bpgpu.MLP([3, 2], dtype="float64", seed=0)
    w, b = net.get_parameters()
    w[0][0, 0] = 1e300
    net.set_parameters(w, b)
    path = tmp_path / "big.npz"
    net.save(path)
    assert bpgpu.load(path).get_parameters()[0][0][0, 0] == 1e300  # float64: fine
    with pytest.raises(ModelFileError, match=r"overflows float32.*dtype='float64'"):
        bpgpu.load(path, dtype="float32")
    w[0][0, 0] = 1e30  # within float32's range: loads
    net.set_parameters(w, b)
    net.save(path)
    assert np.isfinite(bpgpu.load(path, dtype="float32").get_parameters()[0][0]).all()


def test_save_refuses_a_network_that_load_would_refuse(tmp_path):
    net = bpgpu.MLP([3, 2], dtype="float64", seed=0)
    w, b = net.get_parameters()
    w[0][1, 1] = np.nan
    net.set_parameters(w, b)
    path = tmp_path / "nan.npz"
    with pytest.raises(DataError, match=r"NaN or infinite values \(in W1\)"):
        net.save(path)
    assert not path.exists() and os.listdir(tmp_path) == []


# -- a file never chooses code to run ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["seed", "default_rng", "MT19937", "__import__", 5, None])
def test_an_rng_state_may_only_name_an_allowed_bit_generator(name, monkeypatch):
    from bpgpu.backend.random import rng_from_state

    called = []
    monkeypatch.setattr(np.random, "seed", lambda *a: called.append(a))
    with pytest.raises(ConfigError, match="bit generator"):
        rng_from_state({"bit_generator": name, "state": {"state": 1, "inc": 1}, "has_uint32": 0, "uinteger": 0})
    assert called == []


@pytest.mark.parametrize("state", [{"state": -1, "inc": 5}, {"state": 2**200, "inc": 5}, {"state": "x"}, "x"])
def test_a_damaged_rng_state_is_a_config_error_not_an_overflow(state):
    from bpgpu.backend.random import rng_from_state

    with pytest.raises(ConfigError, match="PCG64 RNG state is not valid"):
        rng_from_state({"bit_generator": "PCG64", "state": state, "has_uint32": 0, "uinteger": 0})


def test_the_checks_pass_on_every_file_bpgpu_writes(saved, tmp_path):
    net, path = saved
    again = bpgpu.load(path)
    assert all(np.array_equal(a, b) for a, b in zip(again.get_parameters()[0], net.get_parameters()[0]))
    header, arrays = fmt.read(path, "bpgpu-model")
    assert set(arrays) == {"W1", "W2", "b1", "b2"} and header["config"]["sizes"] == [4, 5, 3]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="changing a file's owner needs root")
def test_root_re_saving_a_users_file_keeps_its_owner(tmp_path):
    path = tmp_path / "m.npz"
    net = bpgpu.MLP([3, 2], seed=0)
    net.save(path)
    os.chown(path, 12345, 23456)
    net.save(path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (12345, 23456)


def test_a_header_too_long_to_read_back_is_never_written(tmp_path, monkeypatch):
    net = bpgpu.MLP([3, 2], seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(fmt, "MAX_HEADER_BYTES", 64)
    with pytest.raises(ConfigError, match="reads back"):
        net.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]
