"""``import cupy`` in a subprocess gives the CuPy test double: put this folder first on PYTHONPATH
(tests/mpi_helpers.py ``double_env``). Importing it replaces ``sys.modules["cupy"]`` with the double,
which the import system then returns. ``CUPY_DOUBLE_DEVICES`` sets the device count (default 2)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

import cupy_double  # noqa: E402
from cupy_double.twins import register_all  # noqa: E402

cupy_double.reset(int(os.environ.get("CUPY_DOUBLE_DEVICES", "2")))
sys.modules.update(cupy_double.MODULES)
register_all()
