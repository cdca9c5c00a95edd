r"""Time steppers for ``du/dt = -(M + W) mu``, ``mu = dV/du``, and a per-step energy check.

Write ``V(u) = 1/2 <A u, u> + G(u)`` with ``A = a - b Laplacian`` (symbol ``a + b|k|^2``) and
``G = int F(u) dx + V_nl(u)``. All steppers act in Fourier space, where ``M``, ``W`` and ``A`` are diagonal.

* ``"euler"`` (the paper): ``u+ = u - dt (M + W) mu(u)``.
* ``"sbdf1"`` (the paper's semi-implicit scheme): ``A`` implicit, ``G`` explicit,
  ``(u+ - u)/dt = -(M + W) [A u+ + grad G(u)]``.
* ``"stabilized"`` (ours): SBDF1 with the stabilization ``S (u+ - u)`` added to the chemical potential,
  ``S <= L/2`` chosen adaptively (see :func:`stabilized_step`) with the fallback ``S = L/2``, where ``L`` is
  the weight-derived bound of :meth:`FreeEnergy.curvature_bound` on the largest Hessian eigenvalue of
  ``G``::

      (u+ - u)/dt = -(M + W) mu~,   mu~ = A u+ + S (u+ - u) + grad G(u).

  Each Fourier mode is solved exactly: ``u+_hat = [u_hat - dt s (g_hat - S u_hat)] / [1 + dt s (A_k + S)]``
  with ``s = m(k) + i phi(k)``; the denominator has real part ``>= 1`` and never vanishes.

**Theorem (discrete energy dissipation).** For every member of the class (every parameter value,
including ``M = 0``) and every ``dt > 0`` the step with any ``S >= L/2`` satisfies
``V(u+) <= V(u) - dt <mu~, M mu~> <= V(u)``.

*Proof.* Let ``d = u+ - u`` and ``<.,.>`` the grid inner product, in which ``A`` and ``M`` are symmetric
positive semi-definite and ``W`` is antisymmetric. Expanding the quadratic part,
``1/2<A u+, u+> - 1/2<A u, u> = <A u+, d> - 1/2 <A d, d>``. By Taylor's theorem with integral remainder and
``Hess G <= L``, ``G(u+) - G(u) <= <grad G(u), d> + L/2 ||d||^2``. Adding both,
``V(u+) - V(u) <= <mu~, d> - (S - L/2) ||d||^2 - 1/2 <A d, d>``. The scheme gives
``<mu~, d> = -dt <mu~, (M + W) mu~> = -dt <mu~, M mu~>`` since ``<x, W x> = 0``. With ``S >= L/2`` every term
on the right is ``<= 0``. QED.

The adaptive variant accepts a smaller ``S`` only after checking ``V(u+) <= V(u)`` for it, and falls back
to ``S = L/2`` otherwise, so the inequality ``V(u+) <= V(u)`` holds for every step it returns.

Corollary (boundedness, also for conservative members ``M = 0``): since
``V(u) >= a/2 ||u||^2 - C`` (:meth:`FreeEnergy.lower_bound`), every stabilized trajectory obeys
``||u^n||^2 <= 2 (V(u^0) + C) / a`` for all ``n``.

The paper's SBDF1 is the case ``S = 0``; it dissipates only where ``G`` is convex. Explicit Euler has no
such guarantee at any ``dt`` once ``M`` or ``W`` is non-zero on stiff modes.

* ``"exponential"`` (ours): exponential Euler (ETD1), the linear part ``(M + W) A`` integrated exactly and
  ``grad G`` held at its value at ``u`` over the step:
  ``u+_hat = exp(-dt s A_k) u_hat - dt phi_1(-dt s A_k) s g_hat`` with ``s = m(k) + i phi(k)`` and
  ``phi_1(z) = (e^z - 1)/z``. First order, explicit, stable for the linear part at every ``dt``; exact where
  ``G`` is affine (then ``V`` decays exactly as in continuous time), with no energy guarantee otherwise (as
  Euler). Its point is identification: a model trained with it fits the data's *flow* on modes that are
  stiff on the frame spacing (``|s A_k| dt`` of order one or more), where explicit Euler can only fit its own
  map ``1 - dt s A_k`` and so learns a symbol that falls short of the continuous operator's
  (``(1 - e^{-x})/x`` of it at ``x = dt s A_k``).

* ``"etdrk2"`` (ours): the second-order exponential Runge–Kutta step of Cox and Matthews (ETD2RK): the
  exponential-Euler step above as predictor ``a``, then ``u+_hat = a_hat - dt phi_2(z) s (g_hat(a) - g_hat(u))``
  with ``z = -dt s A_k`` and ``phi_2(z) = (e^z - 1 - z)/z^2``. Two evaluations of ``grad G`` per step; exact for
  the linear part as ETD1, second order in ``dt`` for the nonlinear part, where ETD1 is first order. For data
  whose nonlinear part is itself fast on the frame spacing (KdV's ``6 u u_x``), ETD1's error is what a model
  trained with it must absorb, and a wrong hypothesis class (a mobility that damps it) can absorb it better than
  the true one.

* ``"avf"`` (ours): the second-order average-vector-field (discrete-gradient) step
  ``(u+ - u)/dt = -(M + W) int_0^1 dV/du((1 - t) u + t u+) dt``, with
  ``V(u+) - V(u) = -dt <mu_bar, M mu_bar>`` up to a measured quadrature error and the solver tolerance, and
  ``V`` conserved when ``M = 0``; implicit, solved by a fixed-point iteration. Statement, proof, solver and
  gradients: :mod:`mesodyn.onsager.avf`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["STEPPERS", "StepperConvergenceError", "euler_step", "sbdf1_step", "stabilized_step", "avf_step",
           "exponential_step", "etdrk2_step", "energy_check"]

from mesodyn.models.configs import STEPPERS  # noqa: E402  (the one list, shared with the configs)
from mesodyn.onsager.avf import StepperConvergenceError, avf_step  # noqa: E402


def _weight_terms(model, key, build):
    """``build()``, or inside :meth:`SpecOnsNet.shared_tables` (one training step: the weights fixed) its value
    from the first call of the block: the symbols and exponentials of the weights are then formed once per step,
    not once per rollout step (the same graph, reused; the backward sums the gradients of every use)."""
    cache = getattr(model, "_step_cache", None)
    if cache is None:
        return build()
    key = (key, torch.is_grad_enabled())
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _symbols(model) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, A)``: the symbol ``m + i phi`` of ``M + W`` and ``a + b|k|^2`` (half spectrum)."""
    def build():
        m, phi = model.operators.symbols()
        return torch.complex(m, phi), model.free_energy.linear_symbol()
    return _weight_terms(model, "symbols", build)


def euler_step(model, u: torch.Tensor, dt: float) -> torch.Tensor:
    """Explicit Euler: ``u - dt (M + W) mu(u)``, ``mu`` formed in Fourier space (``(a + b|k|^2) u_hat`` plus
    the transform of ``grad G(u)``, as the authors' code does): three transforms, not four."""
    grid = model.grid
    s, linear = _symbols(model)
    mu_hat = linear * grid.rfft(u) + grid.rfft(model.free_energy.nonlinear_gradient(u))
    return u - dt * grid.irfft(s * mu_hat)


def _implicit_step(model, u: torch.Tensor, dt: float, stabilization, g_hat=None) -> torch.Tensor:
    """Solve ``(u+ - u)/dt = -(M + W)[A u+ + S (u+ - u) + grad G(u)]`` mode by mode.

    ``stabilization`` is a scalar or a ``(batch,)`` tensor (one ``S`` per batch member).
    """
    grid = model.grid
    s, linear = _symbols(model)
    u_hat = grid.rfft(u)
    if g_hat is None:
        g_hat = grid.rfft(model.free_energy.nonlinear_gradient(u))
    if torch.is_tensor(stabilization) and stabilization.ndim == 1:
        stabilization = stabilization.reshape(-1, *([1] * grid.ndim))
    numerator = u_hat - dt * s * (g_hat - stabilization * u_hat)
    denominator = 1.0 + dt * s * (linear + stabilization)
    return grid.irfft(numerator / denominator)


def sbdf1_step(model, u: torch.Tensor, dt: float) -> torch.Tensor:
    """The paper's SBDF1: ``a + b|k|^2`` implicit, ``F'`` and ``V_nl`` explicit, no stabilization."""
    return _implicit_step(model, u, dt, 0.0)


def stabilized_step(model, u: torch.Tensor, dt: float, *, adaptive: bool = True,
                    n_trials: int = 6) -> torch.Tensor:
    """Stabilized SBDF1 with ``V(u+) <= V(u)`` for every member and every ``dt`` (see the module docstring).

    With ``adaptive=False`` every step uses ``S = L/2`` (the theorem). With ``adaptive=True`` (default) each
    batch member tries ``S = 0, L/2 * 4**-(n_trials-1), ..., L/2 * 4**-1`` in turn and keeps the first step
    that does not increase ``V``; a member that accepts none takes the ``S = L/2`` step, which dissipates by
    the theorem. Either way the returned state never has a larger energy, and the adaptive variant keeps
    the accuracy of plain SBDF1 wherever SBDF1 itself dissipates (the weight-derived ``L`` is a loose
    worst-case bound, and ``dt * S`` is the scheme's first-order error constant).

    The theorem needs ``mu = dV/du``: a model whose ``is_gradient_flow`` is false (SpecOnsNet with
    ``nonlocal_gradient="paper"``) raises ``ValueError``.
    """
    if not getattr(model, "is_gradient_flow", True):
        raise ValueError("stepper 'stabilized' guarantees energy decay only for a gradient flow, which this "
                         "model (nonlocal_gradient 'paper') is not; use 'euler' or 'sbdf1'.")
    s_max = 0.5 * model.free_energy.curvature_bound().detach()
    if not adaptive:
        return _implicit_step(model, u, dt, s_max)
    g_hat = model.grid.rfft(model.free_energy.nonlinear_gradient(u))
    with torch.no_grad():
        v_old = model.free_energy.energy(u)["total"]
    trials = [torch.zeros_like(s_max)] + [s_max * 4.0 ** (-j) for j in range(n_trials - 1, 0, -1)]
    chosen = torch.full((u.shape[0],), float(s_max), dtype=u.dtype, device=u.device)
    pending = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
    for s_try in trials:
        with torch.no_grad():
            candidate = _implicit_step(model, u, dt, s_try, g_hat=g_hat)
            accept = pending & (model.free_energy.energy(candidate)["total"] <= v_old)
        chosen = torch.where(accept, s_try, chosen)
        pending = pending & ~accept
        if not bool(pending.any()):
            break
    # One differentiable solve with the chosen per-member stabilization (the choice itself is discrete).
    return _implicit_step(model, u, dt, chosen, g_hat=g_hat)


def _phi1(z: torch.Tensor) -> torch.Tensor:
    """``(e^z - 1)/z`` for complex ``z``; its Taylor series where ``|z| < 1e-2`` (no cancellation there)."""
    small = z.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(z), z)
    series = 1 + z / 2 + z * z / 6 + z * z * z / 24
    return torch.where(small, series, (torch.exp(safe) - 1) / safe)


def _phi2(z: torch.Tensor) -> torch.Tensor:
    """``(e^z - 1 - z)/z^2`` for complex ``z``; where ``|z| < 1/2`` its Taylor series to ``z^9`` (truncation below
    1e-9 there, and no cancellation, which would cost float32 ``1e-7/|z|^2``)."""
    small = z.abs() < 0.5
    safe = torch.where(small, torch.ones_like(z), z)
    series = torch.zeros_like(z)
    for n in range(11, 1, -1):  # sum_{n>=2} z^(n-2)/n!, by Horner
        series = series * z + 1.0 / math.factorial(n)
    return torch.where(small, series, (torch.exp(safe) - 1 - safe) / (safe * safe))


def _exponential_terms(model, dt: float, *, second: bool = False):
    """``(e^z, dt phi_1(z) s)`` and, with ``second``, ``dt phi_2(z) s``, for ``z = -dt s A_k``."""
    def build():
        s, linear = _symbols(model)
        z = -dt * s * linear
        terms = (torch.exp(z), dt * _phi1(z) * s)
        return terms + (dt * _phi2(z) * s,) if second else terms
    return _weight_terms(model, ("exponential", float(dt), second), build)


def _exponential_parts(model, u: torch.Tensor, dt: float, *, second: bool = False):
    """``(terms, g_hat(u), ETD1 step as a spectrum)`` of :func:`exponential_step` (``terms``:
    :func:`_exponential_terms`)."""
    grid = model.grid
    terms = _exponential_terms(model, dt, second=second)
    g_hat = grid.rfft(model.free_energy.nonlinear_gradient(u))
    return terms, g_hat, terms[0] * grid.rfft(u) - terms[1] * g_hat


def exponential_step(model, u: torch.Tensor, dt: float) -> torch.Tensor:
    """Exponential Euler: the linear part ``(M + W)(a + b|k|^2)`` exact, ``grad G`` frozen over the step."""
    return model.grid.irfft(_exponential_parts(model, u, dt)[2])


def etdrk2_step(model, u: torch.Tensor, dt: float) -> torch.Tensor:
    """ETD2RK (Cox and Matthews): exponential Euler as predictor, then the trapezoidal correction of
    ``grad G`` through ``phi_2``; the linear part exact, second order."""
    grid = model.grid
    terms, g_hat, predicted = _exponential_parts(model, u, dt, second=True)
    g_pred = grid.rfft(model.free_energy.nonlinear_gradient(grid.irfft(predicted)))
    return grid.irfft(predicted - terms[2] * (g_pred - g_hat))


_DISPATCH = {"euler": euler_step, "sbdf1": sbdf1_step, "stabilized": stabilized_step, "avf": avf_step,
             "exponential": exponential_step, "etdrk2": etdrk2_step}


def step(model, u: torch.Tensor, dt: float, stepper: str) -> torch.Tensor:
    try:
        fn = _DISPATCH[stepper]
    except KeyError:
        raise ValueError(f"stepper must be one of {', '.join(STEPPERS)}, got {stepper!r}.") from None
    return fn(model, u, dt)


@torch.no_grad()
def energy_check(model, u: torch.Tensor, *, dt: float | None = None, stepper: str | None = None,
                 rtol: float = 1e-10) -> dict[str, torch.Tensor]:
    """Take one step and report the energy change per batch member.

    Returns
    -------
    dict
        ``before``, ``after``, ``change`` (``after - before``), ``allowance`` (``rtol * (1 + |before|)``,
        for round-off) and ``ok`` (``change <= allowance``), each of shape ``(batch,)``.
    """
    dt = model.dt if dt is None else dt
    before = model.energy(u)["total"]
    after = model.energy(model.step(u, dt=dt, stepper=stepper))["total"]
    change = after - before
    allowance = rtol * (1.0 + before.abs())
    return {"before": before, "after": after, "change": change, "allowance": allowance,
            "ok": change <= allowance}
