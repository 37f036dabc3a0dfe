"""Every bad input at the API boundary gets a ValueError/TypeError (a bpgpu error subclassing one)
whose message names the argument, what was expected and what was given; never a raw IndexError,
broadcasting error or AttributeError from inside the math."""

from __future__ import annotations

import re

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import BpgpuError, ConfigError, DataError, ShapeError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4))
LABELS = np.array([0, 1, 2, 0, 1, 2])


def _net(**kw) -> bpgpu.MLP:
    kw.setdefault("seed", 0)
    kw.setdefault("dtype", "float64")
    return bpgpu.MLP(kw.pop("sizes", [4, 5, 3]), **kw)


def _entry_points(net, x, y):
    """The calls that take (x, y): each must reject the same bad input the same way."""
    return {
        "backprop": lambda: net.backprop(x, y),
        "backprop_per_example": lambda: net.backprop_per_example(x, y),
        "cost": lambda: net.cost(x, y),
        "gradcheck": lambda: bpgpu.gradcheck(net, x, y, max_entries=1, directions=0),
    }


def _assert_clear(exc_info, cls, *words):
    """The error is ``cls`` (a ValueError/TypeError) and its message contains every word."""
    exc = exc_info.value
    assert isinstance(exc, cls), f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, (ValueError, TypeError))
    msg = str(exc)
    for word in words:
        assert word in msg, f"{word!r} not in message: {msg}"


# -- x: features ----------------------------------------------------------------------------------

BAD_X = [
    # (id, x, error class, words the message must contain)
    ("wrong-features", X[:, :3], ShapeError, ["x", "3 features", "4", "(6, 3)"]),
    ("one-dimensional", X[0], ShapeError, ["x", "2-D", "(4,)", "x[None, :]"]),
    ("three-dimensional", X[None], ShapeError, ["x", "2-D", "(1, 6, 4)"]),
    ("scalar", 3.0, ShapeError, ["x", "2-D", "()"]),
    ("empty", np.zeros((0, 4)), DataError, ["x", "empty", "(0, 4)"]),
    ("nan", np.where(X > 1, np.nan, X), DataError, ["x", "NaN"]),
    ("inf", np.where(X > 1, np.inf, X), DataError, ["x", "infinite"]),
    ("bool", X > 0, DataError, ["x", "real numbers", "bool"]),
    ("complex", X + 1j, DataError, ["x", "real numbers", "complex128"]),
    ("strings", np.array([["a"] * 4]), DataError, ["x", "real numbers", "<U1"]),
    ("object", np.array([[1, 2, 3, None]], dtype=object), DataError, ["x", "real numbers", "object"]),
    ("list-of-strings", [["a", "b", "c", "d"]], DataError, ["x", "real numbers"]),
    ("ragged-list", [[1, 2, 3, 4], [1, 2]], DataError, ["x", "rectangular"]),
    ("none", None, TypeError, ["x", "array", "NoneType"]),
    ("dict", {"a": 1}, TypeError, ["x", "array", "dict"]),
    ("string", "1,2,3,4", TypeError, ["x", "array", "str"]),
]


@pytest.mark.parametrize("xid,x,cls,words", BAD_X, ids=[b[0] for b in BAD_X])
def test_bad_features_are_rejected_by_forward(xid, x, cls, words):
    with pytest.raises(cls) as info:
        _net().forward(x)
    _assert_clear(info, cls, *words)


@pytest.mark.parametrize("xid,x,cls,words", BAD_X, ids=[b[0] for b in BAD_X])
def test_bad_features_are_rejected_by_every_entry_point(xid, x, cls, words):
    net = _net()
    for name, call in _entry_points(net, x, LABELS).items():
        with pytest.raises(cls) as info:
            call()
        _assert_clear(info, cls, *words)


# -- y: targets and labels ------------------------------------------------------------------------

BAD_Y = [
    # (id, sizes, output, cost, y, error class, words)
    ("rows-differ", [4, 3], None, None, LABELS[:5], ShapeError, ["y", "6 examples", "5"]),
    ("rows-differ-onehot", [4, 3], None, None, np.eye(3)[LABELS][:4], ShapeError, ["y", "6 examples", "4"]),
    ("rows-differ-empty", [4, 3], None, None, np.zeros(0, dtype=np.int64), ShapeError, ["y", "6 examples", "0"]),
    ("onehot-too-wide", [4, 3], None, None, np.eye(4)[LABELS], ShapeError, ["y", "(6, 3)", "(6, 4)"]),
    ("onehot-too-narrow", [4, 3], None, None, np.eye(2)[LABELS % 2], ShapeError, ["y", "(6, 3)", "(6, 2)"]),
    ("label-too-big", [4, 3], None, None, LABELS + 1, DataError, ["y", "0…2", "[1, 3]"]),
    ("label-negative", [4, 3], None, None, LABELS - 1, DataError, ["y", "0…2", "[-1, 1]"]),
    ("label-uint8-too-big", [4, 3], None, None, (LABELS + 250).astype(np.uint8), DataError, ["y", "0…2", "252"]),
    ("float-labels", [4, 3], None, None, LABELS.astype(float), ShapeError, ["y", "(6,)", "integers"]),
    ("int-2d-wrong", [4, 3], None, None, np.zeros((6, 2), dtype=np.int64), ShapeError, ["y", "1-D class labels", "(6, 2)"]),
    ("labels-0d", [4, 3], None, None, np.array(1), ShapeError, ["y", "1-D class labels", "()"]),
    ("labels-to-multi-sigmoid", [4, 3], "sigmoid", None, LABELS, DataError, ["y", "sigmoid", "(6, 3)", "softmax"]),
    ("labels-to-identity", [4, 3], "identity", None, LABELS, DataError, ["y", "identity", "(6, 3)"]),
    ("label-2-to-single-sigmoid", [4, 1], None, None, LABELS, DataError, ["y", "binary", "0…1", "[0, 2]"]),
    ("label-neg-to-single-sigmoid", [4, 1], None, None, -(LABELS % 2), DataError, ["y", "0…1", "[-1, 0]"]),
    ("ce-target-above-1", [4, 1], None, None, np.full(6, 2.0), DataError, ["y", "[0, 1]", "cross_entropy", "quadratic"]),
    ("ce-target-negative", [4, 2], "sigmoid", None, -np.ones((6, 2)), DataError, ["y", "[0, 1]", "[-1, -1]"]),
    ("softmax-ce-rows-not-1", [4, 3], None, None, np.full((6, 3), 0.5), DataError, ["y", "sum to 1", "0.5"]),
    ("nan-target", [4, 3], "identity", None, np.full((6, 3), np.nan), DataError, ["y", "NaN"]),
    ("inf-target", [4, 1], "identity", None, np.full(6, -np.inf), DataError, ["y", "infinite"]),
    ("bool-target", [4, 3], None, None, np.eye(3, dtype=bool)[LABELS], DataError, ["y", "bool", "astype"]),
    ("complex-target", [4, 3], None, None, np.eye(3)[LABELS] + 0j, DataError, ["y", "complex128"]),
    ("string-target", [4, 3], None, None, np.array(["a"] * 6), DataError, ["y", "<U1"]),
    ("none-target", [4, 3], None, None, None, TypeError, ["y", "NoneType"]),
]


@pytest.mark.parametrize("yid,sizes,output,cost,y,cls,words", BAD_Y, ids=[b[0] for b in BAD_Y])
def test_bad_targets_are_rejected_by_every_entry_point(yid, sizes, output, cost, y, cls, words):
    net = _net(sizes=sizes, output=output, cost=cost)
    for name, call in _entry_points(net, X, y).items():
        with pytest.raises(cls) as info:
            call()
        _assert_clear(info, cls, *words)


GOOD_Y = [
    ("labels", [4, 3], None, None, LABELS),
    ("onehot", [4, 3], None, None, np.eye(3)[LABELS]),
    ("int-onehot", [4, 3], None, None, np.eye(3, dtype=np.int64)[LABELS]),
    ("soft-labels", [4, 3], None, None, np.full((6, 3), 1 / 3)),
    ("uint8-labels", [4, 3], None, None, LABELS.astype(np.uint8)),
    ("binary-labels", [4, 1], None, None, LABELS % 2),
    ("binary-float-1d", [4, 1], None, None, (LABELS % 2).astype(float)),
    ("multi-sigmoid-rows", [4, 3], "sigmoid", None, np.eye(3)[LABELS]),
    ("softmax-quadratic-labels", [4, 3], None, "quadratic", LABELS),
    ("identity-int-targets", [4, 1], "identity", None, LABELS),
    ("identity-any-range", [4, 3], "identity", None, 100 * RNG.normal(size=(6, 3))),
    ("list-targets", [4, 3], None, None, LABELS.tolist()),
]


@pytest.mark.parametrize("yid,sizes,output,cost,y", GOOD_Y, ids=[g[0] for g in GOOD_Y])
def test_sensible_targets_are_accepted(yid, sizes, output, cost, y):
    net = _net(sizes=sizes, output=output, cost=cost)
    cost_value, grad_w, _ = net.backprop(X, y)
    assert np.isfinite(cost_value)
    assert len(grad_w) == len(net.weights)


# -- configuration --------------------------------------------------------------------------------

BAD_CONFIG = [
    # (id, kwargs, error class, words)
    ("one-layer", {"sizes": [4]}, ConfigError, ["sizes", "two layers", "[4]"]),
    ("no-layers", {"sizes": []}, ConfigError, ["sizes", "two layers", "[]"]),
    ("zero-width", {"sizes": [4, 0, 3]}, ConfigError, ["sizes[1]", "positive integer", "0"]),
    ("negative-width", {"sizes": [4, -1]}, ConfigError, ["sizes[1]", "positive integer", "-1"]),
    ("fractional-width", {"sizes": [4, 2.5]}, ConfigError, ["sizes[1]", "positive integer", "2.5"]),
    ("string-width", {"sizes": [4, "3"]}, ConfigError, ["sizes[1]", "positive integer", "'3'"]),
    ("bool-width", {"sizes": [4, True]}, ConfigError, ["sizes[1]", "True"]),
    ("sizes-string", {"sizes": "784,30,10"}, ConfigError, ["sizes", "list of layer widths", "'784,30,10'"]),
    ("sizes-int", {"sizes": 5}, ConfigError, ["sizes", "list of layer widths", "5"]),
    ("sizes-none", {"sizes": None}, ConfigError, ["sizes", "None"]),
    ("hidden", {"hidden": "swish"}, ConfigError, ["hidden='swish'", "sigmoid, tanh, relu, identity"]),
    ("hidden-softmax", {"hidden": "softmax"}, ConfigError, ["hidden='softmax'", "sigmoid, tanh, relu, identity"]),
    ("hidden-none", {"hidden": None}, ConfigError, ["hidden=None", "sigmoid"]),
    ("output", {"output": "tanh"}, ConfigError, ["output='tanh'", "an output activation", "sigmoid, softmax, identity"]),
    ("cost", {"cost": "hinge"}, ConfigError, ["cost='hinge'", "quadratic, cross_entropy"]),
    ("cost-int", {"cost": 3}, ConfigError, ["cost=3", "quadratic, cross_entropy"]),
    ("init", {"init": "orthogonal"}, ConfigError, ["init='orthogonal'", "nielsen, glorot, he"]),
    ("pair", {"output": "identity", "cost": "cross_entropy"}, ConfigError, ["cross_entropy", "identity", "quadratic"]),
    ("dtype", {"dtype": "int32"}, ConfigError, ["dtype='int32'", "float32", "float64"]),
    ("dtype-float16", {"dtype": "float16"}, ConfigError, ["dtype='float16'", "float32"]),
    ("seed-string", {"seed": "abc"}, ConfigError, ["seed", "non-negative integer", "'abc'"]),
    ("seed-negative", {"seed": -1}, ConfigError, ["seed", "non-negative integer", "-1"]),
    ("seed-float", {"seed": 1.5}, ConfigError, ["seed", "1.5"]),
    ("device", {"device": "tpu"}, ConfigError, ["device='tpu'", "cpu, gpu, cuda, cuda:N, auto"]),
    ("device-int", {"device": 3}, ConfigError, ["device=3", "cpu, gpu"]),
]


@pytest.mark.parametrize("cid,kwargs,cls,words", BAD_CONFIG, ids=[c[0] for c in BAD_CONFIG])
def test_bad_configuration_is_rejected_with_the_valid_choices(cid, kwargs, cls, words):
    kwargs = dict(kwargs)
    sizes = kwargs.pop("sizes", [4, 5, 3])
    with pytest.raises(cls) as info:
        bpgpu.MLP(sizes, **kwargs)
    _assert_clear(info, cls, *words)


def test_every_unsupported_cost_output_pair_is_rejected():
    from bpgpu.math.activations import OUTPUT
    from bpgpu.math.costs import COSTS

    for cost_name, cost in COSTS.items():
        for output in OUTPUT:
            if output in cost.outputs:
                bpgpu.MLP([3, 2], output=output, cost=cost_name)
                continue
            with pytest.raises(ConfigError, match=re.escape(cost_name)):
                bpgpu.MLP([3, 2], output=output, cost=cost_name)


def test_set_parameters_rejects_wrong_shapes_and_counts():
    net = _net()
    w, b = net.get_parameters()
    with pytest.raises(ShapeError, match="expected 2 weight"):
        net.set_parameters(w[:1], b)
    with pytest.raises(ShapeError, match=r"layer 1: expected weights \(5, 4\)"):
        net.set_parameters([w[0].T, w[1]], b)


def test_numpy_scalar_widths_are_fine():
    assert bpgpu.MLP([np.int64(4), np.int32(3)]).sizes == [4, 3]


def test_every_bpgpu_error_is_a_builtin_a_caller_would_catch():
    for cls in (bpgpu.ConfigError, bpgpu.DataError, bpgpu.ShapeError, bpgpu.DeviceMismatchError,
                bpgpu.ModelFileError):
        assert issubclass(cls, ValueError) and issubclass(cls, BpgpuError)
    assert issubclass(bpgpu.DeviceError, RuntimeError)
    assert issubclass(bpgpu.DivergenceError, FloatingPointError)  # an ArithmeticError
    assert issubclass(bpgpu.OutOfMemoryError, MemoryError)


# -- fuzz: anything malformed gives a documented error, never an internal one ----------------------

def _malformed_inputs(rng):
    shapes = [(), (0,), (6,), (6, 0), (6, 3), (6, 4), (6, 5), (5, 4), (1, 4), (6, 4, 1), (0, 4)]
    dtypes = [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex64, object]
    for shape in shapes:
        for dtype in dtypes:
            a = rng.integers(-3, 4, size=shape).astype(dtype) if dtype is not object else np.empty(shape, dtype=object)
            yield a


def test_no_internal_error_escapes_for_any_shape_or_dtype():
    """Every (x, y) combination of odd shapes and dtypes either works or raises a bpgpu error."""
    net = _net()
    rng = np.random.default_rng(1)
    inputs = list(_malformed_inputs(rng))
    outcomes = {"ok": 0, "error": 0}
    for x in inputs[::3] + [X]:
        for y in inputs[1::2] + [LABELS]:
            try:
                net.backprop(x, y)
                outcomes["ok"] += 1
            except BpgpuError as exc:
                assert isinstance(exc, (ValueError, TypeError))
                outcomes["error"] += 1
            except TypeError as exc:  # only our own TypeErrors, which name the argument
                assert str(exc).startswith(("x ", "y ")), exc
                outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


# -- unusual array kinds ---------------------------------------------------------------------------

def test_masked_arrays_with_masked_values_are_rejected_not_silently_unmasked():
    net = _net()
    masked = np.ma.masked_array(X, mask=X > 0.5)
    with pytest.raises(DataError, match=r"x is a masked array with \d+ masked value\(s\).*filled"):
        net.forward(masked)
    assert net.forward(np.ma.masked_array(X)).shape == (6, 3)  # nothing masked: fine


def test_big_endian_and_strided_host_arrays_are_converted():
    torch = pytest.importorskip("torch")
    big = X.astype(">f8")
    strided = np.asfortranarray(np.repeat(X, 2, axis=0))[::2]
    for kwargs in ({}, {"xp": torch, "device": "cpu"}):
        net = _net(**kwargs)
        np.testing.assert_allclose(bpgpu.to_host(net.forward(big)), bpgpu.to_host(net.forward(X)))
        np.testing.assert_allclose(bpgpu.to_host(net.forward(strided)), bpgpu.to_host(net.forward(X)))


def test_torch_tensors_in_an_autograd_graph_are_detached_and_sparse_ones_rejected():
    torch = pytest.importorskip("torch")
    net = _net(xp=torch, device="cpu")
    x = torch.tensor(X, requires_grad=True)
    cost, grad_w, _ = net.backprop(x, torch.tensor(LABELS))  # no autograd warning (warnings are errors)
    assert not grad_w[0].requires_grad
    with pytest.raises(TypeError, match=r"x is a sparse Tensor; pass a dense array"):
        net.forward(torch.tensor(X).to_sparse())


@pytest.mark.parametrize("kwargs,cls,word", [
    ({"eps": 0}, ConfigError, "eps"), ({"eps": -1e-6}, ConfigError, "eps"), ({"floor": 0}, ConfigError, "floor"),
    ({"max_entries": -1}, ConfigError, "max_entries"), ({"directions": 1.5}, TypeError, "directions"),
    ({"seed": "a"}, ConfigError, "seed"),
])
def test_gradcheck_rejects_bad_settings(kwargs, cls, word):
    with pytest.raises(cls, match=word):
        bpgpu.gradcheck(_net(), X, LABELS, **kwargs)
