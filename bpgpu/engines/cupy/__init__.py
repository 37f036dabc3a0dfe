"""The CuPy step engine: elementwise chains fused into single kernels (``cupy.fuse``), gradients
written into views of one flat buffer by ``matmul(..., out=)``, one fused optimizer update over flat
parameter / gradient / state buffers, no device→host sync per batch (``step.py``; kernels and their
NumPy twins in ``kernels.py``)."""
