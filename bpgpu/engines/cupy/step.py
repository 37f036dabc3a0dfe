"""The CuPy step engine: the generic engine's step (same equations; the update in the order of
:meth:`Optimizer.update_flat`) as few device operations as the math allows, and no device→host sync
per batch.

- **Flat buffers.** Parameters in one flat buffer P (every weight matrix, each padded to whole
  chunks of C elements, then every bias vector); ``net.weights`` / ``net.biases`` become views of it.
  Gradients in G (same layout + one slot for the batch cost, so a data-parallel step all-reduces one
  array), optimizer state in flat buffers of P's layout viewed by ``optimizer.state``. BP3/BP4 write
  straight into G's views (``cupy.sum(..., out=)``, ``cupy.matmul(..., out=)``).
- **Fused kernels** (``kernels.py``, ``cupy.fuse``): bias + activation; BP2's ⊙ σ'; the output layer's
  softmax/sigmoid + cost + Δ^L in 2–5 kernels; the per-layer ‖∂C/∂W^l‖² by ONE reduction over G's
  weights viewed as (chunks, C) (each layer owns whole chunks); the optimizer update over all of P
  in ONE kernel (two with weight decay: weights, then biases).
- **Workspaces** per batch size, allocated once: gathered rows (``cupy.take(..., out=)``), the
  activations A^l (Z^l turned into A^l in place, then into Δ^l in place during the backward pass),
  one scratch for BP2's products, Δ^L.
- **No per-batch sync.** Each step leaves its cost (0-d) and its chunk sums on the device;
  :meth:`end_epoch` turns them into the epoch's sums and reads them with the parameter probe in one
  transfer. Divergence is found by ``fit``'s replay from a host snapshot (``checks_each_step`` False).

Device operations per step, counted on the CuPy test double (tests/test_cupy_engine.py): 2 gathers;
per hidden layer a GEMM + a fused kernel forward, and BP3 + BP4 + BP2's GEMM + the ⊙σ' kernel
backward (identity hidden: no ⊙σ' kernel); the output layer's GEMM + 4 kernels (softmax +
cross-entropy) and BP3 + BP4; 1 norm reduction; 1 update. W2 ([784,256,256,10]): 23 with SGD
momentum or Adam; W3 ([1024,4096,4096,1024,10]): 29.
"""

from __future__ import annotations

import math
from typing import Any

from bpgpu.backend.arrays import to_backend
from bpgpu.engines.base import Engine as BaseEngine
from bpgpu.engines.base import EpochStats, StepConfig
from bpgpu.engines.cupy.kernels import kernels
from bpgpu.guards import raise_if_out_of_memory
from bpgpu.math.clipping import EPS as CLIP_EPS
from bpgpu.training.optimizers import SGD, Adam, Optimizer

ALIGN = 128  # elements: every bias vector starts 512-byte aligned (float32)


def chunk_size(weight_sizes: list[int]) -> int:
    """C, the chunk the norm reduction sums along: a power of two near √(number of weights), in
    [64, 8192], so each layer's padding (< C) is small and the per-step partial sums (one per chunk)
    are few."""
    total = max(sum(weight_sizes), 1)
    c = 1 << max(0, round(math.log2(math.sqrt(total))))
    return min(max(c, 64), 8192)


class Layout:
    """Offsets in the flat buffer: weight l at ``offsets[l]`` (whole chunks), then the biases."""

    def __init__(self, weight_shapes: list[tuple[int, int]], bias_shapes: list[tuple[int]]) -> None:
        self.weight_shapes, self.bias_shapes = weight_shapes, bias_shapes
        sizes = [math.prod(s) for s in weight_shapes]
        self.chunk = c = chunk_size(sizes)
        self.offsets, self.chunk_bounds, at = [], [0], 0
        for n in sizes:
            self.offsets.append(at)
            at += -(-n // c) * c
            self.chunk_bounds.append(at // c)     # layer l's chunks: [bounds[l], bounds[l+1])
        self.weights_end = at
        for shape in bias_shapes:
            self.offsets.append(at)
            at += -(-math.prod(shape) // ALIGN) * ALIGN
        self.size = at

    @property
    def n_chunks(self) -> int:
        return self.weights_end // self.chunk

    def views(self, flat: Any) -> list[Any]:
        shapes = self.weight_shapes + self.bias_shapes
        return [flat[o:o + math.prod(s)].reshape(s) for o, s in zip(self.offsets, shapes)]


class Workspace:
    """Device buffers for batches of ``m`` rows (made once per batch size)."""

    def __init__(self, cp: Any, sizes: list[int], m: int, dtype: Any) -> None:
        self.m = m
        self.x = cp.empty((m, sizes[0]), dtype=dtype)
        self.y = cp.empty((m, sizes[-1]), dtype=dtype)
        self.a = [cp.empty((m, n), dtype=dtype) for n in sizes[1:-1]]   # A^l, then Δ^l in place
        self.z = cp.empty((m, sizes[-1]), dtype=dtype)                  # Z^L without its bias
        self.d = cp.empty((m, sizes[-1]), dtype=dtype)                  # Δ^L
        hidden = sizes[1:-1]
        flat = cp.empty(m * max(hidden), dtype=dtype) if hidden else None
        self.t = [flat[:m * n].reshape(m, n) for n in hidden]           # BP2's Δ^{l+1} W^{l+1}
        self.dT = self.d.T


def _optimizer_kernel(opt: Any) -> str | None:
    """The fused update for this optimizer ("sgd", "sgd_momentum", "sgd_nesterov", "adam"), or None
    for an optimizer class the engine has no kernel for (it then runs ``update_flat`` or ``step``)."""
    if type(opt) is SGD:
        return "sgd_nesterov" if opt.nesterov else ("sgd_momentum" if opt.momentum else "sgd")
    if type(opt) is Adam:
        return "adam"
    return None


class Engine(BaseEngine):
    name = "cupy"
    checks_each_step = False
    supports = frozenset({"clip_norm", "clip_value"})  # dropout runs on the generic engine

    def __init__(self, net: Any, optimizer: Any = None, config: StepConfig | None = None) -> None:
        super().__init__(net, optimizer, config)
        import cupy

        self.cp = cupy
        self.k = kernels(cupy)
        self.dtype = net.dtype
        self.hidden = net.hidden.name
        self.pair = (net.objective.output.name, net.objective.cost.name)
        self.layout = Layout([tuple(w.shape) for w in net.weights], [tuple(b.shape) for b in net.biases])
        self._workspaces: dict[int, Workspace] = {}
        self._acc = cupy.float64
        self._offset = EpochStats(0.0, 0.0, 0, True, [])
        if optimizer is not None:
            try:
                with net.backend.activate():
                    self._adopt(net, optimizer)
            except MemoryError as exc:  # the flat buffers do not fit: bpgpu's error, the network untouched
                raise_if_out_of_memory(exc, net, self.config.batch_size)
                raise
            self.start_epoch()

    # -- owning the parameters, gradients and optimizer state --------------------------------------------
    def _adopt(self, net: Any, optimizer: Any) -> None:
        cp, lay, L = self.cp, self.layout, self.layers
        self.P = cp.zeros(lay.size, dtype=self.dtype)
        views = lay.views(self.P)
        for view, a in zip(views, list(net.weights) + list(net.biases)):
            view[...] = a
        net.weights[:], net.biases[:] = views[:L], views[L:]
        self.W, self.B = views[:L], views[L:]
        self.WT = [w.T for w in self.W]
        self.G = cp.zeros(lay.size + 1, dtype=self.dtype)     # + the batch cost's slot (all-reduce)
        self.Gp = self.G[:lay.size]
        gviews = lay.views(self.G)
        self.GW, self.GB = gviews[:L], gviews[L:]
        self.G_chunks = self.G[:lay.weights_end].reshape(lay.n_chunks, lay.chunk)
        self.S: dict[str, Any] = {}
        for name in optimizer.state_names:        # flat state; existing state that fits is kept
            flat = cp.zeros(lay.size, dtype=self.dtype)
            state_views = lay.views(flat)
            current = optimizer.state.get(name)
            if current is not None and len(current) == len(views) and all(
                    tuple(c.shape) == tuple(v.shape) and c.dtype == v.dtype for c, v in zip(current, views)):
                for view, a in zip(state_views, current):
                    view[...] = a
            self.S[name] = flat
            optimizer.state[name] = state_views
        self.update_kernel = _optimizer_kernel(optimizer)
        self.scratch = None
        if self.update_kernel is None and type(optimizer).update_flat is not Optimizer.update_flat:
            self.scratch = cp.empty(lay.size, dtype=self.dtype)
        self.workspace(self.config.batch_size)

    def workspace(self, m: int, keep: bool = True) -> Workspace:
        """The buffers for m rows: kept for training batch sizes; made per call (``keep=False``) for
        gradients and inference, so a network's cached inference engine holds no device memory."""
        ws = self._workspaces.get(m)
        if ws is None and not keep:
            return Workspace(self.cp, list(self.net.sizes), m, self.dtype)
        if ws is None:
            if len(self._workspaces) > 3:
                self._workspaces.clear()
            ws = self._workspaces[m] = Workspace(self.cp, list(self.net.sizes), m, self.dtype)
        return ws

    # -- BP1–BP4 into buffers ------------------------------------------------------------------------------
    def _forward_hidden(self, v: Workspace, xb: Any, W: list[Any], B: list[Any]) -> Any:
        matmul, act = self.cp.matmul, getattr(self.k, "bias_" + self.hidden)
        a = xb
        for l in range(self.layers - 1):
            matmul(a, W[l].T, out=v.a[l])                  # Z^l = A^{l−1} W^{lT}
            act(v.a[l], B[l])                              # A^l = σ(Z^l + b^l), in place
            a = v.a[l]
        return a

    def _output(self, z: Any, b: Any, y: Any, d: Any, s: Any) -> Any:
        """Σ_i s_i C_i (0-d) and Δ^L · s into ``d``, from the bias-less logits z and the bias b."""
        k, pair = self.k, self.pair
        if pair[0] == "softmax":
            zmax = k.row_max(z, b)[:, None]
            esum = k.row_expsum(z, b, zmax)[:, None]
            if pair[1] == "cross_entropy":
                cost = k.softmax_ce_cost(z, b, y, zmax, esum, s)
                k.softmax_ce_delta(d, z, b, y, zmax, esum, s)
            else:
                cost = k.softmax_quad_cost(z, b, y, zmax, esum, s)
                rowdot = k.softmax_quad_rowdot(z, b, y, zmax, esum)[:, None]
                k.softmax_quad_delta(d, z, b, y, zmax, esum, rowdot, s)
        elif pair == ("sigmoid", "cross_entropy"):
            cost = k.sigmoid_ce_cost(z, b, y, s)
            k.sigmoid_ce_delta(d, z, b, y, s)
        elif pair == ("sigmoid", "quadratic"):
            cost = k.sigmoid_quad_cost(z, b, y, s)
            k.sigmoid_quad_delta(d, z, b, y, s)
        else:
            cost = k.identity_quad_cost(z, b, y, s)
            k.identity_quad_delta(d, z, b, y, s)
        return cost

    def _backprop(self, v: Workspace, xb: Any, yb: Any, W: list[Any], B: list[Any], s: Any,
                  gw: list[Any], gb: list[Any]) -> Any:
        cp, L = self.cp, self.layers
        a = self._forward_hidden(v, xb, W, B)
        cp.matmul(a, W[L - 1].T, out=v.z)
        cost = self._output(v.z, B[L - 1], yb, v.d, s)    # BP1 (× 1/m or w_i/Σw)
        back = getattr(self.k, "back_" + self.hidden, None)
        d, dT = v.d, v.dT
        for l in range(L - 1, -1, -1):
            prev = v.a[l - 1] if l else xb
            cp.sum(d, axis=0, out=gb[l])                   # BP3
            cp.matmul(dT, prev, out=gw[l])                 # BP4
            if l:
                if back is None:                           # identity: Δ^{l−1} = Δ^l W^l
                    cp.matmul(d, W[l], out=prev)
                else:
                    t = v.t[l - 1]
                    cp.matmul(d, W[l], out=t)              # BP2: (Δ^l W^l) ⊙ σ'(Z^{l−1}),
                    back(prev, t, prev)                    # into A^{l−1}'s buffer (no longer needed)
                d = prev
                dT = d.T
        return cost

    # -- the epoch ---------------------------------------------------------------------------------
    def start_epoch(self) -> None:
        self._costs: list[Any] = []      # per step: Σ_i s_i C_i (0-d, on the device)
        self._weights: list[Any] = []    # per step: the batch weight (host float, or 0-d with sample weights)
        self._parts: list[Any] = []      # per step: Σ g² per chunk of the weight gradients
        self._offset = EpochStats(0.0, 0.0, 0, True, [])

    def _device_sums(self) -> list[Any]:
        """[cost sum, weight sum, parameter probe, ‖∂C/∂W^l‖ sums…] as 0-d float64 device arrays."""
        cp, acc = self.cp, self._acc
        zero = cp.zeros((), dtype=acc)
        if self._costs:
            costs = cp.stack(self._costs).astype(acc)
            if all(isinstance(w, float) for w in self._weights):
                weights = cp.asarray(self._weights, dtype=acc)
            else:
                weights = cp.stack([cp.asarray(w, dtype=acc) for w in self._weights])
            cost_sum, weight_sum = cp.sum(costs * weights), cp.sum(weights)
        else:
            cost_sum = weight_sum = zero
        out = [cost_sum, weight_sum, cp.sum(self.P, dtype=acc)]
        if self.config.record_grad_norms:
            bounds = self.layout.chunk_bounds
            if self._parts:
                parts = cp.stack(self._parts).astype(acc)               # (steps, chunks)
                out += [cp.sum(cp.sqrt(cp.sum(parts[:, bounds[l]:bounds[l + 1]], axis=1)))
                        for l in range(self.layers)]
            else:
                out += [zero] * self.layers
        return out

    def end_epoch(self) -> EpochStats:
        with self.net.backend.activate():
            values = [float(v) for v in self.cp.stack(self._device_sums()).get()]   # one transfer
        off = self._offset
        cost_sum, weight_sum = values[0] + off.cost_sum, values[1] + off.weight_sum
        finite = all(math.isfinite(v) for v in (cost_sum, values[2]))
        norms = values[3:]
        if norms and off.grad_norm_sums:
            norms = [a + b for a, b in zip(norms, off.grad_norm_sums)]
        return EpochStats(cost_sum, weight_sum, len(self._costs) + off.batches, finite, norms)

    def load_epoch(self, stats: EpochStats) -> None:
        self.start_epoch()
        self._offset = EpochStats(stats.cost_sum, stats.weight_sum, stats.batches, stats.finite,
                                  list(stats.grad_norm_sums))

    def running_cost(self) -> float:
        stats = self.end_epoch()
        return stats.cost

    def last_step_finite(self) -> bool:
        with self.net.backend.activate():
            last = self._costs[-1] if self._costs else self.cp.zeros((), dtype=self._acc)
            values = self.cp.stack([last.astype(self._acc), self.cp.sum(self.P, dtype=self._acc)]).get()
        return all(math.isfinite(float(v)) for v in values)

    # -- one step ----------------------------------------------------------------------------------
    def step(self, x: Any, y: Any, idx: Any, sample_weight: Any = None) -> None:
        with self.net.backend.activate():
            self._step(x, y, idx, sample_weight)

    def _step(self, x: Any, y: Any, idx: Any, sample_weight: Any) -> None:
        cp, comm = self.cp, self.comm
        m = idx.shape[0]
        rows, lo, hi = self.shard(idx)
        mr = hi - lo
        if sample_weight is None:
            s, weight = 1.0 / m, float(m)
        else:
            w = cp.take(sample_weight, idx, axis=0)
            weight = cp.sum(w)
            s = (w[lo:hi] / cp.maximum(weight, 1e-30))[:, None]    # a batch of zero weights: no step
        if mr:
            v = self.workspace(mr)
            xb = cp.take(x, rows, axis=0, out=v.x)
            yb = cp.take(y, rows, axis=0, out=v.y)
            cost = self._backprop(v, xb, yb, self.W, self.B, s, self.GW, self.GB)
        else:  # more ranks than rows in this batch: this rank adds nothing
            self.G[...] = 0
            cost = cp.zeros((), dtype=self.dtype)
        if comm.size > 1:
            self.G[-1] = cost
            reduced = comm.allreduce_sum([self.G])[0]
            if reduced is not self.G:
                self.G[...] = reduced
            cost = self.G[-1].copy()
        if self.config.record_grad_norms:
            self._parts.append(self.k.sq_chunks(self.G_chunks))   # Σ g² per chunk: one reduction
        if self.config.clip_norm is not None or self.config.clip_value is not None:
            self._clip()
        self._update()
        self._costs.append(cost)
        self._weights.append(weight)

    def _clip(self) -> None:
        """Clip the gradient buffer in place, by global norm then by value (bpgpu.math.clipping), after
        the norms are recorded and before the update (weight decay comes after, as in torch)."""
        k, cfg, g = self.k, self.config, self.Gp
        if cfg.clip_norm is None:
            k.clip_value(g, float(cfg.clip_value))
            return
        total = k.sq_total(g)
        if cfg.clip_value is None:
            k.clip_norm(g, total, float(cfg.clip_norm), CLIP_EPS)
        else:
            k.clip_norm_value(g, total, float(cfg.clip_norm), CLIP_EPS, float(cfg.clip_value))

    def _update(self) -> None:
        """The optimizer's step over the flat buffers in one fused kernel (weights and biases apart
        when there is weight decay); it allocates nothing, so an out-of-memory error cannot leave it
        half done."""
        opt, k, kind = self.optimizer, self.k, self.update_kernel
        if kind is None:
            self._update_generic()
            return
        opt.begin_step()
        wd = opt.weight_decay
        regions = [(slice(0, self.layout.size), 0.0)] if not wd else [
            (slice(0, self.layout.weights_end), wd), (slice(self.layout.weights_end, self.layout.size), 0.0)]
        for region, decay in regions:
            p, g = self.P[region], self.Gp[region]
            if kind == "adam":
                b1, b2 = opt.betas
                args = (p, g, self.S["m"][region], self.S["v"][region], b1, 1.0 - b1, b2, 1.0 - b2,
                        opt._bc2_sqrt, opt.eps, opt._step_size)
            elif kind == "sgd":
                args = (p, g, opt.lr)
            else:
                args = (p, g, self.S["velocity"][region], opt.lr, opt.momentum)
            if decay:
                getattr(k, kind + "_decay")(*args, decay)
            else:
                getattr(k, kind)(*args)

    def _update_generic(self) -> None:
        """An optimizer without a fused kernel: its ``update_flat`` over the flat buffers, or its
        generic ``step`` copied into the buffers once every layer's new arrays exist."""
        opt, cp = self.optimizer, self.cp
        if self.scratch is not None:
            opt.begin_step()
            names = list(opt.state_names)
            if opt.weight_decay:
                we = self.layout.weights_end
                opt.decay_flat(cp, self.P[:we], self.Gp[:we], self.scratch[:we])
            opt.update_flat(cp, self.P, self.Gp, [self.S[n] for n in names], self.scratch)
            return
        self.update_through_step()

    def restore(self, snap: Any) -> None:
        """Copy a host snapshot back into the flat buffers (the views stay the network's arrays)."""
        backend = self.net.backend
        with backend.activate():
            for dst, src in zip(self.W + self.B, snap.weights + snap.biases):
                dst[...] = to_backend(src, backend, self.dtype)
            for name, values in snap.state.items():
                for dst, src in zip(self.optimizer.state[name], values):
                    dst[...] = to_backend(src, backend, self.dtype)
        self.optimizer.steps = snap.steps
        self.net.weights[:], self.net.biases[:] = self.W, self.B

    # -- no update ---------------------------------------------------------------------------------
    def gradients(self, x: Any, y: Any, sample_weight: Any = None) -> tuple[Any, list[Any], list[Any]]:
        with self.net.backend.activate():
            cp, net, m = self.cp, self.net, x.shape[0]
            flat = cp.zeros(self.layout.size, dtype=self.dtype)     # new arrays: the caller keeps them
            views = self.layout.views(flat)
            gw, gb = views[:self.layers], views[self.layers:]
            if sample_weight is None:
                s = 1.0 / m
            else:
                s = (sample_weight / cp.maximum(cp.sum(sample_weight), 1e-30))[:, None]
            v = self.workspace(m, keep=False)
            cost = self._backprop(v, x, y, list(net.weights), list(net.biases), s, gw, gb)
            return cost, gw, gb

    def outputs(self, x: Any) -> tuple[Any, Any]:
        with self.net.backend.activate():
            cp, net, k, L = self.cp, self.net, self.k, self.layers
            a = self._forward_hidden(self.workspace(x.shape[0], keep=False), x, net.weights, net.biases)
            z = cp.matmul(a, net.weights[L - 1].T)                  # new arrays: returned to the caller
            k.bias_identity(z, net.biases[L - 1])
            out = self.pair[0]
            if out == "identity":
                return z, z
            a = cp.empty_like(z)
            if out == "softmax":
                zmax = k.row_max(z, 0.0)[:, None]
                k.softmax_out(a, z, 0.0, zmax, k.row_expsum(z, 0.0, zmax)[:, None])
            else:
                k.sigmoid_out(a, z, 0.0)
            return z, a
