"""``bpgpu.datasets``: the bundled handwritten digits, synthetic data, the MNIST loader and ``load_table`` (CSV/NPZ)."""

from bpgpu.data import Table, load_digits, load_mnist, load_table, make_blobs, make_classification, read_idx

__all__ = ["load_digits", "load_mnist", "read_idx", "make_classification", "make_blobs", "load_table", "Table"]
