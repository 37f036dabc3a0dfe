"""``bpgpu.datasets``: the bundled handwritten digits, synthetic data and the MNIST loader."""

from bpgpu.data import load_digits, load_mnist, make_blobs, make_classification, read_idx

__all__ = ["load_digits", "load_mnist", "read_idx", "make_classification", "make_blobs"]
