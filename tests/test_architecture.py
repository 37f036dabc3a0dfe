"""The array-API discipline: math, training and optimizer modules, the generic (reference) engine and
the engine interface import no array library; only the NumPy and CuPy engines name theirs."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "bpgpu"
FORBIDDEN = {"numpy", "cupy", "cupyx", "torch", "jax", "array_api_strict"}
BACKEND_FREE = ["math", "training", "engines/generic"]
ENGINE_INTERFACE = ["engines/__init__.py", "engines/base.py", "engines/mixed.py"]


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules() -> list[pathlib.Path]:
    files = [PACKAGE / "network.py"] + [PACKAGE / name for name in ENGINE_INTERFACE]
    for folder in BACKEND_FREE:
        files += sorted((PACKAGE / folder).glob("*.py"))
    return files


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_math_modules_name_no_array_library(path):
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}; use array_api_compat.array_namespace"


def test_the_math_package_and_the_reference_engine_exist_and_are_checked():
    assert (PACKAGE / "math" / "backprop.py") in _modules()
    assert (PACKAGE / "engines" / "generic" / "step.py") in _modules()


def test_each_backprop_equation_is_one_visible_line():
    source = (PACKAGE / "math" / "backprop.py").read_text().splitlines()
    for tag in ("# BP1", "# BP2", "# BP3", "# BP4"):
        lines = [line for line in source if tag in line and "=" in line.split("#")[0]]
        assert len(lines) >= 1, f"no code line tagged {tag} in bpgpu/math/backprop.py"


def test_cupy_is_not_imported_on_the_cpu_path():
    code = (
        "import sys, numpy as np, bpgpu\n"
        "net = bpgpu.MLP([3, 4, 2], seed=0)\n"
        "net.backprop(np.ones((2, 3)), np.array([0, 1]))\n"
        "print('cupy' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "BPGPU_DEVICE": "cpu"})
    assert out.stdout.split() == ["False", "False"]
