"""The learned free energy ``V`` and its variational derivative ``mu = dV/du``.

    V(u) = int [ a/2 u^2 + F(u) ] dx + int b/2 |grad u|^2 dx + V_nl(low Fourier modes of u)

* ``a, b > 0`` through softplus (``b`` can be fixed to 1 by the gauge convention, see :mod:`.gauge`).
* ``F`` is a pointwise MLP ``1 -> H -> H -> H -> 1`` with SiLU on the first two hidden layers, a sine on the
  last one and no output bias: ``F(u) = sum_j w_j sin(z_j(u))``. Hence ``|F| <= ||w||_1`` and ``F'``, ``F''``
  are bounded; :meth:`PointwiseMLP.curvature_bound` returns a guaranteed bound on ``sup |F''|``
  computed from the weights.
* ``V_nl = |Omega| * sum_j v_j^2 (1 - cos z_j(c))`` where ``c`` are the real and imaginary parts of the
  lowest Fourier coefficients ``u_hat(k) / N``: ``0 <= V_nl <= 2 |Omega| ||v||^2``, with a guaranteed bound
  on its Hessian as well.

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

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as tF
from torch import nn

from mesodyn.onsager.operators import SpectralGrid

__all__ = ["SILU_D1_BOUND", "SILU_D2_BOUND", "PointwiseMLP", "NonlocalEnergy", "FreeEnergy",
           "inverse_softplus"]

# sup |silu'| = 1.0998..., sup |silu''| = 0.5 (checked numerically in the tests).
SILU_D1_BOUND = 1.1
SILU_D2_BOUND = 0.5


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _silu_and_derivative(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sig = torch.sigmoid(z)
    return z * sig, sig * (1.0 + z * (1.0 - sig))


def _curvature_bounds(first: torch.Tensor, layers: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Hessian norm bounds ``(g, H)`` of the last pre-activation (see the module docstring).

    ``first`` holds the gradient norms of the first pre-activation; ``layers`` the later weight matrices.
    """
    g, h = first, torch.zeros_like(first)
    for weight in layers:
        g, h = SILU_D1_BOUND * g, SILU_D2_BOUND * g**2 + SILU_D1_BOUND * h
        g, h = weight.abs() @ g, weight.abs() @ h
    return g, h


class PointwiseMLP(nn.Module):
    """The local free-energy density ``F(u) = w . sin(W3 silu(W2 silu(W1 u + b1) + b2) + b3)``."""

    def __init__(self, *, hidden: int = 64):
        super().__init__()
        self.lin1 = nn.Linear(1, hidden)
        self.lin2 = nn.Linear(hidden, hidden)
        self.lin3 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u)`` elementwise."""
        x = u.unsqueeze(-1)
        h = tF.silu(self.lin1(x))
        h = tF.silu(self.lin2(h))
        return (torch.sin(self.lin3(h)) @ self.out.weight[0])

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        """``F'(u)`` elementwise, by a forward-mode pass (no autograd graph of a gradient)."""
        x = u.unsqueeze(-1)
        w1 = self.lin1.weight[:, 0]
        z1 = x * w1 + self.lin1.bias
        h1, d1 = _silu_and_derivative(z1)
        dz1 = d1 * w1
        z2 = tF.linear(h1, self.lin2.weight, self.lin2.bias)
        dz2 = tF.linear(dz1, self.lin2.weight)
        h2, d2 = _silu_and_derivative(z2)
        dh2 = d2 * dz2
        z3 = tF.linear(h2, self.lin3.weight, self.lin3.bias)
        dz3 = tF.linear(dh2, self.lin3.weight)
        return (torch.cos(z3) * dz3) @ self.out.weight[0]

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
    """

    def __init__(self, *, grid: SpectralGrid, n_modes: int = 16, hidden: int = 64, n_out: int = 32):
        super().__init__()
        self.grid = grid
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
        # Flat indices into the half spectrum, and into the full spectrum for the adjoint.
        self.register_buffer("index_half", torch.as_tensor(index, dtype=torch.int64), persistent=False)
        if grid.ndim == 1:
            index_full = cols
        else:
            index_full = (rows[:, None] * shape[-1] + cols[None, :]).ravel()
        self.register_buffer("index_full", torch.as_tensor(index_full, dtype=torch.int64), persistent=False)
        self.n_modes = len(index)
        n_in = 2 * self.n_modes
        self.lin1 = nn.Linear(n_in, hidden)
        self.lin2 = nn.Linear(hidden, hidden)
        self.lin3 = nn.Linear(hidden, n_out)
        self.v = nn.Parameter(torch.full((n_out,), 0.1))

    def features(self, u: torch.Tensor) -> torch.Tensor:
        u_hat = self.grid.rfft(u).flatten(start_dim=1)[:, self.index_half] / self.grid.n_points
        return torch.cat([u_hat.real, u_hat.imag], dim=1)

    def _forward_parts(self, c: torch.Tensor):
        z1 = self.lin1(c)
        h1, d1 = _silu_and_derivative(z1)
        z2 = tF.linear(h1, self.lin2.weight, self.lin2.bias)
        h2, d2 = _silu_and_derivative(z2)
        z3 = tF.linear(h2, self.lin3.weight, self.lin3.bias)
        return d1, d2, z3

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``V_nl(u)`` per batch member."""
        _, _, z3 = self._forward_parts(self.features(u))
        return self.grid.volume * ((1.0 - torch.cos(z3)) @ self.v**2)

    def gradient(self, u: torch.Tensor) -> torch.Tensor:
        """``dV_nl/du`` in the grid inner product, by a hand-written backward pass (differentiable)."""
        c = self.features(u)
        d1, d2, z3 = self._forward_parts(c)
        g3 = self.grid.volume * torch.sin(z3) * self.v**2
        g2 = (g3 @ self.lin3.weight) * d2
        g1 = (g2 @ self.lin2.weight) * d1
        gc = g1 @ self.lin1.weight
        n = self.n_modes
        coeff = torch.complex(gc[:, :n], gc[:, n:])
        # c = P u with P = [Re, Im] of (1/N) fft; P^T g = Re(ifft(G)) with G scattered on the full grid.
        full = torch.zeros((u.shape[0], self.grid.n_points), dtype=coeff.dtype, device=u.device)
        full = full.index_add(1, self.index_full, coeff)
        grad_euclid = torch.fft.ifftn(full.view(u.shape), dim=self.grid.dims).real
        return grad_euclid / self.grid.cell_volume

    def sup_bound(self) -> torch.Tensor:
        return 2.0 * self.grid.volume * (self.v**2).sum()

    def curvature_bound(self) -> torch.Tensor:
        """A guaranteed upper bound on the Hessian norm of ``V_nl`` in the grid inner product."""
        g, h = _curvature_bounds(self.lin1.weight.norm(dim=1), [self.lin2.weight, self.lin3.weight])
        return self.v**2 @ (g**2 + h)


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
    init_a, init_b
        Initial values of ``a`` and ``b``.
    """

    def __init__(self, *, grid: SpectralGrid, hidden: int = 64, nonlocal_modes: int = 16,
                 fix_b: bool = False, init_a: float = 1.0, init_b: float = 1.0):
        super().__init__()
        self.grid = grid
        self.raw_a = nn.Parameter(torch.tensor(inverse_softplus(init_a)))
        self.fix_b = bool(fix_b)
        self.raw_b = None if self.fix_b else nn.Parameter(torch.tensor(inverse_softplus(init_b)))
        self.local = PointwiseMLP(hidden=hidden)
        self.nonlocal_part = NonlocalEnergy(grid=grid, n_modes=nonlocal_modes) if nonlocal_modes > 0 else None

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

    def energy(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """``V`` and its parts, each of shape ``(batch,)``."""
        quadratic = 0.5 * self.grid.quadratic_form(self.grid.rfft(u), self.linear_symbol())
        local = self.grid.integral(self.local(u))
        if self.nonlocal_part is not None:
            nonlocal_ = self.nonlocal_part(u)
        else:
            nonlocal_ = torch.zeros_like(local)
        return {"quadratic": quadratic, "local": local, "nonlocal": nonlocal_,
                "total": quadratic + local + nonlocal_}

    def nonlinear_gradient(self, u: torch.Tensor) -> torch.Tensor:
        """Gradient of ``int F + V_nl`` (the part every stepper treats explicitly)."""
        g = self.local.derivative(u)
        if self.nonlocal_part is not None:
            g = g + self.nonlocal_part.gradient(u)
        return g

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/du`` in the grid inner product."""
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
