"""Device selection and host transfers: the only package (with data loading and file I/O) that names
a concrete array library. Everything else receives a namespace from the arrays it is given."""

from bpgpu.backend.device import (
    Backend,
    backend_of,
    cuda_status,
    default_device,
    resolve,
)
from bpgpu.backend.arrays import to_host, to_backend

__all__ = ["Backend", "backend_of", "cuda_status", "default_device", "resolve", "to_host", "to_backend"]
