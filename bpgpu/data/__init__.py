"""Data: the bundled digits, synthetic blobs, and an MNIST IDX loader (host NumPy arrays)."""

from bpgpu.data.digits import load_digits
from bpgpu.data.mnist import load_mnist, read_idx
from bpgpu.data.synthetic import make_blobs, make_classification

__all__ = ["load_digits", "load_mnist", "read_idx", "make_classification", "make_blobs"]
