"""The CuPy test double keeps CuPy 14.2's rules where bpgpu could trip (each rule below is CuPy's, as
read in its sources: cupy/_core/_kernel.pyx _check_peer_access, core.pyx __array__/__dlpack__,
_routines_indexing.pyx _scatter_op, cupy/_core/fusion.pyx, cupy/_core/dlpack.pyx from_dlpack), and
array-api-compat takes it for CuPy."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp(cupy_double):
    return cupy_double.cupy


def test_array_api_compat_takes_the_double_for_cupy(cp):
    import array_api_compat

    x = cp.ones((2, 3), dtype=cp.float32)
    xp = array_api_compat.array_namespace(x)
    assert xp.__name__ == "array_api_compat.cupy" and array_api_compat.is_cupy_array(x)
    assert array_api_compat.is_cupy_namespace(cp) and array_api_compat.device(x) == cp.cuda.Device(0)
    assert not array_api_compat.is_numpy_array(x)
    # compat's creation functions ignore device= for CuPy: the current device decides
    assert xp.zeros(3, dtype=xp.float64, device=cp.cuda.Device(1)).device.id == 0
    with cp.cuda.Device(1):
        assert xp.zeros(3, dtype=xp.float64).device.id == 1
    # ... except asarray, which enters the device it is given
    assert xp.asarray([1.0], device=cp.cuda.Device(1)).device.id == 1


def test_no_implicit_host_conversion_and_no_numpy_operands(cp):
    x = cp.arange(4, dtype=cp.float64)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        x + np.ones(4)
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.add(x, np.ones(4))
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        x[...] = np.ones(4)
    np.testing.assert_array_equal(x.get(), [0, 1, 2, 3])
    np.testing.assert_array_equal(cp.asnumpy(x), [0, 1, 2, 3])
    assert isinstance(np.exp(x), cp.ndarray)          # NumPy functions dispatch to the device
    assert x + 1.5 is not None and x + np.float64(2.0) is not None   # scalars are fine


def test_creation_functions_take_no_device_argument(cp):
    for make in (lambda: cp.zeros(3, device=0), lambda: cp.asarray([1.0], device=cp.cuda.Device(0)),
                 lambda: cp.empty((2,), dtype=cp.float32, device=None)):
        with pytest.raises(TypeError, match="device"):
            make()


def test_operands_must_live_on_the_current_device(cp):
    with cp.cuda.Device(1):
        a = cp.ones(3)
        assert a.device.id == 1 and (a * 2).device.id == 1
    assert cp.cuda.Device().id == 0
    with pytest.raises(ValueError, match=r"The device where the array resides \(1\) is different from the "
                                         r"current device \(0\)\. Peer access is unavailable"):
        a + 1
    with pytest.raises(ValueError, match="resides"):
        cp.matmul(a, a)
    assert a[1:].device.id == 1                       # views stay where their base is, at no cost
    b = cp.asarray(a)                                 # asarray copies onto the current device
    assert b.device.id == 0 and b is not a
    with pytest.raises(Exception, match="invalid device ordinal"):
        with cp.cuda.Device(5):
            pass
    assert cp.cuda.runtime.getDeviceCount() == 2 and cp.is_available()
    with pytest.raises(TypeError, match="unhashable"):
        hash(cp.cuda.Device(0))


def test_reductions_and_scalar_indexing_give_0d_device_arrays(cp):
    x = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    for r in (x.sum(), cp.max(x), x[1, 2], cp.sum(x, axis=None), x.mean()):
        assert isinstance(r, cp.ndarray) and r.shape == ()
    assert float(x.sum()) == 15.0 and x[1, 2].item() == 5.0


def test_counts_operations_allocations_and_syncs_by_source_line(cupy_double, cp):
    x = cp.ones((4, 4), dtype=cp.float32)
    with cupy_double.record() as rec:
        y = x @ x + 1.0                                 # 2 kernels, 2 buffers
        v = x[1:3]                                      # a view: nothing
        total = float(y.sum())                          # 1 kernel, 1 buffer, 1 sync
    assert rec.n_ops == 3 and rec.n_syncs == 1 and rec.n_allocations == 3, rec.report()
    lines = {k.split(":")[-1] for k in rec.ops}
    assert len(lines) == 2 and all(k.startswith("tests/test_cupy_double.py:") for k in rec.ops)
    assert total == 80.0 and v.shape == (2, 4)
    with cupy_double.record() as rec:
        bool(y[0, 0] > 0), x.tolist(), y.get(), int(y[0, 0]), y[y > 1]   # boolean masks read a count back
    assert rec.n_syncs == 5, rec.report()


def test_memory_pool_tracks_live_bytes_and_its_limit_raises_out_of_memory(cp):
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    x = cp.empty(1000, dtype=cp.float64)              # 8000 B → 8192 B (512-byte blocks)
    assert pool.used_bytes() - before == 8192 and pool.total_bytes() >= pool.used_bytes()
    del x
    assert pool.used_bytes() == before
    pool.set_limit(size=before + 4096)
    with pytest.raises(cp.cuda.memory.OutOfMemoryError, match="Out of memory allocating 8,192 bytes") as info:
        cp.zeros(1000)
    assert isinstance(info.value, MemoryError)
    pool.set_limit(size=0)


def test_fuse_is_one_operation_and_keeps_fusions_rules(cupy_double, cp):
    @cp.fuse(kernel_name="axpy")
    def axpy(a, x, y):
        y += a * x                                    # in-place updates of arguments are allowed

    @cp.fuse()
    def sq_rows(x):
        return cp.sum(x * x, axis=1)                  # one final reduction

    x, y = cp.ones((3, 4)), cp.zeros((3, 4))
    with cupy_double.record() as rec:
        axpy(2.0, x, y)
        s = sq_rows(x)
    assert rec.n_ops == 2 and rec.n_allocations == 1, rec.report()    # no temporaries, s only
    np.testing.assert_array_equal(y.get(), 2.0)
    np.testing.assert_array_equal(s.get(), 4.0)
    with pytest.raises(TypeError, match="cannot fuse matmul"):
        cp.fuse(lambda a: cp.matmul(a, a))(x.reshape(4, 3) if False else cp.ones((3, 3)))
    with pytest.raises(NotImplementedError, match="keepdims"):
        cp.fuse(lambda a: cp.sum(a, axis=1, keepdims=True))(x)
    with pytest.raises(NotImplementedError, match="Multiple reduction"):
        cp.fuse(lambda a: cp.sum(a) + cp.max(a))(x)
    with pytest.raises(NotImplementedError, match="writes to an argument and reduces"):
        cp.fuse(lambda a, b: (cp.add(a, 1, b), cp.sum(b))[1])(x, y)
    with pytest.raises(TypeError, match="Invalid argument type"):
        axpy(2.0, x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="fusion supports"):
        cp.fuse(lambda a: a.__setitem__(0, 1.0))(x)


def test_user_kernels_run_only_through_registered_numpy_twins(cupy_double, cp):
    k = cp.ElementwiseKernel("T x", "T y", "y = 2 * x", "double_it")
    with pytest.raises(NotImplementedError, match="NumPy twin"):
        k(cp.ones(3))
    cupy_double.register_twin("double_it", lambda x: 2 * x)
    ones = cp.ones(3)
    with cupy_double.record() as rec:
        out = k(ones)
    assert rec.n_ops == 1 and isinstance(out, cp.ndarray)
    np.testing.assert_array_equal(out.get(), 2.0)
    raw = cp.RawKernel("extern \"C\" __global__ void bpgpu_probe(...) {}", "bpgpu_probe")
    x = cp.arange(16, dtype=cp.float32)
    y = cp.empty_like(x)
    raw((1,), (16,), (x, y, cp.int32(16)))            # the GPU probe's kernel, by its twin
    np.testing.assert_array_equal(y.get(), 2 * np.arange(16) + 1)


def test_dlpack_capsules_are_cuda_capsules(cp):
    x = cp.arange(3, dtype=cp.float32)
    with cp.cuda.Device(1):
        z = cp.ones(2)
    assert x.__dlpack_device__() == (2, 0) and z.__dlpack_device__() == (2, 1)
    with pytest.raises((BufferError, RuntimeError, TypeError)):
        np.from_dlpack(x)                             # NumPy sees device memory and refuses it
    np.testing.assert_array_equal(np.from_dlpack(x, device="cpu"), [0, 1, 2])   # an explicit host copy
    with pytest.raises(TypeError, match="CPU arrays cannot be directly imported to CuPy"):
        cp.from_dlpack(np.ones(3))
    y = cp.from_dlpack(x)                             # zero copy
    y[0] = 7.0
    assert float(x[0]) == 7.0
    assert type(x.__dlpack__()).__name__ == "PyCapsule"
