r"""The average-vector-field (discrete-gradient) step for ``du/dt = -(M + W) mu``, ``mu = dV/du``.

Write ``V(u) = 1/2 <A u, u> + G(u)`` with ``A = a - b Laplacian`` (symbol ``A_k = a + b|k|^2``) and
``G = int F(u) dx + V_nl(u)``, ``d = u+ - u``, ``<.,.>`` the grid inner product (in which ``A``, ``M`` are
symmetric positive semi-definite and ``W`` is antisymmetric) and ``K = M + W`` (symbol ``s_k = m(k) + i phi(k)``).
The step (``"avf"``) is

    (u+ - u)/dt = -K mu_bar,   mu_bar = A (u + u+)/2 + g_bar,

    g_bar = g_q + c d,   g_q = sum_{i=1..q} w_i grad G(u + t_i d),
    c = omega E / ||d||^2,   E = G(u+) - G(u) - <g_q, d>,   omega = E^2 / (E^2 + tau^2),

with the Gauss-Legendre nodes ``t_i`` and weights ``w_i`` on ``[0, 1]``. ``mu_bar`` is the average vector field
``int_0^1 dV/du((1 - t) u + t u+) dt``: its quadratic part exactly (the midpoint; the integrand is linear in
``t``), ``G``'s part by the quadrature, whose remainder ``E`` (``E = int_0^1 phi'(t) dt - sum_i w_i phi'(t_i)``,
``phi(t) = G(u + t d)``) is put back along ``d`` (Gonzalez's projection, applied to the remainder only).
``tau = 64 eps (|G(u)| + |G(u+)| + |<g_q, d>|)`` is the round-off level of ``E`` (``eps`` the machine epsilon):
``omega ~ 1`` when ``E`` is above it and ``~ 0`` when ``E`` is round-off, so the correction never divides
noise by a small ``||d||^2``; it is smooth in ``u+``.

**Theorem (discrete energy law).** Let ``u+`` solve the step. For every member of the class (every parameter
value, including ``M = 0``) and every ``dt > 0``

    V(u+) - V(u) = -dt <mu_bar, M mu_bar> + R,    |R| = |(1 - omega) E| <= tau / 2,

so ``V(u+) <= V(u) + tau/2`` (``V`` never rises beyond round-off), and ``|V(u+) - V(u)| <= tau/2`` when
``M = 0`` (``V`` is conserved).

*Proof.* ``<mu_bar, d> = 1/2 <A (u + u+), u+ - u> + <g_q, d> + c ||d||^2
= [1/2 <A u+, u+> - 1/2 <A u, u>] + [G(u+) - G(u) - E] + omega E`` (``A`` symmetric), i.e.
``<mu_bar, d> = V(u+) - V(u) - (1 - omega) E``. The scheme gives ``d = -dt K mu_bar``, and
``<mu_bar, K mu_bar> = <mu_bar, M mu_bar>`` since ``<x, W x> = 0``. Finally
``|(1 - omega) E| = |E| tau^2 / (E^2 + tau^2) <= tau / 2``. QED.

*Which ``G``* (``local_derivative="interpolant"``). The proof uses only that ``G(u)`` and ``G(u+)`` come from
one function. An interpolant model evaluates ``F'`` through a verified piecewise polynomial
(:mod:`mesodyn.onsager.interpolant`), and its step reads ``F`` from one such table too, fitted once per step on
the range of ``u`` with a margin (refitted over a wider range, ``G(u)`` included, should an iterate leave it).
The theorem then holds for ``V_T``, the energy with ``F`` read from the table, and for the model's ``V`` up to
``|V - V_T| <= TOLERANCE |Omega| max |F|`` at either end (``1e-6`` relative in float32, ``1e-12`` in float64),
an error that does not accumulate along a rollout since ``V`` and ``V_T`` are functions of the state. The exact
``F`` at every grid point cost 85 % of a 2-D step (an MLP of width 64 at 327 680 points per iterate); the table
makes the step 4-9x cheaper (``docs/onsager.md``).

*What the quadrature does.* Only ``G`` needs it. ``E = 0`` when ``F`` is a polynomial of degree ``<= 2q`` and
``V_nl`` is absent (``phi'`` is then a polynomial of degree ``<= 2q - 1``, integrated exactly by ``q``
nodes): the step is then the exact AVF step, and ``q = 2`` (the default) already covers the quartic Allen-Cahn
and the cubic KdV energies. Otherwise Gauss's remainder gives ``|E| <= c_q sup_t |phi^(2q+1)(t)| =
O(||d||^(2q+1))`` with ``c_q = (q!)^4 / ((2q + 1) ((2q)!)^3)`` (``c_2 = 2.3e-4``, ``c_3 = 2.5e-7``), so the
correction ``c d`` is ``O(||d||^(2q))``: it does not change the order (see below), and the energy law holds
for any ``q`` (the theorem). Without the correction (pure quadrature) the law would hold only up to ``E``:
measured on random members (weights of scale 0.3) it reaches ``4e-2`` at ``dt = 10`` with ``q = 3``, which is why it is there.

*Order.* The step is symmetric (exchange ``u`` and ``u+`` and ``dt -> -dt``: the nodes are symmetric,
``E`` and ``d`` change sign together) and consistent, hence of second order.

*The solver's error.* The solve returns ``u+ = Phi(v)`` (the map below) with ``||u+ - v|| <= tol (1 + ||u+||)``
(RMS over the grid, per member), which solves the step exactly with ``g_bar`` evaluated at ``v``; the proof then
adds ``<g_bar(u+) - g_bar(v), d>`` to ``R``, of the order of ``tol``. The tests measure ``R`` in all.

**Solver.** In Fourier space the step reads
``(1 + dt s_k A_k/2) u+_k = (1 - dt s_k A_k/2) u_k - dt s_k g_bar_k(u+)``. The stiff linear part is solved
exactly and only ``g_bar`` is iterated::

    Phi(v)_k = [(1 - dt s_k A_k/2) u_k - dt s_k g_bar_k(v)] / (1 + dt s_k A_k/2),

whose denominator has real part ``1 + dt m(k) A_k/2 >= 1``. The Jacobian of ``Phi`` is about
``(I + dt K A/2)^{-1} dt K Hbar`` with ``Hbar ~ 1/2 Hess G``: it tends to ``A^{-1} Hbar`` as ``dt`` grows and to
``dt K Hbar`` as ``dt`` shrinks, so the stiff high modes (large ``A_k``) are never the obstacle. The fixed point
is found by Anderson acceleration (memory 5, per batch member), which on the linearized problem is a Krylov
(GMRES-like) method: it converges also where plain iteration would not (``Phi``'s Jacobian beyond 1 on a few
modes), as long as ``I - J_Phi`` is well conditioned. Where the implicit equation itself has several solutions
or none (a strongly non-convex ``V`` at a large ``dt``) it raises :class:`StepperConvergenceError` rather than
return a state that does not satisfy the energy law.

**Gradients** (training): implicit differentiation. The solve runs without a graph; the returned state is one
more differentiable application ``u+ = Phi(v*)``, whose backward first solves the adjoint equation
``lambda = grad + J_Phi(v*)^T lambda`` with the same accelerated iteration (vector-Jacobian products of ``Phi``,
one backward pass of ``F'`` each). That is the gradient of the exact solution of the step to the tolerance;
memory is one application of ``Phi`` whatever the number of iterations.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import torch

from mesodyn.onsager.interpolant import covering_range

__all__ = ["AVF_NODES", "StepperConvergenceError", "avf_step", "gauss_legendre", "discrete_gradient",
           "energy_defect", "anderson"]

# Gauss-Legendre nodes of the default step: exact AVF for F of degree <= 4 (Allen-Cahn, KdV energies).
AVF_NODES = 2
# Default tolerance on the last fixed-point increment, relative to 1 + RMS(u+), per dtype.
_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
_MAX_ITER = 100
# The round-off level of the quadrature remainder E, in units of eps * (|G(u)| + |G(u+)| + |<g_q, d>|).
_ROUNDOFF = 64.0


class StepperConvergenceError(RuntimeError):
    """An implicit step whose iteration did not reach its tolerance (the residual and iterations are named)."""

    def __init__(self, *, stepper: str, what: str, residual: float, tolerance: float, iterations: int):
        self.residual, self.tolerance, self.iterations = residual, tolerance, iterations
        super().__init__(
            f"stepper {stepper!r}: the {what} did not converge in {iterations} iterations (largest relative "
            f"residual {residual:.3e} > tolerance {tolerance:.1e}). Lower dt, raise max_iter, or use "
            f"'stabilized' (linearly implicit, always solvable).")


def gauss_legendre(nodes: int, *, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on ``[0, 1]`` (weights sum to 1), in ``like``'s dtype and device."""
    x, w = np.polynomial.legendre.leggauss(int(nodes))
    as_tensor = lambda a: torch.as_tensor(a, dtype=like.dtype, device=like.device)  # noqa: E731
    return as_tensor(0.5 * (x + 1.0)), as_tensor(0.5 * w)


def _nonlinear_energy(free_energy, u: torch.Tensor, density: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      ) -> torch.Tensor:
    """``G(u) = int F(u) + V_nl(u)`` per batch member, with ``F`` evaluated by ``density`` (default the MLP)."""
    g = free_energy.grid.integral((free_energy.local if density is None else density)(u))
    if free_energy.nonlocal_part is not None:
        g = g + free_energy.nonlocal_part(u)
    return g


class _StepEnergy:
    """``G`` of one step. Exact for an exact-``F'`` model; for an interpolant model
    (``local_derivative="interpolant"``) ``F`` is read from one verified table (:meth:`PointwiseMLP.density_table`)
    on a range that covers ``u`` with a margin, widened (and then used for ``G(u)`` too) when an iterate leaves it.
    One function serves ``G(u)`` and ``G(v)`` of a step, so the energy law holds for it exactly (module docstring).
    """

    MARGIN = 0.25  # of the range of u, on either side

    def __init__(self, free_energy, u: torch.Tensor):
        self.fe, self.table = free_energy, None
        self.differentiable = torch.is_grad_enabled()
        if getattr(free_energy.local, "derivative_mode", "exact") == "interpolant":
            self._fit(u)

    def _fit(self, x: torch.Tensor, lo: float = math.inf, hi: float = -math.inf) -> None:
        bounds = covering_range(x, lo, hi, margin=self.MARGIN)
        if bounds is None:
            self.table = None  # non-finite fields: the exact F (the rollout's guard reports them)
            return
        with torch.set_grad_enabled(self.differentiable):
            self.table = self.fe.local.density_table(*bounds, like=x)

    def widen(self, v: torch.Tensor) -> bool:
        """Refit the table over a range that also covers ``v`` if ``v`` leaves it; whether it did."""
        if self.table is None or self.table.covers(v):
            return False
        self._fit(v, self.table.lo, self.table.hi)
        return True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``G(x) = int F(x) + V_nl(x)`` per batch member."""
        return _nonlinear_energy(self.fe, x, self.table)


def discrete_gradient(free_energy, u: torch.Tensor, v: torch.Tensor, *, nodes: int,
                      g_u: torch.Tensor | None = None,
                      energy: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``g_bar(u, v)`` of the module docstring: ``<g_bar, v - u> = G(v) - G(u)`` up to round-off.

    ``g_q`` takes all nodes in one call of the gradient (batch ``q B``); ``energy`` is ``G`` (default the exact
    ``int F + V_nl``) and ``g_u = G(u)`` may be passed in.
    """
    grid = free_energy.grid
    energy = (lambda x: _nonlinear_energy(free_energy, x)) if energy is None else energy
    t, w = gauss_legendre(nodes, like=u)
    shape = (-1,) + (1,) * u.ndim
    d = v - u
    points = u.unsqueeze(0) + t.reshape(shape) * d.unsqueeze(0)
    grads = free_energy.nonlinear_gradient(points.reshape(-1, *u.shape[1:])).reshape(points.shape)
    g_q = (w.reshape(shape) * grads).sum(0)
    g_u = energy(u) if g_u is None else g_u
    g_v = energy(v)
    work = grid.inner(g_q, d)
    remainder = g_v - g_u - work
    tau = _ROUNDOFF * torch.finfo(u.dtype).eps * (g_u.abs() + g_v.abs() + work.abs())
    omega = remainder**2 / (remainder**2 + tau**2).clamp_min(torch.finfo(u.dtype).tiny)
    # omega E / ||d||^2 with 0/0 := 0 (d = 0: no remainder to put back).
    norm2 = grid.inner(d, d)
    c = torch.where(norm2 > 0, omega * remainder / torch.where(norm2 > 0, norm2, 1.0), 0.0)
    return g_q + c.reshape(-1, *([1] * (u.ndim - 1))) * d


class _AVFMap:
    """The preconditioned fixed-point map ``Phi`` of one AVF step (see the module docstring).

    Built once per step; differentiable in ``u`` and the model's parameters when built with gradients on.
    """

    def __init__(self, model, u: torch.Tensor, dt: float, *, nodes: int):
        self.fe, self.u, self.nodes = model.free_energy, u, nodes
        self.grid = model.grid
        m, phi = model.operators.symbols()
        self.dts = dt * torch.complex(m, phi)
        half = 0.5 * self.dts * self.fe.linear_symbol()
        self.denominator = 1.0 + half
        self.rhs = (1.0 - half) * self.grid.rfft(u)
        self.energy = _StepEnergy(self.fe, u)
        self.g_u = self.energy(u)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        if self.energy.widen(v):
            with torch.set_grad_enabled(self.energy.differentiable):
                self.g_u = self.energy(self.u)
        g_bar = discrete_gradient(self.fe, self.u, v, nodes=self.nodes, g_u=self.g_u, energy=self.energy)
        return self.grid.irfft((self.rhs - self.dts * self.grid.rfft(g_bar)) / self.denominator)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).pow(2).mean(1).sqrt()


def _mix(history_f: list[torch.Tensor], history_g: list[torch.Tensor], f: torch.Tensor,
         g: torch.Tensor) -> torch.Tensor:
    """Anderson's update ``g - dG gamma`` with ``gamma = argmin ||f - dF gamma||`` per batch member.

    ``dF``, ``dG`` are the differences of successive residuals and map values (flattened to ``(B, N)``); the
    small least-squares problem is solved through its normal equations with a relative ridge.
    """
    d_f = torch.stack([b - a for a, b in zip(history_f[:-1], history_f[1:])], dim=-1)  # (B, N, m)
    d_g = torch.stack([b - a for a, b in zip(history_g[:-1], history_g[1:])], dim=-1)
    # Scaled by each member's largest difference, so that a member whose residuals are zero or tiny (one
    # already converged, or a zero cotangent in the adjoint solve) neither under- nor overflows.
    size = d_f.abs().amax(dim=(1, 2), keepdim=True)
    live = size > 0
    size = torch.where(live, size, 1.0)
    d_f, f_s = d_f / size, f.unsqueeze(-1) / size
    gram = d_f.transpose(1, 2) @ d_f
    ridge = max(1e-10, 100 * torch.finfo(f.dtype).eps) * gram.diagonal(dim1=1, dim2=2).mean(-1) \
        + torch.finfo(f.dtype).eps
    gram = gram + ridge[:, None, None] * torch.eye(gram.shape[-1], dtype=f.dtype, device=f.device)
    gamma = torch.linalg.solve(gram, d_f.transpose(1, 2) @ f_s) * live
    return g - (d_g @ gamma).squeeze(-1)


def anderson(fn: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, *, scale: torch.Tensor,
             tol: float, max_iter: int, what: str, memory: int = 5) -> tuple[torch.Tensor, int]:
    """Solve ``x = fn(x)`` by Anderson acceleration, batch member by batch member.

    Stops when every member's RMS residual ``||fn(x) - x||`` is ``<= tol * scale`` and returns ``fn(x)`` (the
    last map value) and the number of evaluations of ``fn``; raises :class:`StepperConvergenceError` (naming the
    largest relative residual) after ``max_iter`` evaluations or at a non-finite residual.
    """
    batch_shape = start.shape
    x = start.reshape(batch_shape[0], -1)
    history_f: list[torch.Tensor] = []
    history_g: list[torch.Tensor] = []
    ratio = float("inf")
    for it in range(1, max_iter + 1):
        g = fn(x.reshape(batch_shape)).reshape(x.shape)
        f = g - x
        rel = f.pow(2).mean(1).sqrt() / scale
        ratio = float(rel.max()) if bool(torch.isfinite(rel).all()) else float("inf")
        if ratio <= tol:
            return g.reshape(batch_shape), it
        if not np.isfinite(ratio):
            break
        history_f = (history_f + [f])[-(memory + 1):]
        history_g = (history_g + [g])[-(memory + 1):]
        x = _mix(history_f, history_g, f, g) if len(history_f) > 1 else g
    raise StepperConvergenceError(stepper="avf", what=what, residual=ratio, tolerance=tol, iterations=it)


def _adjoint_hook(phi: _AVFMap, v_star: torch.Tensor, *, tol: float, max_iter: int):
    """The backward of ``u+ = Phi(v*)`` through the fixed point: ``lambda = grad + J_Phi(v*)^T lambda``."""

    def hook(grad: torch.Tensor | None) -> torch.Tensor | None:
        if grad is None:  # an undefined cotangent stays undefined
            return None
        # Built here, not in the forward: a step whose output is never back-propagated costs no extra Phi.
        v0 = v_star.detach().requires_grad_()
        with torch.enable_grad():
            f0 = phi(v0)

        def adjoint_map(lam: torch.Tensor) -> torch.Tensor:
            (back,) = torch.autograd.grad(f0, v0, lam, retain_graph=True)
            return grad + back

        lam, _ = anderson(adjoint_map, grad, scale=1.0 + _rms(grad), tol=tol, max_iter=max_iter,
                          what="adjoint (backward) solve")
        return lam

    return hook


def avf_step(model, u: torch.Tensor, dt: float, *, nodes: int = AVF_NODES, tol: float | None = None,
             max_iter: int = _MAX_ITER, return_iterations: bool = False):
    """One average-vector-field step: ``V(u+) - V(u) = -dt <mu_bar, M mu_bar>`` (module docstring).

    Parameters
    ----------
    model
        A gradient-flow model with ``grid``, ``operators`` and ``free_energy`` (SpecOnsNet).
    u, dt
        The state ``(batch, *grid)`` and the step.
    nodes
        Gauss-Legendre nodes of the integral of ``grad G`` (exact for ``F`` of degree ``<= 2 nodes``).
    tol, max_iter
        The iteration stops when every member's RMS residual is ``<= tol (1 + RMS(u))`` (default ``1e-12`` in
        float64, ``1e-5`` in float32); otherwise :class:`StepperConvergenceError` after ``max_iter``
        evaluations of the map. The backward (adjoint) solve uses the same.
    return_iterations
        Also return the number of evaluations of the map in the forward solve.
    """
    if not getattr(model, "is_gradient_flow", True):
        raise ValueError("stepper 'avf' conserves or dissipates the energy only for a gradient flow, which this "
                         "model (nonlocal_gradient 'paper') is not; use 'euler' or 'sbdf1'.")
    tol = _TOL.get(u.dtype, 1e-5) if tol is None else float(tol)
    # An interpolant model's F' reads one table for the whole solve (fitted on u's range with a margin; the
    # quadrature points lie between u and the iterates) instead of one per evaluation of the map.
    shared = getattr(model, "shared_tables", None)
    with shared(u) if shared is not None else contextlib.nullcontext():
        phi = _AVFMap(model, u, dt, nodes=nodes)
        with torch.no_grad():
            # The first map value from v = u is Crank-Nicolson in A with G explicit: already a first-order step.
            v_star, iterations = anderson(phi, u.detach(), scale=1.0 + _rms(u.detach()), tol=tol,
                                          max_iter=max_iter, what="implicit equation")
        if torch.is_grad_enabled() and (u.requires_grad or any(p.requires_grad for p in model.parameters())):
            out = phi(v_star)
            out.register_hook(_adjoint_hook(phi, v_star, tol=tol, max_iter=max_iter))
        else:
            out = v_star
    return (out, iterations) if return_iterations else out


@torch.no_grad()
def energy_defect(model, u: torch.Tensor, u_next: torch.Tensor, dt: float, *, nodes: int = AVF_NODES) -> dict:
    """The energy law of one AVF step, term by term, per batch member.

    Returns ``change = V(u+) - V(u)``, ``dissipation = dt <mu_bar, M mu_bar>`` (``mu_bar`` of the returned
    ``u+``) and ``defect = change + dissipation`` (``R`` of the theorem, with the solver's part).
    """
    fe, grid = model.free_energy, model.grid
    mu_bar = grid.irfft(fe.linear_symbol() * grid.rfft(0.5 * (u + u_next))) \
        + discrete_gradient(fe, u, u_next, nodes=nodes)
    change = fe.energy(u_next)["total"] - fe.energy(u)["total"]
    dissipation = dt * model.operators.dissipation(mu_bar)
    return {"change": change, "dissipation": dissipation, "defect": change + dissipation}
