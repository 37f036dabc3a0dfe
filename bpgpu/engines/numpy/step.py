"""The NumPy step engine: the generic engine's step (same equations, same update arithmetic) on
buffers it owns, so a step allocates nothing the size of a layer or of the parameters.

- **Flat buffers.** The parameters live in one flat buffer P — every weight matrix first, then every
  bias vector (so weight decay is one slice) — and ``net.weights`` / ``net.biases`` become views
  into it; the gradients live in G (same layout, plus one slot for the batch cost, so a data-parallel
  step all-reduces *one* array with one call), the optimizer state (velocities, moments) in flat
  buffers of P's layout whose views are ``optimizer.state``. One update covers every layer
  (:meth:`Optimizer.update_flat`, the same ufuncs in the same order as :meth:`Optimizer.step`: bit
  for bit the same), in cache-sized chunks for large networks so its scratch stays in cache.
- **Workspaces** for a full batch, allocated once: the gathered rows (``np.take(..., out=)``), the
  activations A^l (each Z^l is turned into A^l in place), the deltas Δ^l, one scratch. Every product
  is a BLAS GEMM with ``out=`` (Δᵀ and Wᵀ are transposed views: a BLAS flag, no copy).
- **Norms and checks from the gradient buffer.** ‖∂C/∂W^l‖² is a BLAS dot of G's slice with itself
  (no g ⊙ g temporary); the batch cost and those dots are finite-checked *before* the update is
  applied (no per-batch device sync exists on the host), so a diverging step is refused and the
  parameters stay at the last step boundary — no epoch-start copy of the model is kept.
- **Host-side sums in float64**: the epoch's cost and norm sums cannot overflow a float32 network.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from bpgpu.backend import dropout
from bpgpu.engines.base import Engine as BaseEngine
from bpgpu.engines.base import EpochStats, StepConfig, StepDiverged
from bpgpu.engines.numpy import kernels as K
from bpgpu.math import backprop as bp
from bpgpu.math.clipping import EPS as CLIP_EPS
from bpgpu.training.optimizers import Optimizer

CHUNK = 1 << 16          # elements per update chunk (its scratch stays in L2) for large networks;
WHOLE = 1 << 19          # up to this many parameters one pass over the whole buffer is faster (measured)
ALIGN = 16               # each parameter array starts on a 64-byte boundary (float32)
INF = float("inf")


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class Layout:
    """Offsets of every weight matrix, then every bias vector, in one flat buffer."""

    def __init__(self, weight_shapes: list[tuple[int, int]], bias_shapes: list[tuple[int]]) -> None:
        self.weight_shapes, self.bias_shapes = weight_shapes, bias_shapes
        offsets, at = [], 0
        for i, shape in enumerate(weight_shapes + bias_shapes):
            if i == len(weight_shapes):
                self.weights_end = at       # [0, weights_end): every weight (and padding)
            offsets.append(at)
            at += _aligned(math.prod(shape))
        self.offsets, self.size = offsets, at

    def views(self, flat: Any) -> list[Any]:
        """Arrays shaped like weights + biases, viewing ``flat``."""
        shapes = self.weight_shapes + self.bias_shapes
        return [flat[o:o + math.prod(s)].reshape(s) for o, s in zip(self.offsets, shapes)]

    def flat_views(self, flat: Any) -> list[Any]:
        """The same arrays as 1-D views (for BLAS dots)."""
        shapes = self.weight_shapes + self.bias_shapes
        return [flat[o:o + math.prod(s)] for o, s in zip(self.offsets, shapes)]


class Workspace:
    """Buffers for up to ``rows`` rows of a network with layer sizes ``sizes``; ``views(m)`` gives the
    first m rows of each (cached: a full batch and the epoch's short last batch)."""

    def __init__(self, sizes: list[int], rows: int, dtype: Any) -> None:
        self.sizes, self.rows = sizes, rows
        self.x = np.empty((rows, sizes[0]), dtype)
        self.y = np.empty((rows, sizes[-1]), dtype)
        self.a = [np.empty((rows, n), dtype) for n in sizes[1:]]
        self.d = [np.empty((rows, n), dtype) for n in sizes[1:]]
        widest = max(sizes[1:])
        self.tmp = np.empty(rows * widest, dtype)
        self.mask = np.empty(rows * widest, np.bool_)
        self.col = np.empty((rows, 1), dtype)
        self.costs = np.empty(rows, dtype)
        self.w = np.empty(rows, dtype)
        self.scale = np.empty((rows, 1), dtype)
        self._cache: dict[int, Any] = {}

    def views(self, m: int) -> "Views":
        v = self._cache.get(m)
        if v is None:
            if len(self._cache) > 4:
                self._cache.clear()
            v = self._cache[m] = Views(self, m)
        return v


class Views:
    """The first m rows of a :class:`Workspace`'s buffers (made once per m)."""

    def __init__(self, ws: Workspace, m: int) -> None:
        self.m = m
        self.x, self.y = ws.x[:m], ws.y[:m]
        self.a = [a[:m] for a in ws.a]
        self.d = [d[:m] for d in ws.d]
        self.dT = [d.T for d in self.d]
        self.tmp = [ws.tmp[:m * n].reshape(m, n) for n in ws.sizes[1:]]
        self.mask = [ws.mask[:m * n].reshape(m, n) for n in ws.sizes[1:]]
        self.col, self.costs, self.w = ws.col[:m], ws.costs[:m], ws.w[:m]
        self.scale = ws.scale[:m]
        self.scale_flat = self.scale[:, 0]


class _Buffers:
    """The flat parameter, gradient and state buffers of one network (see ``Engine._adopt``)."""

    def __init__(self, owner: Any, lay: Layout, dtype: Any) -> None:
        self.owner, self.lay, self.dtype = owner, lay, dtype
        self.key = (lay.offsets, lay.size, dtype)
        self.P = np.zeros(lay.size, dtype)
        self.views = lay.views(self.P)
        self.G = np.zeros(lay.size + 1, dtype)      # + the batch cost's slot (the all-reduce)
        self._state: dict[str, tuple[Any, list[Any]]] = {}
        self._owner: dict[str, Any] = {}  # state name -> weakref to the optimizer whose state it holds

    def state(self, name: str, optimizer: Any) -> tuple[Any, list[Any]]:
        """The flat buffer for state ``name`` of ``optimizer``; another, still living optimizer whose
        state it held gets its own copy first (its velocities stay its own)."""
        got = self._state.get(name)
        if got is None:
            flat = np.zeros(self.lay.size, self.dtype)
            got = self._state[name] = (flat, self.lay.views(flat))
        ref = self._owner.get(name)
        previous = ref() if ref is not None else None
        if previous is not None and previous is not optimizer:
            held = previous.state.get(name)
            if held is not None and all(a is b for a, b in zip(held, got[1])):
                previous.state[name] = [v.copy() for v in got[1]]
        self._owner[name] = weakref.ref(optimizer)
        return got


def _fits(state: Any, views: list[Any], dtype: Any) -> bool:
    """True when ``state`` (an optimizer's list for one name) matches the parameters' shapes and dtype."""
    return state is not None and len(state) == len(views) and all(
        tuple(a.shape) == tuple(v.shape) and a.dtype == dtype for a, v in zip(state, views))


def has_flat_update(optimizer: Any) -> bool:
    """True when the optimizer's class implements :meth:`Optimizer.update_flat`."""
    return type(optimizer).update_flat is not Optimizer.update_flat


class Engine(BaseEngine):
    name = "numpy"
    checks_each_step = True
    supports = frozenset({"clip_norm", "clip_value", "dropout"})

    def __init__(self, net: Any, optimizer: Any = None, config: StepConfig | None = None) -> None:
        super().__init__(net, optimizer, config)
        self.dtype = np.dtype(net.dtype)
        self.k = K.constants(self.dtype)
        self.forward_ = K.FORWARD[net.hidden.name]
        self.backward_ = K.BACKWARD[net.hidden.name]
        self.output_ = K.OUTPUT[(net.objective.output.name, net.objective.cost.name)]
        self._workspaces: dict[int, Workspace] = {}
        self._drop_bufs: dict[int, list[Any]] = {}  # dropout: H^l ⊙ r^l per row count
        self.layout = Layout([tuple(w.shape) for w in net.weights], [tuple(b.shape) for b in net.biases])
        if optimizer is not None:
            self._adopt(net, optimizer)
            self.start_epoch()

    # -- owning the parameters, gradients and optimizer state ------------------------------------------
    def _adopt(self, net: Any, optimizer: Any) -> None:
        """Re-home the parameters and optimizer state as views of flat buffers. The buffers stay with
        the network between fits (``net.__dict__["_numpy_buffers"]``): a later fit of the same network
        reuses them — no allocation, no copy while ``net.weights`` still are their views."""
        lay, L, dtype = self.layout, self.layers, self.dtype
        buf = net.__dict__.get("_numpy_buffers")
        if buf is None or buf.owner is not net or buf.key != (lay.offsets, lay.size, dtype):
            buf = net.__dict__["_numpy_buffers"] = _Buffers(net, lay, dtype)  # (a copy of net gets its own)
        self.P, self.G, views = buf.P, buf.G, buf.views
        params = list(net.weights) + list(net.biases)
        if not all(a is b for a, b in zip(params, views)):
            for view, a in zip(views, params):
                np.copyto(view, np.asarray(a))
        net.weights[:], net.biases[:] = views[:L], views[L:]
        self.W, self.B = views[:L], views[L:]
        self.WT = [w.T for w in self.W]
        self.Gp = self.G[:lay.size]
        gviews = lay.views(self.G)
        self.GW, self.GB = gviews[:L], gviews[L:]
        self.GW_flat = lay.flat_views(self.G)[:L]
        self.S: dict[str, Any] = {}
        fits = all(_fits(optimizer.state.get(name), views, dtype) for name in optimizer.state_names)
        for name in optimizer.state_names:
            flat, state_views = buf.state(name, optimizer)
            if not fits:
                flat.fill(0.0)                             # fresh state: zeros (Optimizer.ensure_state)
            elif not all(a is b for a, b in zip(optimizer.state[name], state_views)):
                for view, a in zip(state_views, optimizer.state[name]):
                    np.copyto(view, np.asarray(a))
            self.S[name] = flat
            optimizer.state[name] = list(state_views)
        if not fits or not hasattr(optimizer, "steps"):
            optimizer.steps = 0
        self.fast_update = has_flat_update(optimizer)
        span = lay.size if lay.size <= WHOLE else CHUNK
        self.scratch = np.empty(span, dtype)
        names = list(optimizer.state_names)
        self._chunks = [(self.P[a:b], self.Gp[a:b], tuple(self.S[n][a:b] for n in names), self.scratch[:b - a])
                        for a, b in _ranges(0, lay.size, span)]
        self._decay_chunks = [(self.P[a:b], self.Gp[a:b], self.scratch[:b - a])
                              for a, b in _ranges(0, lay.weights_end, span)]
        self.GW_region = self.Gp[:lay.weights_end]
        self.GB_region = self.Gp[lay.weights_end:]      # every bias gradient (the norm clip)
        self._norm_sums = [0.0] * L
        self._ws = self.workspace(self.config.batch_size)

    def workspace(self, rows: int) -> Workspace:
        ws = self._workspaces.get(rows)
        if ws is None:
            if len(self._workspaces) > 3:
                self._workspaces.clear()
            ws = self._workspaces[rows] = Workspace(list(self.net.sizes), rows, self.dtype)
        return ws

    # -- the epoch ---------------------------------------------------------------------------------
    def start_epoch(self) -> None:
        self._cost_sum, self._weight_sum, self._batches = 0.0, 0.0, 0
        self._norm_sums = [0.0] * self.layers      # Python floats: float64 sums, no call per layer
        self._last_cost = 0.0

    def end_epoch(self) -> EpochStats:
        finite = math.isfinite(self._cost_sum) and self._params_finite()
        norms = list(self._norm_sums) if self.config.record_grad_norms else []
        return EpochStats(self._cost_sum, self._weight_sum, self._batches, finite, norms)

    def load_epoch(self, stats: EpochStats) -> None:
        self._cost_sum, self._weight_sum, self._batches = stats.cost_sum, stats.weight_sum, stats.batches
        if self.config.record_grad_norms:
            self._norm_sums = [float(v) for v in stats.grad_norm_sums]

    def running_cost(self) -> float:
        return self._cost_sum / self._weight_sum if self._weight_sum else 0.0

    def last_step_finite(self) -> bool:
        return math.isfinite(self._last_cost) and self._params_finite()

    def _params_finite(self) -> bool:
        """Every parameter finite: one pairwise sum in the parameters' dtype (NaN/inf propagate; only
        absurdly large finite parameters can overflow it, and those are then checked one by one)."""
        return math.isfinite(float(np.add.reduce(self.P))) or bool(np.isfinite(self.P).all())

    # -- BP1–BP4 into buffers ----------------------------------------------------------------------------
    def _backprop(self, v: Views, xb: Any, yb: Any, W: list[Any], WT: list[Any], B: list[Any],
                  inv_m: float, weighted: bool, gw: list[Any], gb: list[Any], drop: Any = None) -> Any:
        """Forward, the batch cost Σ_i s_i C_i and BP1–BP4 of the rows xb, yb into ``gw``, ``gb``;
        the row scales s_i are ``inv_m`` or (``weighted``) ``v.scale``. ``drop``: (scales r^l, buffers
        for H^l ⊙ r^l) of inverted dropout on the hidden layers (bpgpu.math.dropout), or None."""
        k, L, matmul, reduce = self.k, self.layers, np.matmul, np.add.reduce
        forward_, backward_ = self.forward_, self.backward_
        a = xb
        for l in range(L - 1):
            z = v.a[l]
            matmul(a, WT[l], z)                                  # Z^l = A^{l−1} W^{lT} + b^l
            z += B[l]
            forward_(z, k, v.tmp[l])                             # A^l = σ(Z^l), in place
            a = z
            if drop is not None:                                 # dropout: A^l = H^l ⊙ r^l (H^l kept for σ')
                a = np.multiply(z, drop[0][l], out=drop[1][l])
        z, d = v.a[L - 1], v.d[L - 1]
        matmul(a, WT[L - 1], z)
        z += B[L - 1]
        if weighted:
            self.output_(z, yb, d, v.tmp[L - 1], v.col, v.costs, k)
            cost = np.dot(v.costs, v.scale_flat)
            d *= v.scale                                         # BP1: Δ^L_i · w_i/Σw
        else:
            cost = float(self.output_(z, yb, d, v.tmp[L - 1], v.col, None, k)) * inv_m  # (Python float: cheaper)
            d *= inv_m                                           # BP1: Δ^L / m
        for l in range(L - 1, -1, -1):
            prev = v.a[l - 1] if l else xb
            reduce(d, 0, None, gb[l])                            # BP3 (column sums)
            matmul(v.dT[l], drop[1][l - 1] if drop is not None and l else prev, gw[l])  # BP4 (Δᵀ: a BLAS flag)
            if l:
                matmul(d, W[l], v.d[l - 1])                      # BP2
                d = v.d[l - 1]
                if drop is not None:
                    d *= drop[0][l - 1]                          # (Δ W) ⊙ r^l, then ⊙ σ'(H^l)
                backward_(prev, d, k, v.tmp[l - 1], v.mask[l - 1])
        return cost

    # -- one step ----------------------------------------------------------------------------------
    def step(self, x: Any, y: Any, idx: Any, sample_weight: Any = None) -> None:
        m = idx.shape[0]
        comm = self.comm
        if comm.size == 1:
            rows, lo, hi = idx, 0, m
        else:
            rows, lo, hi = self.shard(idx)
        mr = hi - lo
        v = self._ws.views(mr)
        weighted = sample_weight is not None
        if weighted:
            w = np.take(sample_weight, idx, out=self._ws.views(m).w, mode="clip")
            weight = float(np.add.reduce(w, dtype=np.float64))
            np.divide(w[lo:hi], max(weight, 1e-30), out=v.scale_flat)   # a batch of zero weights: no step
        else:
            weight = float(m)
        if mr:
            xb = x.take(rows, 0, v.x, "clip")                # gathered into the workspace (mode="clip":
            yb = y.take(rows, 0, v.y, "clip")                # no internal buffer; rows are in range)
            drop = self._dropout(m, lo, hi) if self.config.dropout else None
            cost = self._backprop(v, xb, yb, self.W, self.WT, self.B, 1.0 / m, weighted, self.GW, self.GB, drop)
        else:  # more ranks than rows in this batch: this rank adds nothing
            self.G[:] = 0.0
            cost = 0.0
        if comm.size > 1:
            self.G[-1] = cost
            reduced = comm.allreduce_sum([self.G])[0]
            if reduced is not self.G:
                np.copyto(self.G, reduced)
            cost = self.G[-1]
        c = float(cost)
        self._check_and_record(c)
        if self.config.clip_norm is not None or self.config.clip_value is not None:
            self._clip()
        self._update()
        self._last_cost = c
        self._cost_sum += c * weight
        self._weight_sum += weight
        self._batches += 1

    def _dropout(self, m: int, lo: int, hi: int) -> tuple[list[Any], list[Any]]:
        """This step's dropout scales (this rank's rows lo:hi of the batch's, bpgpu.backend.dropout) and
        buffers for the thinned activations (made once per row count)."""
        widths = list(self.net.sizes[1:-1])
        r = [np.asarray(s[lo:hi], dtype=self.dtype) for s in
             dropout.scales(self.dropout_key, self._batches, m, widths, self.config.dropout)]
        bufs = self._drop_bufs.get(hi - lo)
        if bufs is None:
            bufs = self._drop_bufs[hi - lo] = [np.empty((hi - lo, n), self.dtype) for n in widths]
        return r, bufs

    def _check_and_record(self, c: float) -> None:
        """Refuse a step whose cost or weight gradients are NaN/inf (before anything is applied: a
        non-finite Δ^l always makes ∂C/∂W^l non-finite, so the biases need no check of their own);
        add this step's ‖∂C/∂W^l‖ — BLAS dots of the gradient buffer's slices — to the epoch's sums."""
        dot = np.dot
        if self.config.record_grad_norms:
            weights_sq, sums, sqrt = 0.0, self._norm_sums, math.sqrt
            for l, g in enumerate(self.GW_flat):
                q = float(dot(g, g))
                weights_sq += q
                sums[l] += sqrt(q)
        else:
            weights_sq = float(dot(self.GW_region, self.GW_region))
        self._weights_sq = weights_sq  # Σ_l ‖∂C/∂W^l‖², reused by the norm clip
        if not c + weights_sq < INF:
            raise StepDiverged(self._what(c))

    def _clip(self) -> None:
        """torch's clip_grad_norm_ then clip_grad_value_ on the whole gradient buffer (bpgpu.math.clipping)."""
        cfg, G = self.config, self.Gp
        if cfg.clip_norm is not None:
            squared = self._weights_sq + float(np.dot(self.GB_region, self.GB_region))  # ‖g‖² over weights and biases
            coef = cfg.clip_norm / (math.sqrt(squared) + CLIP_EPS)
            if coef < 1.0:
                G *= coef
        if cfg.clip_value is not None:
            np.clip(G, -cfg.clip_value, cfg.clip_value, out=G)

    @staticmethod
    def _what(c: float) -> str:
        if not math.isfinite(c):
            return f"the batch cost became {c}"
        return "a gradient became NaN/inf (or its squared norm overflowed)"

    def _update(self) -> None:
        """The optimizer's step over the flat buffers (it allocates nothing, so cannot fail half-way)."""
        opt = self.optimizer
        if not self.fast_update:
            self.update_through_step()
            return
        opt.begin_step()
        if opt.weight_decay:
            for p, g, s in self._decay_chunks:
                opt.decay_flat(np, p, g, s)
        for p, g, state, s in self._chunks:
            opt.update_flat(np, p, g, state, s)

    def restore(self, snap: Any) -> None:
        """Copy a host snapshot back into the flat buffers (the views stay the network's arrays)."""
        for dst, src in zip(self.W + self.B, snap.weights + snap.biases):
            np.copyto(dst, src)
        for name, values in snap.state.items():
            for dst, src in zip(self.optimizer.state[name], values):
                np.copyto(dst, src)
        self.optimizer.steps = snap.steps
        self.net.weights[:], self.net.biases[:] = self.W, self.B

    # -- no update ---------------------------------------------------------------------------------
    def gradients(self, x: Any, y: Any, sample_weight: Any = None) -> tuple[Any, list[Any], list[Any]]:
        net, m = self.net, x.shape[0]
        W, B = list(net.weights), list(net.biases)
        flat = np.empty(self.layout.size, self.dtype)     # new arrays: the caller keeps them
        views = self.layout.views(flat)
        gw, gb = views[:self.layers], views[self.layers:]
        v = self.workspace(m).views(m)
        weighted = sample_weight is not None
        if weighted:
            total = float(np.add.reduce(sample_weight, dtype=np.float64))
            np.divide(sample_weight, max(total, 1e-30), out=v.scale_flat)
        cost = self._backprop(v, x, y, W, [w.T for w in W], B, 1.0 / m, weighted, gw, gb)
        return np.asarray(cost, dtype=self.dtype), gw, gb

    def outputs(self, x: Any) -> tuple[Any, Any]:
        """Inference is the reference forward pass (``bpgpu.math.backprop.feedforward``): predictions
        are then bit-identical on every backend that does the same float operations."""
        net = self.net
        z, a, _ = bp.feedforward(net.weights, net.biases, net.hidden, net.objective.output, x)
        return z, a


def _ranges(start: int, stop: int, span: int) -> list[tuple[int, int]]:
    return [(a, min(a + span, stop)) for a in range(start, stop, span)] if stop > start else []
