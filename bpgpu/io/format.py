"""The bpgpu file format: an ``.npz`` of host arrays plus a JSON header stored as a uint8 array.

    __header__   uint8 bytes of UTF-8 JSON: {"format": "bpgpu-model" | "bpgpu-checkpoint",
                 "format_version": 1, "bpgpu_version": "…", "arrays": {name: [shape…]}, …}
    <name>       one floating-point NumPy array per entry of "arrays" (never object arrays: no pickle)

Writing (:func:`atomic_write`): a temporary file in the target's folder, flushed and fsync'ed, then
``os.replace``d over the target, so a crash leaves either the old file or the new one. Only regular
files are written: an existing device, FIFO or folder at the path is refused; a symlink is written
through (its target is replaced atomically, the link kept). A new file gets the mode the umask gives
(0666 & ~umask), an existing one keeps its mode (and, where permitted, its owner).

Reading (:func:`read`) trusts nothing in the file: only a regular file is opened (never a FIFO); the
zip's member list must be exactly ``__header__.npy`` plus one ``<name>.npy`` per entry of the header's
table (no duplicates, nothing unlisted); the header member is capped at :data:`MAX_HEADER_BYTES`; the
caller checks the header (e.g. the shapes against the network's sizes) *before* any array is read;
and each member's declared uncompressed size must equal its .npy header plus shape × itemsize before a
byte of it is inflated. So a compression bomb costs nothing, and loading needs about the model's own
size in memory (arrays are read in chunks straight into their final buffers).
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import threading
import zipfile
from typing import Any, Callable

import numpy as np

from bpgpu.errors import BpgpuError, ConfigError, ModelFileError

FORMAT_VERSION = 1
HEADER_KEY = "__header__"
MAX_HEADER_BYTES = 64 * 2**20   # the JSON header (config, history, …); a longer one is refused unread
_CHUNK = 2**20                  # bytes inflated at a time (the zip reader copies each chunk twice)


def _version() -> str:
    from bpgpu import __version__

    return __version__


# -- writing -------------------------------------------------------------------------------------------

def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_target(path: str | os.PathLike, what: str = "") -> str:
    """The regular file a save to ``path`` writes: ``path`` itself or, for a symlink, its final target.

    Raises :class:`~bpgpu.errors.ConfigError` when an existing target is not a regular file (a device
    such as /dev/null, a FIFO, a folder) and ``FileNotFoundError`` when its folder does not exist.
    Callers run it before long work (``bpgpu train --save``, ``fit(checkpoint=…)``) so a bad path
    fails at once. ``what`` names the argument in messages (default: the path)."""
    path = os.fspath(path)
    label = what or repr(path)
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ConfigError(f"cannot save to {label}: {exc.strerror or exc}.") from None
    if mode is not None and not stat.S_ISREG(mode):
        via = f" (the symlink's target {target!r})" if target != path else ""
        raise ConfigError(
            f"cannot save to {label}: {path!r}{via} is {_file_kind(mode)}, not a regular file; bpgpu "
            "writes models, checkpoints and plots only to regular files. Give a file path."
        )
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {label}: the folder {folder!r} does not exist; create it first.")
    return target


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask (read from /proc where possible; else set and restored under a lock)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], Any]) -> str:
    """Call ``write(fileobj)`` on a temporary file beside the target, fsync it, then rename it over the
    target (see :func:`check_target`); returns ``path``. On any failure (disk full, file-size limit,
    an exception in ``write``) the temporary file is removed and the old file is untouched."""
    path = os.fspath(path)
    target = check_target(path)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        old = os.stat(target)
        mode, owner = stat.S_IMODE(old.st_mode), (old.st_uid, old.st_gid)  # an existing file keeps its mode
    except FileNotFoundError:
        mode, owner = 0o666 & ~_umask(), None          # a new one gets what open() would give it
    fd, tmp = tempfile.mkstemp(prefix=".bpgpu-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            if owner is not None and hasattr(os, "fchown") and owner != (os.geteuid(), os.getegid()):
                try:  # e.g. root re-saving a user's file: it stays the user's (allowed for root only)
                    os.fchown(handle.fileno(), *owner)
                except PermissionError:
                    pass
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (a power cut right after it must not bring the old name back)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(path: str | os.PathLike, kind: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` (host) and ``header`` to ``path`` atomically, exactly at that name (no suffix is added)."""
    if HEADER_KEY in arrays:
        raise ValueError(f"{HEADER_KEY!r} is reserved for the header.")
    host = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    full = {
        **header, "format": kind, "format_version": FORMAT_VERSION, "bpgpu_version": _version(),
        "arrays": {name: list(a.shape) for name, a in host.items()},
    }
    blob = np.frombuffer(json.dumps(full).encode("utf-8"), dtype=np.uint8)
    if blob.size > MAX_HEADER_BYTES:  # read() would refuse it: never write what cannot be loaded back
        raise ConfigError(f"cannot save {os.fspath(path)!r}: its header would be {blob.size:,} bytes, more than the "
                          f"{MAX_HEADER_BYTES:,} bpgpu reads back (a history of very many epochs?).")
    return atomic_write(path, lambda handle: np.savez(handle, **{HEADER_KEY: blob}, **host))


# -- reading -------------------------------------------------------------------------------------------

def _open_regular(path: str):
    """A binary handle on ``path``, refusing anything but a regular file (O_NONBLOCK: a FIFO's open
    returns at once instead of waiting for a writer, and is then refused)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path!r}.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path!r} is a folder, not a bpgpu file.") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ModelFileError(f"{path!r} is {_file_kind(mode)}, not a regular file; bpgpu reads models and "
                             "checkpoints only from regular files.")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _members(zf: zipfile.ZipFile, path: str) -> dict[str, zipfile.ZipInfo]:
    """name → ZipInfo of every ``<name>.npy`` member; duplicates and other members are refused."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise ModelFileError(f"{path!r} holds a member {info.filename!r} that is not an .npy array; "
                                 "it is not a bpgpu file.")
        name = info.filename[:-4]
        if name in members:
            raise ModelFileError(f"{path!r} holds the member {info.filename!r} twice; which copy is meant is "
                                 "ambiguous (another zip reader may take the other one), so the file is refused.")
        members[name] = info
    return members


MAX_RATIO = 100            # a compressed member inflating more than this (beyond 64 MiB) is a bomb
_RATIO_FROM = 64 * 2**20


def _member_layout(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, name: str,
                   shape: tuple[int, ...] | None, kinds: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """A member's .npy header (shape, fortran order, dtype), checked against the header's ``shape``, the
    allowed dtype ``kinds`` and the zip's declared size — before a byte of its data is inflated."""
    where = f"{path!r}: array {name!r}"
    if (info.compress_type != zipfile.ZIP_STORED and info.file_size > _RATIO_FROM
            and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
        raise ModelFileError(
            f"{where} inflates {info.file_size / max(info.compress_size, 1):,.0f}-fold ({info.compress_size:,} -> "
            f"{info.file_size:,} bytes): a compression bomb, refused unread (bpgpu writes arrays uncompressed)."
        )
    with zf.open(info) as stream:
        major, _ = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        got_shape, fortran, dtype = read_header(stream)
        offset = stream.tell()
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
        want = "floating-point numbers" if kinds == "f" else "bytes"
        raise ModelFileError(f"{where} has dtype {dtype}; bpgpu files hold {want} there.")
    if shape is not None and tuple(got_shape) != tuple(shape):
        raise ModelFileError(f"{where} has shape {tuple(got_shape)} but the header says {tuple(shape)}.")
    nbytes = math.prod(got_shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise ModelFileError(
            f"{where} declares {info.file_size:,} bytes but its shape {tuple(got_shape)} and dtype {dtype} "
            f"need {offset + nbytes:,}; the file is corrupted or hostile (a compression bomb?) and is refused unread."
        )
    return tuple(got_shape), bool(fortran), dtype


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, name: str,
                 shape: tuple[int, ...] | None, kinds: str) -> np.ndarray:
    """One .npy member, checked by :func:`_member_layout`, read in chunks straight into its array."""
    where = f"{path!r}: array {name!r}"
    got_shape, fortran, dtype = _member_layout(zf, info, path, name, shape, kinds)
    nbytes = math.prod(got_shape) * dtype.itemsize
    with zf.open(info) as stream:
        stream.read(info.file_size - nbytes)  # the .npy header, already parsed (≤ ~64 KiB)
        flat = np.empty(math.prod(got_shape), dtype=dtype)
        view = memoryview(flat).cast("B")
        done = 0
        while done < nbytes:
            n = stream.readinto(view[done:done + _CHUNK])
            if not n:
                raise ModelFileError(f"{where} ends after {done:,} of {nbytes:,} bytes; the file is truncated.")
            done += n
        if stream.read(1):
            raise ModelFileError(f"{where} has data beyond its declared size; the file is corrupted.")
    array = np.ascontiguousarray(flat.reshape(got_shape[::-1]).T) if fortran else flat.reshape(got_shape)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read(
    path: str | os.PathLike, kind: str, check: Callable[[dict[str, Any], dict[str, tuple[int, ...]]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a file written by :func:`write` with the same ``kind``.

    ``check(header, shapes)`` runs after the header is parsed and before any array is read (raise
    ModelFileError there to refuse, e.g., shapes that do not fit the saved sizes). Raises
    ``FileNotFoundError`` for a missing file and :class:`~bpgpu.errors.ModelFileError` for one that is
    not a regular file, truncated, corrupted, hostile, not a bpgpu file, of another kind or of a newer
    format version.
    """
    path = os.fspath(path)
    try:
        # Any exception while parsing untrusted bytes (BadZipFile, NotImplementedError for a garbled
        # zip version, struct/zlib errors, EOF, ...) means a damaged file.
        with _open_regular(path) as handle:
            if handle.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise ModelFileError(f"{path!r} is not an npz file (no zip signature); it is not a bpgpu file.")
            handle.seek(0)
            with zipfile.ZipFile(handle) as zf:
                members = _members(zf, path)
                if HEADER_KEY not in members:
                    raise ModelFileError(f"{path!r} is an npz file but not a bpgpu file (it has no {HEADER_KEY!r} entry).")
                if members[HEADER_KEY].file_size > MAX_HEADER_BYTES:
                    raise ModelFileError(f"{path!r}: its header declares {members[HEADER_KEY].file_size:,} bytes, more than "
                                         f"the {MAX_HEADER_BYTES:,} bpgpu accepts; the file is refused unread.")
                blob = _read_member(zf, members[HEADER_KEY], path, HEADER_KEY, None, "u")
                header = json.loads(bytes(blob).decode("utf-8"))
                shapes = _check_header(header, kind, path)
                extra = sorted(set(members) - set(shapes) - {HEADER_KEY})
                if extra:
                    raise ModelFileError(f"{path!r} holds arrays the header does not list ({', '.join(map(repr, extra[:5]))}); "
                                         "the file is corrupted or tampered with.")
                for name in shapes:
                    if name not in members:
                        raise ModelFileError(f"{path!r}: the header lists array {name!r} but the file lacks it (truncated?).")
                for name, shape in shapes.items():  # every member's layout, before anything is built or read
                    _member_layout(zf, members[name], path, name, shape, "f")
                if check is not None:
                    check(header, shapes)
                arrays = {name: _read_member(zf, members[name], path, name, shape, "f") for name, shape in shapes.items()}
    except (BpgpuError, FileNotFoundError):  # the file's ModelFileError, or the caller's own (a bad device=)
        raise
    except Exception as exc:  # see above: nothing but ModelFileError may come out of a bad file
        raise ModelFileError(
            f"{path!r} cannot be read as a bpgpu file: it is truncated, corrupted or not an npz "
            f"({type(exc).__name__}: {exc}). Save it again with net.save(path)."
        ) from None
    return header, arrays


def _check_header(header: Any, kind: str, path: str) -> dict[str, tuple[int, ...]]:
    """The header's kind and version, and its array table as name → shape."""
    if not isinstance(header, dict):
        raise ModelFileError(f"{path!r} has a header that is not a JSON object; it is not a bpgpu file.")
    if header.get("format") != kind:
        raise ModelFileError(f"{path!r} holds {header.get('format')!r}, but a {kind!r} file was expected.")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path!r} has an invalid format_version {version!r}; expected {FORMAT_VERSION}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path!r} uses format version {version}, written by bpgpu {header.get('bpgpu_version')}; this "
            f"bpgpu ({_version()}) reads version {FORMAT_VERSION} and older: upgrade bpgpu."
        )
    table = header.get("arrays")
    if not isinstance(table, dict):
        raise ModelFileError(f"{path!r}: the header lacks the 'arrays' table; the file is corrupted.")
    shapes = {}
    for name, shape in table.items():
        if (name == HEADER_KEY or not isinstance(shape, list)
                or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 8):
            raise ModelFileError(f"{path!r}: the header gives array {name!r} the invalid shape {shape!r}; the file is corrupted.")
        shapes[name] = tuple(shape)
    return shapes
