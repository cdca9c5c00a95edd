"""The pointwise MLP ``F`` and ``F'`` at a few points in float64 on the CPU: the interpolant's nodes and check points.

A table of :mod:`.interpolant` evaluates the exact ``F'`` (or ``F``, for the AVF step) at some 80-300 points per
training step, in float64, and back-propagates once through the nodes. With ATen kernels that took about 1.2 ms per
step at 80 + 88 points (some 60 small operators, each (points, H) float64 pass dispatched and timed on its own,
the backward recomputing the forward), a quarter of a 1-D step's fixed cost. Here each direction is one compiled
pass: the matrix products call BLAS (``np.dot``), every elementwise stage is one loop that the compiler vectorizes
(``exp``, ``sin``, ``cos`` from :mod:`._vmath`), and the forward keeps what the backward reads, so nothing is
computed twice: about 0.36 ms for the forward and backward at 80 nodes, 1.0 ms on the ATen path.

The function, for ``z1 = w1 x + b1``, ``h1 = silu(z1)``, ``z2 = W2 h1 + b2``, ``h2 = silu(z2)``,
``z3 = W3 h2 + b3``::

    F(x)  = sum_j w_j sin(z3_j)
    F'(x) = sum_j w_j cos(z3_j) dz3_j / dx   (the tangent carried through the layers, forward mode)

With the tangent, layer inputs are stacked ``[value; tangent]`` (``2n`` rows) so that each layer is one matrix
product for both, as in :class:`mesodyn.onsager.energy._LocalDerivative` (the path at grid points, on every device).
The gradient is with respect to the weights only: node positions are constants.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from mesodyn.onsager import _vmath
from mesodyn.onsager._blas import one_thread as one_blas_thread

__all__ = ["on_nodes", "COMPILED_POINTS"]

# Points whose intermediates the forward keeps for the backward (12 rows of H float64 per point, 6 KiB at H = 64);
# above it the backward recomputes them chunk by chunk (a steep F' that needs thousands of bins).
_KEEP_POINTS = 4096
# Above this many points a call takes the ATen path instead (PointwiseMLP._on_nodes): the kernels' arrays then
# outgrow what the allocator recycles, and each call faults in fresh pages. Measured in a fresh process, F' with
# its tangent, no gradient: 1 000 points 3.1 ms here against 3.5 ms on the ATen path, 20 000 points 53.6 against
# 35.8 ms, 200 000 points 498 against 322 ms (the tables of diverging rollouts, which try up to MAX_BINS bins).
COMPILED_POINTS = 1024
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}  # the weights' dtypes taken (and given back)


def on_nodes(weights: tuple[torch.Tensor, ...], tangent: bool):
    """``x -> F'(x)`` (``tangent``) or ``x -> F(x)`` in float64 for float64 points ``x`` (CPU), differentiable once
    in ``weights`` ``(w1, b1, W2, b2, W3, b3, w)`` (float32 or float64; their gradients come back in it); ``None``
    where a weight is off the CPU or of another dtype. The weights are read once, here: they must not change while
    the function is used (one table)."""
    if not all(t.device.type == "cpu" and t.dtype in _NUMPY for t in weights):
        return None
    arrays = tuple(np.array(t.detach().numpy(), dtype=np.float64) for t in weights)  # copies (a few us each)
    arrays = (arrays[0].reshape(-1),) + arrays[1:]
    return lambda x: _OnNodes.apply(x, tangent, arrays, *weights)


def _numpy64(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float64)


class _OnNodes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tangent, arrays, *weights, fast=True):
        with one_blas_thread():
            return _OnNodes._values(ctx, x, tangent, arrays, weights, fast)

    @staticmethod
    def _values(ctx, x, tangent, arrays, weights, fast):
        points = _numpy64(x).reshape(-1)
        out = np.empty_like(points)
        kept = []
        keep = points.size <= _KEEP_POINTS and any(ctx.needs_input_grad[3:])  # (a backward can follow)
        for start in range(0, points.size, _KEEP_POINTS):
            chunk = points[start:start + _KEEP_POINTS]
            space, largest = _forward(chunk, *arrays, tangent, out[start:start + chunk.size], fast)
            if largest > _vmath.TRIG_LIMIT and fast:  # (weights far out of any trained range): NumPy's sin/cos
                return _OnNodes._values(ctx, x, tangent, arrays, weights, False)
            if keep:
                kept.append(space)
        ctx.tangent, ctx.points, ctx.arrays, ctx.kept, ctx.fast = tangent, points, arrays, kept, fast
        ctx.like = [(_NUMPY[t.dtype], t.shape) for t in weights]
        return torch.from_numpy(out).reshape(x.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        if ctx.needs_input_grad[0]:
            raise RuntimeError("the node kernels differentiate in the weights only, not in the points")
        lam = _numpy64(grad_out).reshape(-1)
        grads = tuple(np.zeros_like(t) for t in ctx.arrays)
        with one_blas_thread():
            _OnNodes._gradients(ctx, lam, grads)
        return (None, None, None) + tuple(torch.from_numpy(g.astype(dtype, copy=False).reshape(shape))
                                          for g, (dtype, shape) in zip(grads, ctx.like))

    @staticmethod
    def _gradients(ctx, lam, grads):
        points, arrays, tangent = ctx.points, ctx.arrays, ctx.tangent
        for index, start in enumerate(range(0, points.size, _KEEP_POINTS)):
            chunk = points[start:start + _KEEP_POINTS]
            space = (ctx.kept[index] if ctx.kept
                     else _forward(chunk, *arrays, tangent, np.empty_like(chunk), ctx.fast)[0])
            _backward(chunk, lam[start:start + chunk.size], *arrays, tangent, ctx.fast, *space, *grads)


# --- compiled kernels --------------------------------------------------------------------------------------------
# silu(z) = z s, silu'(z) = s (1 + z (1 - s)), silu''(z) = s (1 - s) (2 + z (1 - 2 s)), s = sigmoid(z).

@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _forward(x, w1, b1, w2, b2, w3, b3, w, tangent, out, fast):  # pragma: no cover (compiled; tested via on_nodes)
    """Values into ``out``; returns the intermediates the backward reads, ``(z1, s1, a1, z2, s2, dz2, a2, y3, t3)``,
    and the largest ``|z3|``. ``fast``: the vectorizable functions of :mod:`._vmath` (valid for ``|z3| <=
    TRIG_LIMIT``), else NumPy's."""
    n, hidden = x.size, w1.size
    rows = 2 * n if tangent else n
    z1 = np.empty((n, hidden))
    s1 = np.empty((n, hidden))
    a1 = np.empty((rows, hidden))
    for i in range(n):
        for k in range(hidden):
            z = x[i] * w1[k] + b1[k]
            s = 1.0 / (1.0 + _vmath.exp(-z))
            z1[i, k], s1[i, k], a1[i, k] = z, s, z * s
            if tangent:
                a1[n + i, k] = s * (1.0 + z * (1.0 - s)) * w1[k]
    y2 = np.dot(a1, w2.T)
    z2 = np.empty((n, hidden))
    s2 = np.empty((n, hidden))
    dz2 = np.empty((n if tangent else 0, hidden))
    a2 = np.empty((rows, hidden))
    for i in range(n):
        for k in range(hidden):
            z = y2[i, k] + b2[k]
            s = 1.0 / (1.0 + _vmath.exp(-z))
            z2[i, k], s2[i, k], a2[i, k] = z, s, z * s
            if tangent:
                d = y2[n + i, k]
                dz2[i, k] = d
                a2[n + i, k] = s * (1.0 + z * (1.0 - s)) * d
    y3 = np.dot(a2, w3.T)
    # cos(z3) with the tangent, sin(z3) without: what the values read. (Loops without a reduction in them, so that
    # the compiler vectorizes them; the sums over the units come after.)
    t3 = np.empty((n, hidden))
    for i in range(n):
        for k in range(hidden):
            z = y3[i, k] + b3[k]
            if tangent:
                t3[i, k] = _vmath.cos(z) if fast else np.cos(z)
            else:
                t3[i, k] = _vmath.sin(z) if fast else np.sin(z)
    largest = 0.0
    for i in range(n):
        acc = 0.0
        for k in range(hidden):
            largest = max(largest, abs(y3[i, k] + b3[k]))
            acc += w[k] * t3[i, k] * (y3[n + i, k] if tangent else 1.0)
        out[i] = acc
    return (z1, s1, a1, z2, s2, dz2, a2, y3, t3), largest


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _backward(x, lam, w1, b1, w2, b2, w3, b3, w, tangent, fast, z1, s1, a1, z2, s2, dz2, a2, y3, t3,
              g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w):  # pragma: no cover (compiled; tested through on_nodes)
    """Adds the weights' gradients for the cotangent ``lam`` of the values into ``g_*`` (reverse over the forward
    pass whose intermediates are given; ``fast`` as there)."""
    n, hidden = x.size, w1.size
    rows = 2 * n if tangent else n
    g = np.empty((rows, hidden))
    for i in range(n):
        for k in range(hidden):
            z = y3[i, k] + b3[k]
            lw = lam[i] * w[k]
            if tangent:  # F' = sum_k w_k cos(z3_k) dz3_k
                c, d = t3[i, k], y3[n + i, k]
                g_w[k] += lam[i] * c * d
                g[i, k] = -(_vmath.sin(z) if fast else np.sin(z)) * d * lw
                g[n + i, k] = c * lw
            else:  # F = sum_k w_k sin(z3_k)
                g_w[k] += lam[i] * t3[i, k]
                g[i, k] = (_vmath.cos(z) if fast else np.cos(z)) * lw
            g_b3[k] += g[i, k]
    g_w3 += np.dot(g.T, a2)
    back = np.dot(g, w3)
    for i in range(n):  # h2 = silu(z2), dh2 = silu'(z2) dz2
        for k in range(hidden):
            z, s = z2[i, k], s2[i, k]
            d1 = s * (1.0 + z * (1.0 - s))
            g[i, k] = d1 * back[i, k]
            if tangent:
                gd = back[n + i, k]
                g[i, k] += s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s)) * dz2[i, k] * gd
                g[n + i, k] = d1 * gd
            g_b2[k] += g[i, k]
    g_w2 += np.dot(g.T, a1)
    back = np.dot(g, w2)
    for i in range(n):  # h1 = silu(z1), dh1 = silu'(z1) w1, z1 = w1 x + b1
        for k in range(hidden):
            z, s = z1[i, k], s1[i, k]
            d1 = s * (1.0 + z * (1.0 - s))
            gz = d1 * back[i, k]
            if tangent:
                gd = back[n + i, k]
                g_w1[k] += d1 * gd
                gz += s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s)) * w1[k] * gd
            g_w1[k] += x[i] * gz
            g_b1[k] += gz
