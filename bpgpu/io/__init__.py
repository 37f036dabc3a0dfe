"""Saving and loading: models (``net.save`` / ``bpgpu.load``) and training checkpoints, both in one
portable npz + JSON-header format (:mod:`bpgpu.io.format`)."""

from bpgpu.io.model import load, save

__all__ = ["load", "save"]
