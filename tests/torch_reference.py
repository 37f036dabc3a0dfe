"""An independent oracle for the training features: the same MLP trained by torch autograd and
torch.optim, batch by batch in order (fit with shuffle=False), with torch's own gradient clipping,
weighted losses and fixed dropout masks."""

from __future__ import annotations

import numpy as np


def torch_train(torch, net, x, y_rows, batch_size, epochs, make_optimizer, *, clip_norm=None, clip_value=None,
                row_weights=None, masks=None, lrs=None, weights_decay=0.0):
    """Train a copy of ``net``'s initial parameters with torch; returns (weights, biases, info). ``make_optimizer(groups)`` builds the torch optimizer from
    [weights group, biases group]; ``weights_decay`` is the weights group's weight_decay (L2 for
    SGD/Adam, the decoupled λ for AdamW; biases are never decayed). The third
    result holds each step's total gradient norm and largest |gradient| before clipping.
    ``masks(step, rows)``: the dropout scales of each hidden layer for that step (or None)."""
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda t: t}[net.hidden.name]
    W = [torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True) for w in net.weights]
    B = [torch.tensor(np.asarray(b, dtype=np.float64), requires_grad=True) for b in net.biases]
    opt = make_optimizer([{"params": W, "weight_decay": weights_decay}, {"params": B, "weight_decay": 0.0}])
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y_rows, dtype=torch.float64)
    wt = None if row_weights is None else torch.tensor(row_weights, dtype=torch.float64)
    m, step, norms, max_abs = x.shape[0], 0, [], []
    for epoch in range(epochs):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[epoch]
        for start in range(0, m, batch_size):
            sl = slice(start, min(start + batch_size, m))
            a = xt[sl]
            scales = masks(step, a.shape[0]) if masks is not None else None
            for l in range(len(W) - 1):
                a = act(a @ W[l].T + B[l])
                if scales is not None:
                    a = a * torch.tensor(scales[l])
            z = a @ W[-1].T + B[-1]
            if net.output == "softmax":
                per = -(yt[sl] * torch.log_softmax(z, dim=1)).sum(dim=1)
            elif net.output == "identity":
                per = 0.5 * ((z - yt[sl]) ** 2).sum(dim=1)
            else:
                raise NotImplementedError(net.output)
            loss = per.mean() if wt is None else (per * wt[sl]).sum() / wt[sl].sum()
            opt.zero_grad()
            loss.backward()
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in W + B]))))
            max_abs.append(max(float(p.grad.abs().max()) for p in W + B))
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(W + B, clip_norm)
            if clip_value is not None:
                torch.nn.utils.clip_grad_value_(W + B, clip_value)
            opt.step()
            step += 1
    return [w.detach().numpy() for w in W], [b.detach().numpy() for b in B], {"norms": norms, "max_abs": max_abs}


def host(arrays):
    from bpgpu import to_host

    return [np.asarray(to_host(a), dtype=np.float64) for a in arrays]


def max_rel_diff(got, want):
    """max |got − want| / max |want| over all arrays."""
    scale = max(float(np.max(np.abs(w))) for w in want)
    return max(float(np.max(np.abs(g - w))) for g, w in zip(got, want)) / scale
