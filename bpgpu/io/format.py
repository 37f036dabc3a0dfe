"""The bpgpu file format: an ``.npz`` of host arrays plus a JSON header stored as a uint8 array.

    __header__   uint8 bytes of UTF-8 JSON: {"format": "bpgpu-model" | "bpgpu-checkpoint",
                 "format_version": 1, "bpgpu_version": "…", "arrays": {name: [shape…]}, …}
    <name>       one NumPy array per entry of "arrays" (never object arrays: no pickle)

Files are written atomically: a temporary file in the target folder, flushed and fsync'ed, then
``os.replace``d over the target, so a crash leaves either the old file or the new one. Reading uses
``np.load(..., allow_pickle=False)`` and checks the header, version and every array's shape.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from bpgpu.errors import ModelFileError

FORMAT_VERSION = 1
HEADER_KEY = "__header__"


def _version() -> str:
    from bpgpu import __version__

    return __version__


def atomic_write(path: str | os.PathLike, write: Any) -> str:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist; create it first.")
    fd, tmp = tempfile.mkstemp(prefix=".bpgpu-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
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
    return atomic_write(path, lambda handle: np.savez(handle, **{HEADER_KEY: blob}, **host))


def read(path: str | os.PathLike, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a file written by :func:`write` with the same ``kind``.

    Raises ``FileNotFoundError`` for a missing file and :class:`~bpgpu.errors.ModelFileError` for one
    that is truncated, corrupted, not a bpgpu file, of another kind or of a newer format version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}.")
    try:
        # Our own handle (closed even when np.load fails half-way); only a zip is parsed, so np.load can
        # never fall through to its pickle or .npy branches. Any exception while parsing untrusted bytes
        # (BadZipFile, NotImplementedError for a garbled zip version, struct/zlib errors, EOF, a huge
        # claimed shape's MemoryError, ...) means a damaged file.
        with open(path, "rb") as handle:
            if handle.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise ModelFileError(f"{path!r} is not an npz file (no zip signature); it is not a bpgpu file.")
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as npz:
                if HEADER_KEY not in npz.files:
                    raise ModelFileError(f"{path!r} is an npz file but not a bpgpu file (it has no {HEADER_KEY!r} entry).")
                header = json.loads(bytes(npz[HEADER_KEY]).decode("utf-8"))
                arrays = {name: npz[name] for name in npz.files if name != HEADER_KEY}
    except ModelFileError:
        raise
    except Exception as exc:  # see above: nothing but ModelFileError may come out of a bad file
        raise ModelFileError(
            f"{path!r} cannot be read as a bpgpu file: it is truncated, corrupted or not an npz "
            f"({type(exc).__name__}: {exc}). Save it again with net.save(path)."
        ) from None
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
    shapes = header.get("arrays")
    if not isinstance(shapes, dict):
        raise ModelFileError(f"{path!r}: the header lacks the 'arrays' table; the file is corrupted.")
    for name, shape in shapes.items():
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ModelFileError(f"{path!r}: the header gives array {name!r} the invalid shape {shape!r}; the file is corrupted.")
        if name not in arrays:
            raise ModelFileError(f"{path!r}: the header lists array {name!r} but the file lacks it (truncated?).")
        if list(arrays[name].shape) != list(shape):
            raise ModelFileError(
                f"{path!r}: array {name!r} has shape {tuple(arrays[name].shape)} but the header says {tuple(shape)}."
            )
    return header, arrays
