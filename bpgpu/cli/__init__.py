"""The ``bpgpu`` command line: ``bpgpu info``, ``bpgpu train``, ``bpgpu bench``."""
