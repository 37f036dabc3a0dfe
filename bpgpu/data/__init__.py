"""Data: the bundled digits, synthetic blobs, an MNIST IDX loader and the user's CSV/NPZ tables (host NumPy arrays)."""

from bpgpu.data.digits import load_digits
from bpgpu.data.mnist import load_mnist, read_idx
from bpgpu.data.synthetic import make_blobs, make_classification
from bpgpu.data.tabular import Table, load_table

__all__ = ["load_digits", "load_mnist", "read_idx", "make_classification", "make_blobs", "load_table", "Table"]
