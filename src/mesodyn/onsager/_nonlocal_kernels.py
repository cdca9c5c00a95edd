"""Compiled CPU kernels of ``V_nl``'s gradient in its features and of that gradient's reverse pass.

:class:`mesodyn.onsager.energy._NonlocalGradient` forms ``dV_nl/dc`` for the features ``c`` of a batch of fields
(``(batch, 2 n)``, a few dozen numbers per field) through a ``2n -> H -> H -> n_out`` MLP, K times per training step.
With ATen kernels that is some 25 operators forward and 35 backward on tensors of a few hundred values: at small
batches nearly all of it is the cost of dispatching them (about 0.6 ms per call, 1.8 ms of a 1-D step at batch 1).
Here each direction is one compiled call: the matrix products call BLAS (``np.dot``), every elementwise stage is a
loop that the compiler vectorizes (``exp``, ``sin``, ``cos`` from :mod:`._vmath`). The arithmetic is that of the ATen
path (:class:`~mesodyn.onsager.energy._NonlocalGradient` documents it), in the fields' dtype, so the two agree to
round-off (tested). The ATen path stays for other devices.

Layers as ``torch.nn.Linear``: ``z = x W^T + b``; ``V_nl = |Omega| v^2 . (1 - cos z3)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mesodyn.onsager import _vmath

__all__ = ["gradient_forward", "gradient_backward", "TRIG_LIMIT"]

TRIG_LIMIT = _vmath.TRIG_LIMIT


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _silu_layer(z, b):  # pragma: no cover (compiled)
    """Adds the bias to ``z`` in place; returns ``(sigmoid, silu, silu')`` of the result."""
    sig, h, d = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            x = z[i, k] + b[k]
            s = 1.0 / (1.0 + _vmath.exp(-x))
            z[i, k], sig[i, k], h[i, k], d[i, k] = x, s, x * s, s * (1.0 + x * (1.0 - s))
    return sig, h, d


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def gradient_forward(c, w1, b1, w2, b2, w3, b3, v, volume, fast):  # pragma: no cover (compiled; tested via energy)
    """``dV_nl/dc`` ``(batch, 2n)``, the intermediates the backward reads and the largest ``|z3|``. ``fast``: the
    vectorizable sine and cosine of :mod:`._vmath` (valid for ``|z3| <= TRIG_LIMIT``), else NumPy's."""
    z1 = np.dot(c, w1.T)
    sig1, h1, d1 = _silu_layer(z1, b1)
    z2 = np.dot(h1, w2.T)
    sig2, h2, d2 = _silu_layer(z2, b2)
    z3 = np.dot(h2, w3.T)
    g3 = np.empty_like(z3)  # dV_nl/dz3 = |Omega| v^2 sin z3
    for i in range(z3.shape[0]):
        for j in range(z3.shape[1]):
            z = z3[i, j] + b3[j]
            z3[i, j] = z
            g3[i, j] = (_vmath.sin(z) if fast else np.sin(z)) * (volume * v[j] * v[j])
    largest = np.abs(z3).max() if z3.size else 0.0  # (apart: a reduction in the loop above would keep it scalar)
    gz2 = np.dot(g3, w3) * d2
    gh1 = np.dot(gz2, w2)
    gz1 = gh1 * d1
    return np.dot(gz1, w1), (z1, sig1, h1, d1, z2, sig2, h2, d2, z3, g3, gz2, gh1, gz1), largest


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _silu_second(z, sig):  # pragma: no cover (compiled)
    """``silu''(z) = s (1 - s) (2 + z (1 - 2 s))`` elementwise."""
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        for k in range(z.shape[1]):
            s, x = sig[i, k], z[i, k]
            out[i, k] = s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))
    return out


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def gradient_backward(lam, c, w1, w2, w3, v, volume, saved, fast):  # pragma: no cover (compiled; tested via energy)
    """For the cotangent ``lam`` of ``dV_nl/dc``: the gradients of ``c`` and of ``(W1, b1, W2, b2, W3, b3, v)``.

    The reverse pass over the gradient's own reverse pass (``gc = gz1 W1``, ``gz1 = gh1 d1``, ``gh1 = gz2 W2``,
    ``gz2 = gh2 d2``, ``gh2 = g3 W3``), then over the forward values (``z3 = h2 W3^T + b3``, ``h2 = silu(z2)``, ...).
    """
    z1, sig1, h1, d1, z2, sig2, h2, d2, z3, g3, gz2, gh1, gz1 = saved
    g_w1 = np.dot(gz1.T, lam)
    l_gz1 = np.dot(lam, w1.T)
    l_gh1 = l_gz1 * d1
    l_z1 = l_gz1 * gh1 * _silu_second(z1, sig1)
    g_w2 = np.dot(gz2.T, l_gh1)
    l_gz2 = np.dot(l_gh1, w2.T)
    gh2 = np.dot(g3, w3)
    l_gh2 = l_gz2 * d2
    l_z2 = l_gz2 * gh2 * _silu_second(z2, sig2)
    g_w3 = np.dot(g3.T, l_gh2)
    l_g3 = np.dot(l_gh2, w3.T)
    g_v = np.zeros_like(v)
    l_z3 = np.empty_like(z3)
    for i in range(z3.shape[0]):
        for j in range(z3.shape[1]):
            z = z3[i, j]
            g_v[j] += l_g3[i, j] * (_vmath.sin(z) if fast else np.sin(z))
            l_z3[i, j] = l_g3[i, j] * (_vmath.cos(z) if fast else np.cos(z)) * (volume * v[j] * v[j])
    for j in range(v.size):
        g_v[j] *= 2.0 * volume * v[j]
    g_w3 += np.dot(l_z3.T, h2)
    l_z2 += np.dot(l_z3, w3) * d2
    g_w2 += np.dot(l_z2.T, h1)
    l_z1 += np.dot(l_z2, w2) * d1
    g_w1 += np.dot(l_z1.T, c)
    return (np.dot(l_z1, w1), g_w1, l_z1.sum(axis=0), g_w2, l_z2.sum(axis=0), g_w3, l_z3.sum(axis=0), g_v)
