"""The learned free energy ``V`` and its variational derivative ``mu = dV/du``.

    V(u) = int [ a/2 u^2 + F(u) ] dx + int b/2 |grad u|^2 dx + V_nl(low Fourier modes of u)

* ``a, b > 0`` through softplus (``b`` can be fixed to 1 by the gauge convention, see :mod:`.gauge`).
* ``F`` is a pointwise MLP ``1 -> H -> H -> H -> 1`` with SiLU on the first two hidden layers, a sine on the
  last one and no output bias: ``F(u) = sum_j w_j sin(z_j(u))``. Hence ``|F| <= ||w||_1`` and ``F'``, ``F''``
  are bounded; :meth:`PointwiseMLP.curvature_bound` returns a guaranteed bound on ``sup |F''|``
  computed from the weights.
* ``V_nl = |Omega| * sum_j v_j^2 (1 - cos z_j(c))`` where ``c`` are the real and imaginary parts of the
  lowest Fourier coefficients ``u_hat(k) / N``: ``0 <= V_nl <= 2 |Omega| ||v||^2``, with a guaranteed bound
  on its Hessian as well. Its gradient is the consistent one by default; the authors' variant (gradient on
  the raw FFT coefficients, ``nonlocal_gradient="paper"``) is a fixed rescaling of it per Fourier mode
  (:class:`NonlocalEnergy`), and with it ``mu`` is no longer the gradient of ``V``.

Consequently ``V(u) >= a/2 ||u||^2 + b/2 ||grad u||^2 - |Omega| ||w||_1``: bounded below and coercive for every
parameter value.

Inner product: every gradient here is taken in the grid inner product ``<f, g> = (|Omega| / N) sum f g``
(mean over cells times the domain volume), the same for all three parts of ``V``. ``F'`` is evaluated in
closed form (a forward-mode pass through the MLP), so training never back-propagates through an
autograd-computed gradient at every grid point.

Curvature bounds. For a scalar function built as ``z1 = W1 x + b1, h1 = s(z1), z2 = W2 h1 + b2, h2 = s(z2),
z3 = W3 h2 + b3`` the gradient and Hessian norms of every unit obey (triangle inequality)::

    g(z1_i) = ||W1[i, :]||,  H(z1_i) = 0
    g(s(z_i)) <= s1 g(z_i),  H(s(z_i)) <= s2 g(z_i)^2 + s1 H(z_i)
    g(W z)_k <= sum_i |W_ki| g_i,  H(W z)_k <= sum_i |W_ki| H_i

with ``s1 = sup|silu'| < 1.1`` and ``s2 = sup|silu''| = 1/2`` (attained at 0: ``silu(z) - z/2`` is even).
Then ``|d^2 sin(z_j)|, |d^2 cos(z_j)| <= g_j^2 + H_j``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as tF
from torch import nn

from mesodyn.onsager import _nonlocal_kernels
from mesodyn.onsager._blas import one_thread as one_blas_thread
from mesodyn.onsager._nodes64 import COMPILED_POINTS, on_nodes
from mesodyn.onsager._threads import in_threads as _in_threads
from mesodyn.onsager.interpolant import Table, covering_range, interpolate_derivative
from mesodyn.onsager.operators import SpectralGrid

__all__ = ["SILU_D1_BOUND", "SILU_D2_BOUND", "LOCAL_DERIVATIVES", "PointwiseMLP", "NonlocalEnergy", "FreeEnergy",
           "inverse_softplus"]

# sup |silu'| = 1.0998..., sup |silu''| = 0.5 (checked numerically in the tests).
SILU_D1_BOUND = 1.1
SILU_D2_BOUND = 0.5

# How F' is evaluated at the grid points: in closed form at every point, or through the verified interpolant
# of :mod:`.interpolant` (the same function to float round-off on the data's range, much cheaper).
from mesodyn.models.configs import LOCAL_DERIVATIVES, NONLOCAL_GRADIENTS  # noqa: E402


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _silu_and_derivative(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(silu(z), silu'(z), sigmoid(z))``."""
    sig = torch.sigmoid(z)
    return z * sig, sig * (1.0 + z * (1.0 - sig)), sig


def _curvature_bounds(first: torch.Tensor, layers: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Hessian norm bounds ``(g, H)`` of the last pre-activation (see the module docstring).

    ``first`` holds the gradient norms of the first pre-activation; ``layers`` the later weight matrices.
    """
    g, h = first, torch.zeros_like(first)
    for weight in layers:
        g, h = SILU_D1_BOUND * g, SILU_D2_BOUND * g**2 + SILU_D1_BOUND * h
        g, h = weight.abs() @ g, weight.abs() @ h
    return g, h


# --- closed-form F' as one autograd Function ---------------------------------------------------------------
# Points are processed in chunks of this many: every temporary is (chunk, H), a few hundred KiB that stay in
# cache and are recycled by the allocator, instead of (points, H) tensors of hundreds of MiB per step (on these
# virtual machines each fresh large allocation faults its pages in again, which dominated the time).
_CHUNK = 2048
# On a GPU the point is many points per kernel, not cache: chunks only bound the workspace (~1 GiB).
_CHUNK_GPU = 2**18
# Points per chunk of F(u) evaluated without an autograd graph.
_ENERGY_CHUNK = 8192


# Fused elementwise kernels of ATen: silu, silu' times a cotangent, and sigma' times a cotangent. Each is one
# pass over a chunk where the composite formula would take three to five.
_silu = torch.ops.aten.silu.out
_silu_backward = torch.ops.aten.silu_backward.grad_input      # (g, z) -> g * silu'(z)
_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # (g, s) -> g * s (1 - s)


def _silu_second_times(z: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor, *factors) -> torch.Tensor:
    """``out = silu''(z) * prod(factors)`` with ``silu''(z) = s (1 - s) (2 + z (1 - 2 s))``, ``s = sigmoid(z)``.

    ``tmp`` is scratch of the same shape; neither may alias ``z`` or a factor.
    """
    sig = torch.sigmoid(z, out=tmp)
    torch.add(z, 2.0, out=out).addcmul_(z, sig, value=-2.0)
    for f in factors:
        out.mul_(f)
    return _sigmoid_backward(out, sig, grad_input=out)


class _Workspace:
    """Chunk-sized buffers, allocated once per call and reused for every chunk."""

    def __init__(self, n: int, hidden: int, like: torch.Tensor):
        new = lambda rows: torch.empty((rows, hidden), dtype=like.dtype, device=like.device)  # noqa: E731
        self.z1, self.t1, self.t2 = (new(n) for _ in range(3))
        self.a1, self.y2, self.a2, self.y3, self.g, self.back = (new(2 * n) for _ in range(6))

    def forward(self, x, w1, b1, w2, b2, w3, b3):
        """Value and tangent through the hidden layers for the points ``x`` of shape ``(C, 1)``.

        Layer inputs are stacked as ``[value; tangent]`` (``(2C, H)``) so that each layer is one matrix
        product for both; biases enter the value half only. Returns views of the buffers.
        """
        n = x.shape[0]
        z1, a1, y2, a2, y3 = self.z1[:n], self.a1[:2 * n], self.y2[:2 * n], self.a2[:2 * n], self.y3[:2 * n]
        torch.addcmul(b1, x, w1, out=z1)
        _silu(z1, out=a1[:n])                                     # a1 = [h1; dh1/du = silu'(z1) w1]
        _silu_backward(w1.expand(n, -1), z1, grad_input=a1[n:])
        torch.mm(a1, w2.T, out=y2)                                # y2 = [z2; dz2/du]
        z2, dz2 = y2[:n].add_(b2), y2[n:]
        _silu(z2, out=a2[:n])                                     # a2 = [h2; dh2/du = silu'(z2) dz2]
        _silu_backward(dz2, z2, grad_input=a2[n:])
        torch.mm(a2, w3.T, out=y3)                                # y3 = [z3; dz3/du]
        z3, dz3 = y3[:n].add_(b3), y3[n:]
        return z1, a1, z2, dz2, a2, z3, dz3


def _chunk_size(u: torch.Tensor) -> int:
    return _CHUNK if u.device.type == "cpu" else _CHUNK_GPU


class _LocalDerivative(torch.autograd.Function):
    """``F'(u)`` for ``F(u) = w . sin(W3 silu(W2 silu(w1 u + b1) + b2) + b3)``, with a hand-written backward.

    Forward: value and tangent (forward mode) through the layers, chunk by chunk, nothing saved but the
    inputs. Backward: recomputes a chunk's intermediates and back-propagates the cotangent of ``F'`` to ``u``
    and every weight (reverse over forward), so no graph of a gradient is ever built. It is once
    differentiable: a second derivative through it raises an error.
    """

    @staticmethod
    def forward(ctx, u, w1, b1, w2, b2, w3, b3, w):
        ctx.save_for_backward(u, w1, b1, w2, b2, w3, b3, w)
        x = u.reshape(-1, 1)
        out = torch.empty(x.shape[0], dtype=u.dtype, device=u.device)
        w1r = w1.reshape(1, -1)

        chunk = _chunk_size(u)

        def work(starts):
            space = _Workspace(min(chunk, x.shape[0]), w1.shape[0], u)
            for start in starts:
                xc = x[start:start + chunk]
                *_, z3, dz3 = space.forward(xc, w1r, b1, w2, b2, w3, b3)
                torch.mv(z3.cos_().mul_(dz3), w, out=out[start:start + xc.shape[0]])

        _in_threads(x.shape[0], work, chunk, u.device)
        return out.reshape(u.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        u, w1, b1, w2, b2, w3, b3, w = ctx.saved_tensors
        x = u.reshape(-1, 1)
        lam_all = grad_out.reshape(-1, 1)
        w1r = w1.reshape(1, -1)
        g_u = torch.empty(x.shape[0], dtype=u.dtype, device=u.device) if ctx.needs_input_grad[0] else None
        chunk = _chunk_size(u)

        def work(starts):
            # Weight gradients summed over this thread's chunks; the input gradient is written per chunk.
            g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w = (torch.zeros_like(t) for t in (w1r, b1, w2, b2, w3, b3, w))
            space = _Workspace(min(chunk, x.shape[0]), w1.shape[0], u)
            for start in starts:
                xc = x[start:start + chunk]
                lam = lam_all[start:start + chunk]
                n = xc.shape[0]
                z1, a1, z2, dz2, a2, z3, dz3 = space.forward(xc, w1r, b1, w2, b2, w3, b3)
                t1, t2, g, back = space.t1[:n], space.t2[:n], space.g[:2 * n], space.back[:2 * n]
                # F' = sum_j w_j cos(z3_j) dz3_j
                lw = torch.mul(lam, w, out=t1)                        # (C, H)
                c3 = torch.cos(z3, out=t2)
                g_w.addmv_(torch.mul(c3, dz3, out=g[:n]).T, lam[:, 0])
                torch.mul(c3, lw, out=g[n:])                          # d/d(dz3)
                torch.sin(z3, out=g[:n]).mul_(dz3).mul_(lw).neg_()    # d/dz3
                g_w3.addmm_(g.T, a2)
                g_b3.add_(g[:n].sum(0))
                torch.mm(g, w3, out=back)                             # [d/dh2; d/d(dh2)]
                gh2, gdh2 = back[:n], back[n:]
                # h2 = silu(z2), dh2 = silu'(z2) dz2: d/dz2 = silu'(z2) gh2 + silu''(z2) dz2 gdh2
                _silu_second_times(z2, t1, t2, gdh2, dz2)
                _silu_backward(gh2, z2, grad_input=g[:n]).add_(t1)
                _silu_backward(gdh2, z2, grad_input=g[n:])            # d/d(dz2)
                g_w2.addmm_(g.T, a1)
                g_b2.add_(g[:n].sum(0))
                torch.mm(g, w2, out=back)                             # [d/dh1; d/d(dh1)]
                gh1, gdh1 = back[:n], back[n:]
                # h1 = silu(z1), dh1 = silu'(z1) w1, z1 = w1 u + b1
                g_w1.add_(_silu_backward(gdh1, z1, grad_input=t1).sum(0))
                _silu_second_times(z1, t1, t2, gdh1, w1r)
                gz1 = _silu_backward(gh1, z1, grad_input=gh1).add_(t1)  # d/dz1
                g_w1.addmm_(xc.T, gz1)
                g_b1.add_(gz1.sum(0))
                if g_u is not None:
                    torch.mv(gz1, w1r[0], out=g_u[start:start + n])
            return g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w

        parts = _in_threads(x.shape[0], work, chunk, u.device)
        g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w = parts[0]
        for more in parts[1:]:  # fixed order: deterministic
            for acc, add in zip((g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w), more):
                acc.add_(add)
        return (g_u.reshape(u.shape) if g_u is not None else None, g_w1.reshape(w1.shape), g_b1, g_w2, g_b2,
                g_w3, g_b3, g_w)


def _density(u: torch.Tensor, w1, b1, w2, b2, w3, b3, w) -> torch.Tensor:
    """``F(u) = w . sin(W3 silu(W2 silu(w1 u + b1) + b2) + b3)`` elementwise for the given weights."""
    h = tF.silu(tF.linear(u.unsqueeze(-1), w1, b1))
    h = tF.silu(tF.linear(h, w2, b2))
    return torch.sin(tF.linear(h, w3, b3)) @ w


class PointwiseMLP(nn.Module):
    """The local free-energy density ``F(u) = w . sin(W3 silu(W2 silu(W1 u + b1) + b2) + b3)``.

    ``derivative`` picks how ``F'`` is evaluated at the grid points: ``"exact"`` (closed form at every point)
    or ``"interpolant"`` (:mod:`.interpolant`).
    """

    def __init__(self, *, hidden: int = 64, derivative: str = "exact"):
        super().__init__()
        if derivative not in LOCAL_DERIVATIVES:
            raise ValueError(f"derivative must be one of {', '.join(LOCAL_DERIVATIVES)}, got {derivative!r}.")
        self.derivative_mode = derivative
        self._shared: Table | None = None  # the table of :meth:`shared_table`, inside its block
        self._kept: dict[str, tuple] = {}  # tables kept between calls without gradients (:meth:`_keep`)
        self.lin1 = nn.Linear(1, hidden)
        self.lin2 = nn.Linear(hidden, hidden)
        self.lin3 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u)`` elementwise.

        Without an autograd graph (energy checks, diagnostics) the points go in chunks of ``_ENERGY_CHUNK``, so
        that no ``(points, H)`` activation of hundreds of MiB is allocated (measured: 1 M points in 0.60 s
        instead of 1.31 s on 2 cores; the same values bit for bit).
        """
        if torch.is_grad_enabled() and (u.requires_grad or any(p.requires_grad for p in self.parameters())):
            return self._forward(u)
        flat = u.reshape(-1)
        out = torch.empty_like(flat)
        for start in range(0, flat.numel(), _ENERGY_CHUNK):
            out[start:start + _ENERGY_CHUNK] = self._forward(flat[start:start + _ENERGY_CHUNK])
        return out.reshape(u.shape)

    def _forward(self, u: torch.Tensor) -> torch.Tensor:
        return _density(u, *self._weights())

    def _weights(self) -> tuple[torch.Tensor, ...]:
        return (self.lin1.weight, self.lin1.bias, self.lin2.weight, self.lin2.bias, self.lin3.weight,
                self.lin3.bias, self.out.weight[0])

    def exact_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """``F'(u)`` elementwise in closed form (forward mode), differentiable once in ``u`` and the weights
        by a hand-written backward pass (:class:`_LocalDerivative`); no autograd graph of a gradient."""
        return _LocalDerivative.apply(u, *self._weights())

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        """``F'(u)`` elementwise, exact or through the verified interpolant (see the class docstring); inside
        :meth:`shared_table`, through its one table wherever that covers ``u``."""
        if self.derivative_mode == "exact":
            return self.exact_derivative(u)
        shared = self._shared
        if shared is not None and (shared.differentiable or not torch.is_grad_enabled()) and shared.covers(u):
            return shared(u)
        if not torch.is_grad_enabled():
            table = self._keep("F'", u, self._exact64)
            if table is not None:
                return table(u)
        return interpolate_derivative(u, self.exact_derivative, self._exact64())

    def _same_weights(self, kept: tuple, like: torch.Tensor) -> bool:
        """Whether a kept table was fitted with exactly these weights (their values, compared bit for bit: an
        optimizer step, ``load_state_dict`` or an edit through ``.data`` all show) and for fields of ``like``'s dtype
        and device."""
        weights, dtype, device, _ = kept
        return (dtype == like.dtype and device == like.device
                and all(torch.equal(w, saved) for w, saved in zip(self.parameters(), weights)))

    def _keep(self, what: str, u: torch.Tensor, make_exact64, *, bounds: tuple[float, float] | None = None
              ) -> Table | None:
        """Without gradients (rollouts, evaluation, validation): the table of ``what`` kept from an earlier call
        with the same weights if it covers ``u`` (or ``bounds``), else a new one, kept for the next calls.

        A new table covers ``u`` (or ``bounds``) and, where that at most doubles its width, the kept table's range
        too, with the margin of :func:`.interpolant.covering_range`: a rollout whose fields stay in range fits one
        table, not one per step. Every table meets the interpolant's tolerance on its whole range, so the values
        differ from a table fitted on ``u`` alone by that tolerance at most; which table a call reads depends on
        the calls before it with the same weights (a rollout's earlier steps), never on timing."""
        kept = self._kept.get(what)
        if kept is not None and not self._same_weights(kept, u):
            kept = None
        if kept is not None:
            table = kept[3]
            inside = table.lo <= bounds[0] and bounds[1] <= table.hi if bounds is not None else table.covers(u)
            if inside:
                return table
        if bounds is None:
            bounds = covering_range(u)
            if bounds is None:
                return None
        if kept is not None:
            wider = (min(bounds[0], kept[3].lo), max(bounds[1], kept[3].hi))
            if wider[1] - wider[0] <= 2.0 * (bounds[1] - bounds[0]):
                bounds = wider
        table = Table.fit(make_exact64(), *bounds, dtype=u.dtype, device=u.device, what=what)
        if table is not None:
            weights = tuple(w.detach().clone() for w in self.parameters())
            self._kept[what] = (weights, u.dtype, u.device, table)
        return table

    def _exact64(self):
        """The exact ``F'`` in float64 (weights read once; the interpolant calls it 2-4 times per table): on the CPU
        the compiled kernels of :mod:`._nodes64`, elsewhere :class:`_LocalDerivative` with the weights cast."""
        return self._on_nodes(tangent=True)

    def _on_nodes(self, *, tangent: bool):
        """``F'`` (``tangent``) or ``F`` in float64 at a table's points, differentiable in the weights: the compiled
        kernels for up to ``COMPILED_POINTS`` points on the CPU, else the ATen path (weights cast when first needed)."""
        weights = self._weights()
        weights64: list[torch.Tensor] = []

        def aten(x: torch.Tensor) -> torch.Tensor:
            if not weights64:
                weights64.extend(w.double() for w in weights)
            return (_LocalDerivative.apply if tangent else _density)(x.double(), *weights64)

        compiled = on_nodes(weights, tangent)
        if compiled is None:
            return aten
        return lambda x: compiled(x.double()) if x.numel() <= COMPILED_POINTS else aten(x)

    @contextlib.contextmanager
    def shared_table(self, fields: torch.Tensor):
        """Within the block, ``F'`` (interpolant mode) reads one verified table fitted on the range of ``fields``
        with a margin (:func:`.interpolant.covering_range`) instead of fitting one per call; a call whose points
        leave it fits its own as before. The weights must not change inside the block (one training step: its
        forward and backward). Built with gradients on, the table carries the weights' gradient of every call
        that read it, summed at its nodes."""
        if self.derivative_mode != "interpolant":
            yield
            return
        previous = self._shared
        if not torch.is_grad_enabled():  # (validation, an AVF solve in a rollout): a kept table where it covers
            self._shared = self._keep("F'", fields, self._exact64)
        else:
            bounds = covering_range(fields)
            if bounds is not None:
                self._shared = Table.fit(self._exact64(), *bounds, dtype=fields.dtype, device=fields.device,
                                         what="F'")
        try:
            yield
        finally:
            self._shared = previous

    def density_table(self, lo: float, hi: float, *, like: torch.Tensor) -> Table | None:
        """A verified interpolant of ``F`` itself on ``[lo, hi]`` in ``like``'s dtype and device (the construction
        of :mod:`.interpolant`: ``|F_table - F| <= TOLERANCE * max |F|`` at its check points), differentiable in
        the weights; ``None`` where it cannot reach the tolerance. The AVF step reads ``V`` from it
        (:mod:`.avf`)."""
        exact64 = functools.partial(self._on_nodes, tangent=False)
        if not torch.is_grad_enabled():  # a kept table where it covers [lo, hi] (see :meth:`_keep`)
            return self._keep("F", like, exact64, bounds=(lo, hi))
        return Table.fit(exact64(), lo, hi, dtype=like.dtype, device=like.device, what="F")

    def sup_bound(self) -> torch.Tensor:
        """``sup |F| <= ||w||_1``."""
        return self.out.weight.abs().sum()

    def curvature_bound(self) -> torch.Tensor:
        """A guaranteed upper bound on ``sup_u |F''(u)|`` from the weights."""
        g, h = _curvature_bounds(self.lin1.weight[:, 0].abs(), [self.lin2.weight, self.lin3.weight])
        return self.out.weight[0].abs() @ (g**2 + h)


class NonlocalEnergy(nn.Module):
    """``V_nl >= 0``, bounded, a function of the lowest Fourier modes of the field.

    The features are the real and imaginary parts of ``u_hat(k) / N`` for the ``n_modes`` lowest
    frequencies along each axis (1-D: ``k = 0 .. n_modes-1``; 2-D: ``ky`` in ``-n_modes/2 .. n_modes/2-1`` and
    ``kx = 0 .. n_modes-1``), clipped to what the grid resolves. The map ``P: u -> c`` has
    ``||P||^2 <= 1/N`` (its rows are orthogonal cosines and sines of norm^2 at most ``1/N``, at most two
    rows per pair ``{k, -k}``), so the Hessian of ``V_nl`` in the grid inner product is bounded by
    ``||Hess_c V_nl|| / |Omega|``.

    Parameters
    ----------
    grid
        The spectral grid.
    n_modes
        Lowest modes per axis fed to the MLP.
    hidden, n_out
        Widths of the MLP's hidden layers and of its last (sine) layer.
    gradient
        What :meth:`gradient` returns: ``"consistent"`` (default), ``dV_nl/du`` in the grid inner product;
        or ``"paper"``, the authors' gradient on the raw FFT coefficients, derived below.

    Notes
    -----
    *The paper's gradient.* The authors' code (MLDS-NUS/Meso-SpecOnsNet, arXiv 2605.16211) forms the
    chemical potential in Fourier space: the quadratic and local parts as the rfft of their grid gradients,
    and the nonlocal part as the autograd gradient of ``V_nl`` with respect to the raw coefficients
    ``U = rfft(u)`` (no ``1/N``), i.e. ``G_k = dV_nl/dRe U_k + i dV_nl/dIm U_k`` (PyTorch's convention for a
    real function of a complex input), zero off the retained modes, and the grid function is ``irfft(G)``.
    Here ``V_nl`` is a function of ``c = U / N`` on the retained entries; write ``g_k = dV_nl/dRe c_k +
    i dV_nl/dIm c_k``, so ``G_k = g_k / N``. With the half spectrum's Hermitian extension,
    ``irfft(G)(x) = (1/N) sum_k w_k Re(G_k e^{i k.x})`` over the retained entries, where ``w_k = 2`` on the
    interior columns of the last (halved) axis and ``w_k = 1`` on its column 0 and, for even ``n_x``, its
    Nyquist column (``irfft`` keeps only the real part there; in 2-D the entries ``(k_y, 0)`` and
    ``(-k_y, 0)`` are separate inputs and each counts once). Our consistent gradient is
    ``P^T g / (|Omega|/N) = (1/|Omega|) sum_k Re(g_k e^{i k.x})`` (the Euclidean adjoint of :meth:`features`
    divided by the cell volume). Hence, mode by mode,

        paper gradient = (w_k |Omega| / N^2) * consistent gradient,

    a fixed linear rescaling: ``2 |Omega| / N^2`` on interior modes and ``|Omega| / N^2`` on ``k_x = 0`` and
    the Nyquist column (``N`` the number of grid points, ``|Omega|`` the domain volume; ``1.9e-4`` and
    ``9.6e-5`` for 256 points on a length ``2 pi``). The imaginary parts of self-conjugate entries drop out of
    both (their feature rows vanish, and ``irfft`` ignores them). It is computed as that rescaling of the
    feature cotangent, ``(1/N) P^T (w g)``: no autograd and no FFT of the full grid.

    Assumption: our ``V_nl`` is kept (MLP of the normalized coefficients ``c`` on our retained modes); only the
    variable the gradient is taken in is the authors'. Their 2-D code feeds the rows ``k_y >= 0`` only, ours
    ``-n/2 .. n/2-1``; that is a difference in ``V_nl``'s features, not in this gradient.
    """

    def __init__(self, *, grid: SpectralGrid, n_modes: int = 16, hidden: int = 64, n_out: int = 32,
                 gradient: str = "consistent"):
        super().__init__()
        if gradient not in NONLOCAL_GRADIENTS:
            raise ValueError(f"gradient must be one of {', '.join(NONLOCAL_GRADIENTS)}, got {gradient!r}.")
        self.grid = grid
        self.gradient_mode = gradient
        shape = grid.shape
        nx_half = shape[-1] // 2 + 1
        cols = np.arange(min(n_modes, nx_half))
        if grid.ndim == 1:
            index = cols
        else:
            ny = shape[0]
            m = min(n_modes, ny)
            rows = np.concatenate([np.arange((m + 1) // 2), np.arange(ny - m // 2, ny)])
            index = (rows[:, None] * nx_half + cols[None, :]).ravel()
        # c = P u is evaluated as real matrix products with cosine/sine tables of the retained frequencies
        # (separable in 2-D), and P^T g for the gradient with their transposes: no complex scatter, no FFT of
        # the full grid. Tables are built in float64 and cached per dtype/device (a float32 table cast up
        # to float64 would carry float32 round-off into float64 checks).
        self._cols = cols
        self._rows = None if grid.ndim == 1 else rows
        # Per feature, the Hermitian weight w_k of irfft on the last axis (1 on column 0 and the Nyquist column,
        # 2 elsewhere) over N: the paper gradient is (1/N) P^T (w g) (see the Notes).
        w_col = np.where((cols == 0) | (2 * cols == shape[-1]), 1.0, 2.0)
        w_entry = np.tile(w_col, 1 if grid.ndim == 1 else len(rows))
        self._paper_weight = np.concatenate([w_entry, w_entry]) / grid.n_points
        self._tables: dict = {}
        self.n_modes = len(index)
        n_in = 2 * self.n_modes
        self.lin1 = nn.Linear(n_in, hidden)
        self.lin2 = nn.Linear(hidden, hidden)
        self.lin3 = nn.Linear(hidden, n_out)
        self.v = nn.Parameter(torch.full((n_out,), 0.1))

    def _table(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = (like.dtype, like.device)
        if key not in self._tables:
            shape, n_points = self.grid.shape, self.grid.n_points
            phase_x = 2 * np.pi * np.outer(np.arange(shape[-1]), self._cols) / shape[-1]
            px = np.concatenate([np.cos(phase_x), -np.sin(phase_x)], axis=1)      # (nx, 2 nc): u -> [Re, Im]
            if self._rows is None:
                tables = (px / n_points,)
            else:
                phase_y = 2 * np.pi * np.outer(self._rows, np.arange(shape[0])) / shape[0]
                tables = (px, np.cos(phase_y) / n_points, np.sin(phase_y) / n_points)  # (ny,2nc), (m,ny) x 2
            self._tables[key] = tuple(torch.as_tensor(t, dtype=like.dtype, device=like.device) for t in tables)
        return self._tables[key]

    def features(self, u: torch.Tensor) -> torch.Tensor:
        """``c = P u``: real and imaginary parts of ``u_hat(k) / N`` on the retained modes, ``(batch, 2 n)``."""
        if self._rows is None:
            (px,) = self._table(u)
            return u @ px
        px, cy, sy = self._table(u)
        nc = len(self._cols)
        a = u @ px                                        # x-transform: [A_re | A_im], (batch, ny, 2 nc)
        ca, sa = cy @ a, sy @ a                           # y-transform with e^{-i ky y} = cos - i sin
        re = ca[..., :nc] + sa[..., nc:]
        im = ca[..., nc:] - sa[..., :nc]
        return torch.cat([re.flatten(1), im.flatten(1)], dim=1)

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        """``P^T g`` (Euclidean adjoint of :meth:`features`), shape ``(batch, *grid)``."""
        if self._rows is None:
            (px,) = self._table(g)
            return g @ px.T
        px, cy, sy = self._table(g)
        n, nc = self.n_modes, len(self._cols)
        g_re = g[:, :n].reshape(-1, len(self._rows), nc)
        g_im = g[:, n:].reshape(-1, len(self._rows), nc)
        g_a = cy.T @ torch.cat([g_re, g_im], dim=-1) + sy.T @ torch.cat([-g_im, g_re], dim=-1)
        return g_a @ px.T

    def _forward_parts(self, c: torch.Tensor):
        z1 = self.lin1(c)
        h1, d1, _ = _silu_and_derivative(z1)
        z2 = tF.linear(h1, self.lin2.weight, self.lin2.bias)
        h2, d2, _ = _silu_and_derivative(z2)
        z3 = tF.linear(h2, self.lin3.weight, self.lin3.bias)
        return d1, d2, z3

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``V_nl(u)`` per batch member."""
        _, _, z3 = self._forward_parts(self.features(u))
        return self.grid.volume * ((1.0 - torch.cos(z3)) @ self.v**2)

    def gradient(self, u: torch.Tensor) -> torch.Tensor:
        """``dV_nl/du`` in the grid inner product, or with ``gradient="paper"`` the authors' gradient on the
        raw FFT coefficients (see the class Notes). A hand-written backward pass of ``V_nl``, itself once
        differentiable (in ``u`` and the weights) by a hand-written reverse pass (:class:`_NonlocalGradient`):
        a dozen kernels each way instead of an autograd graph of some sixty nodes."""
        scale = self._weight(u) if self.gradient_mode == "paper" else 1.0 / self.grid.cell_volume
        return _NonlocalGradient.apply(u, self.lin1.weight, self.lin1.bias, self.lin2.weight, self.lin2.bias,
                                       self.lin3.weight, self.lin3.bias, self.v, self, scale)

    def _weight(self, like: torch.Tensor) -> torch.Tensor:
        """``w / N`` per feature (the paper gradient's rescaling), cached per dtype/device like the tables."""
        key = ("paper_weight", like.dtype, like.device)
        if key not in self._tables:
            self._tables[key] = torch.as_tensor(self._paper_weight, dtype=like.dtype, device=like.device)
        return self._tables[key]

    def mode_factor(self) -> np.ndarray:
        """The paper gradient over the consistent one on each rfft bin of the grid (float64, half-spectrum
        shape): ``w_k |Omega| / N^2`` (see the class Notes); only the retained modes matter."""
        shape = self.grid.shape
        cols = np.arange(shape[-1] // 2 + 1)
        w = np.where((cols == 0) | (2 * cols == shape[-1]), 1.0, 2.0)
        return np.broadcast_to(w * self.grid.volume / self.grid.n_points**2, self.grid.k2_half.shape).copy()

    def sup_bound(self) -> torch.Tensor:
        return 2.0 * self.grid.volume * (self.v**2).sum()

    def curvature_bound(self) -> torch.Tensor:
        """A guaranteed upper bound on the Hessian norm of ``V_nl`` in the grid inner product."""
        g, h = _curvature_bounds(self.lin1.weight.norm(dim=1), [self.lin2.weight, self.lin3.weight])
        return self.v**2 @ (g**2 + h)


def _silu_second(z: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    """``silu''(z) = s (1 - s) (2 + z (1 - 2 s))`` from ``s = sigmoid(z)``."""
    return sig * (1.0 - sig) * (2.0 + z * (1.0 - 2.0 * sig))


def _compiled_nonlocal(c: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> bool:
    """Whether ``V_nl``'s gradient takes the compiled CPU kernels: CPU tensors of one float dtype (32 or 64 bits)."""
    return (c.device.type == "cpu" and c.dtype in (torch.float32, torch.float64)
            and all(t.device.type == "cpu" and t.dtype == c.dtype for t in weights))


class _NonlocalGradient(torch.autograd.Function):
    """``P^T (scale * dV_nl/dc)`` for ``V_nl = |Omega| v^2 . (1 - cos z3)``, ``z3 = W3 silu(W2 silu(W1 c + b1) + b2)
    + b3``, ``c = P u`` (``P`` = :meth:`NonlocalEnergy.features`, ``P^T`` its adjoint), with a hand-written backward:
    the reverse pass over the gradient's own reverse pass (``g`` below), then over the forward values. Once
    differentiable. Layers as ``torch.nn.Linear``: ``z = x W^T + b``."""

    @staticmethod
    def forward(ctx, u, w1, b1, w2, b2, w3, b3, v, part, scale):
        c = part.features(u)
        ctx.part, ctx.scale = part, scale
        ctx.compiled = _compiled_nonlocal(c, (w1, b1, w2, b2, w3, b3, v))
        if ctx.compiled:  # one compiled call (:mod:`._nonlocal_kernels`), the same arithmetic
            arrays = (*(np.ascontiguousarray(t.detach().numpy()) for t in (c, w1, b1, w2, b2, w3, b3, v)),
                      part.grid.volume)
            with one_blas_thread():
                gc, ctx.intermediates, largest = _nonlocal_kernels.gradient_forward(*arrays, True)
                ctx.fast = largest <= _nonlocal_kernels.TRIG_LIMIT
                if not ctx.fast:  # (weights far out of any trained range): NumPy's sine and cosine
                    gc, ctx.intermediates, _ = _nonlocal_kernels.gradient_forward(*arrays, False)
            ctx.save_for_backward(c, w1, w2, w3, v)
            return part.adjoint(torch.from_numpy(gc) * scale)
        z1 = torch.addmm(b1, c, w1.T)
        h1, d1, sig1 = _silu_and_derivative(z1)
        z2 = torch.addmm(b2, h1, w2.T)
        h2, d2, sig2 = _silu_and_derivative(z2)
        z3 = torch.addmm(b3, h2, w3.T)
        weight3 = part.grid.volume * v * v
        g3 = torch.sin(z3) * weight3                     # dV_nl/dz3
        gh2 = g3 @ w3                                    # dV_nl/dh2
        gz2 = gh2 * d2
        gh1 = gz2 @ w2
        gz1 = gh1 * d1
        gc = gz1 @ w1                                    # dV_nl/dc
        ctx.save_for_backward(c, w1, w2, w3, v, z1, sig1, h1, d1, z2, sig2, h2, d2, z3, g3, gh2, gz2, gh1, gz1)
        return part.adjoint(gc * scale)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        part, volume = ctx.part, ctx.part.grid.volume
        lam = part.features(grad_out) * ctx.scale          # cotangent of gc
        if ctx.compiled:
            c, w1, w2, w3, v = ctx.saved_tensors
            with one_blas_thread():
                g_c, *grads = _nonlocal_kernels.gradient_backward(
                    *(np.ascontiguousarray(t.detach().numpy()) for t in (lam, c, w1, w2, w3, v)), volume,
                    ctx.intermediates, ctx.fast)
            g_u = part.adjoint(torch.from_numpy(g_c)) if ctx.needs_input_grad[0] else None
            return (g_u, *(torch.from_numpy(g) for g in grads), None, None)
        (c, w1, w2, w3, v, z1, sig1, h1, d1, z2, sig2, h2, d2, z3, g3, gh2, gz2, gh1, gz1) = ctx.saved_tensors
        # through gc = gz1 W1, gz1 = gh1 d1, gh1 = gz2 W2, gz2 = gh2 d2, gh2 = g3 W3, g3 = |Omega| v^2 sin z3
        g_w1 = gz1.T @ lam
        l_gz1 = lam @ w1.T
        l_gh1 = l_gz1 * d1
        l_z1 = l_gz1 * gh1 * _silu_second(z1, sig1)        # through d1 = silu'(z1)
        g_w2 = gz2.T @ l_gh1
        l_gz2 = l_gh1 @ w2.T
        l_gh2 = l_gz2 * d2
        l_z2 = l_gz2 * gh2 * _silu_second(z2, sig2)
        g_w3 = g3.T @ l_gh2
        l_g3 = l_gh2 @ w3.T
        g_v = (l_g3 * torch.sin(z3)).sum(0) * (2.0 * volume) * v
        l_z3 = l_g3 * torch.cos(z3) * (volume * v * v)
        # through the forward values: z3 = h2 W3^T + b3, h2 = silu(z2), z2 = h1 W2^T + b2, h1 = silu(z1),
        # z1 = c W1^T + b1
        g_w3 = g_w3 + l_z3.T @ h2
        l_z2 = l_z2 + (l_z3 @ w3) * d2
        g_w2 = g_w2 + l_z2.T @ h1
        l_z1 = l_z1 + (l_z2 @ w2) * d1
        g_w1 = g_w1 + l_z1.T @ c
        g_u = part.adjoint(l_z1 @ w1) if ctx.needs_input_grad[0] else None
        return g_u, g_w1, l_z1.sum(0), g_w2, l_z2.sum(0), g_w3, l_z3.sum(0), g_v, None, None


class FreeEnergy(nn.Module):
    """The full free energy ``V`` with its parts and its variational derivative.

    Parameters
    ----------
    grid
        The spectral grid.
    hidden
        Width of the pointwise MLP ``F``.
    nonlocal_modes
        Number of lowest modes per axis fed to ``V_nl``; 0 disables ``V_nl``.
    fix_b
        Gauge convention ``b = 1`` (``b`` is then not learned).
    local_derivative
        ``"exact"`` or ``"interpolant"``: how ``F'`` is evaluated (:class:`PointwiseMLP`).
    init_a, init_b
        Initial values of ``a`` and ``b``.
    nonlocal_gradient
        ``"consistent"`` or ``"paper"`` (:class:`NonlocalEnergy`). With ``"paper"`` (and ``V_nl`` present)
        :meth:`mu` is not the gradient of :meth:`energy`: see :attr:`is_gradient`.
    """

    def __init__(self, *, grid: SpectralGrid, hidden: int = 64, nonlocal_modes: int = 16,
                 fix_b: bool = False, local_derivative: str = "exact", init_a: float = 1.0, init_b: float = 1.0,
                 nonlocal_gradient: str = "consistent"):
        super().__init__()
        self.grid = grid
        self.raw_a = nn.Parameter(torch.tensor(inverse_softplus(init_a)))
        self.fix_b = bool(fix_b)
        self.raw_b = None if self.fix_b else nn.Parameter(torch.tensor(inverse_softplus(init_b)))
        self.local = PointwiseMLP(hidden=hidden, derivative=local_derivative)
        self.nonlocal_part = (NonlocalEnergy(grid=grid, n_modes=nonlocal_modes, gradient=nonlocal_gradient)
                              if nonlocal_modes > 0 else None)

    @property
    def is_gradient(self) -> bool:
        """Whether :meth:`mu` is the gradient of :meth:`energy` in the grid inner product (false only with the
        paper's ``V_nl`` gradient and ``V_nl`` present)."""
        return self.nonlocal_part is None or self.nonlocal_part.gradient_mode == "consistent"

    @torch.no_grad()
    def paper_init_(self) -> None:
        """The authors' ``a = b = softplus(0)``: the raw parameters set to 0 (``b`` stays 1 if fixed).

        Draws nothing. ``F``'s and ``V_nl``'s linear layers are already at PyTorch's default initialization;
        ``V_nl``'s output weights ``v`` (0.1 each) have no counterpart in the authors' network and are kept.
        """
        self.raw_a.zero_()
        if self.raw_b is not None:
            self.raw_b.zero_()

    @property
    def a(self) -> torch.Tensor:
        return tF.softplus(self.raw_a)

    @property
    def b(self) -> torch.Tensor:
        if self.raw_b is None:
            return torch.ones((), dtype=self.raw_a.dtype, device=self.raw_a.device)
        return tF.softplus(self.raw_b)

    def linear_symbol(self) -> torch.Tensor:
        """The symbol ``a + b |k|^2`` of the quadratic part (half spectrum)."""
        return self.a + self.b * self.grid.k2_half

    def energy(self, u: torch.Tensor, *, tabulated: bool = False) -> dict[str, torch.Tensor]:
        """``V`` and its parts, each of shape ``(batch,)``.

        ``tabulated`` (interpolant models, without gradients): ``F`` is read from the verified table of
        :meth:`PointwiseMLP.density_table` on the range of ``u`` (kept between calls while it covers them, the
        table the AVF step reads), ``V_T`` in :mod:`.avf`'s notation, within ``TOLERANCE max|F| |Omega|`` of ``V``
        (``TOLERANCE``: 1e-6 in float32, 1e-12 in float64) before the round-off of the sum: measured 17x (100
        fields of 256) to 34x (20 fields of 128²) cheaper than the MLP at every point, for rollouts that monitor
        ``V`` at each step. Elsewhere (exact models, gradients on, non-finite ``u``) the exact ``F``.
        """
        quadratic = 0.5 * self.grid.quadratic_form(self.grid.rfft(u), self.linear_symbol())
        table = self._density_table(u) if tabulated else None
        local = self.grid.integral((self.local if table is None else table)(u))
        if self.nonlocal_part is not None:
            nonlocal_ = self.nonlocal_part(u)
        else:
            nonlocal_ = torch.zeros_like(local)
        return {"quadratic": quadratic, "local": local, "nonlocal": nonlocal_,
                "total": quadratic + local + nonlocal_}

    def _density_table(self, u: torch.Tensor) -> Table | None:
        """The kept table of ``F`` covering ``u`` (``tabulated`` of :meth:`energy`), or ``None``."""
        if self.local.derivative_mode != "interpolant" or torch.is_grad_enabled():
            return None
        bounds = covering_range(u)
        return None if bounds is None else self.local.density_table(*bounds, like=u)

    def local_density(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u)`` elementwise (the learned :class:`PointwiseMLP`)."""
        return self.local(u)

    def nonlinear_gradient(self, u: torch.Tensor) -> torch.Tensor:
        """Gradient of ``int F + V_nl`` (the part every stepper treats explicitly)."""
        g = self.local.derivative(u)
        if self.nonlocal_part is not None:
            g = g + self.nonlocal_part.gradient(u)
        return g

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/du`` in the grid inner product (with the paper's ``V_nl`` gradient, its ``V_nl`` part is that
        gradient instead)."""
        linear = self.grid.irfft(self.linear_symbol() * self.grid.rfft(u))
        return linear + self.nonlinear_gradient(u)

    def lower_bound(self) -> torch.Tensor:
        """A constant ``C`` with ``V(u) >= a/2 ||u||^2 + b/2 ||grad u||^2 - C >= -C`` for every ``u``."""
        return self.grid.volume * self.local.sup_bound()

    def curvature_bound(self) -> torch.Tensor:
        """``L >= sup`` of the largest Hessian eigenvalue of ``int F + V_nl`` in the grid inner product."""
        bound = self.local.curvature_bound()
        if self.nonlocal_part is not None:
            bound = bound + self.nonlocal_part.curvature_bound()
        return bound
