r"""The true-V ablation: SpecOnsNet's learned ``M`` and ``W`` with ``V`` fixed to the system's true energy.

``du/dt = -(M + W) mu``, ``mu = dV/du`` in the grid inner product ``<f, g> = (|Omega|/N) sum f g`` (the mean over
cells times the domain volume, as for SpecOnsNet). ``M`` and ``W`` are the learned Fourier multipliers of
:class:`mesodyn.onsager.operators.FourierOperators`; ``V`` has no parameters:

* Allen–Cahn (1-D, 2-D): ``V = int 1/2 |grad u|^2 + (u^2 - 1)^2 / (4 eps^2)``,
  ``mu = -Lap u + (u^3 - u)/eps^2``. With ``M = I``, ``W = 0`` the model is the Allen–Cahn equation.
* KdV (1-D): ``V = int 1/2 u_x^2 - u^3``, ``mu = -u_xx - 3 u^2``. With ``M = 0`` and ``W = -d/dx`` (symbol
  ``phi(k) = -k``) the model is ``u_t + 6 u u_x + u_xxx = 0``.

The gradient terms are spectral: ``int 1/2 |grad u|^2`` is ``1/2 <u, -Lap u>`` with the symbol ``|k|^2`` (the
Nyquist mode included), so ``mu`` is exactly the gradient of the ``V`` that :meth:`SpecOnsNetTrueV.energy`
returns. This is the ablation of arXiv 2605.16211 (the authors' ``*_realV`` runs in MLDS-NUS/Meso-SpecOnsNet).

Steppers: ``"euler"`` (the default, the paper's) ``u+ = u - dt (M + W) mu(u)``, and ``"sbdf1"`` with the quadratic
part ``|k|^2`` implicit and ``F'`` explicit; both are those of :mod:`mesodyn.onsager.steppers`. The stabilized
stepper needs a global bound on the curvature of the explicit part, which ``(u^2 - 1)^2`` and ``u^3`` lack, so
it is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mesodyn.models.configs import TrueVConfig
from mesodyn.onsager.model import GradientFlowModel
from mesodyn.onsager.operators import SpectralGrid, grid_and_operators

__all__ = ["TrueEnergy", "SpecOnsNetTrueV", "TrueVConfig", "TRUE_V_STEPPERS"]

# The steppers of mesodyn.onsager.steppers that apply to an energy without a global curvature bound.
TRUE_V_STEPPERS = ("euler", "sbdf1")


class TrueEnergy(nn.Module):
    """A known free energy ``V = 1/2 <u, -Lap u> + int F(u)`` and its gradient in the grid inner product.

    It offers what the steppers of :mod:`mesodyn.onsager.steppers` read from a free energy: ``energy``,
    ``mu``, ``linear_symbol`` (``a + b |k|^2`` with ``a = 0``, ``b = 1``) and ``nonlinear_gradient`` (``F'``).

    Parameters
    ----------
    grid
        The spectral grid.
    kind
        ``"allen_cahn"``: ``F(u) = (u^2 - 1)^2 / (4 eps^2)``; ``"kdv"``: ``F(u) = -u^3``.
    epsilon
        Allen–Cahn interface width (not used for KdV).
    """

    a = 0.0  # the quadratic part 1/2 <u, -Lap u> is int a/2 u^2 + b/2 |grad u|^2 with these
    b = 1.0

    def __init__(self, *, grid: SpectralGrid, kind: str, epsilon: float = 0.1):
        super().__init__()
        if kind not in ("allen_cahn", "kdv"):
            raise ValueError(f"kind must be 'allen_cahn' or 'kdv', got {kind!r}.")
        self.grid = grid
        self.kind = kind
        self.epsilon = float(epsilon)

    def linear_symbol(self) -> torch.Tensor:
        """``a + b |k|^2`` on the half spectrum: ``|k|^2`` (``a = 0``, ``b = 1`` for both energies)."""
        return self.grid.k2_half

    def local_density(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u)`` pointwise."""
        if self.kind == "allen_cahn":
            w = u * u - 1.0
            return w * w * (0.25 / self.epsilon**2)
        return -(u * u * u)

    def nonlinear_gradient(self, u: torch.Tensor) -> torch.Tensor:
        """``F'(u)`` pointwise: ``(u^3 - u)/eps^2`` or ``-3 u^2``."""
        if self.kind == "allen_cahn":
            return (u * u * u - u) * (1.0 / self.epsilon**2)
        return -3.0 * (u * u)

    def energy(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"quadratic", "local", "total"}``, each of shape ``(batch,)``."""
        grid = self.grid
        quadratic = 0.5 * grid.quadratic_form(grid.rfft(u), grid.k2_half.to(u.dtype))
        local = grid.integral(self.local_density(u))
        return {"quadratic": quadratic, "local": local, "total": quadratic + local}

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/du`` in the grid inner product: ``-Lap u + F'(u)``."""
        grid = self.grid
        return grid.irfft(grid.rfft(u) * grid.k2_half.to(u.dtype)) + self.nonlinear_gradient(u)


class SpecOnsNetTrueV(GradientFlowModel):
    """SpecOnsNet's learned ``M`` and ``W`` with ``V`` fixed to the true energy (see the module docstring).

    Construct with the keyword arguments of :class:`mesodyn.models.configs.TrueVConfig`. The initial ``M`` and
    ``W`` follow SpecOnsNet's options: ``init: ours`` gives ``m(k) = min(init_m, init_m_cap / (dt |k|^2))``
    (``|k|^2`` being the quadratic part of the true ``V``, ``a = 0``, ``b = 1``) and ``W = 0``; ``init: paper``
    draws the authors' ``theta ~ N(0, 0.1^2)`` (``m = theta^2``) and then ``psi ~ N(0, 0.01^2)`` (``phi =
    sign(k) psi``) from torch's global generator, as SpecOnsNet does
    (:meth:`mesodyn.onsager.operators.FourierOperators.paper_init_`); ``init_m`` and ``init_m_cap`` are then not
    used.
    """

    config_class = TrueVConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        cfg = self.cfg
        self.grid, self.operators = grid_and_operators(cfg)
        self.free_energy = TrueEnergy(grid=self.grid, kind=cfg.energy, epsilon=cfg.epsilon)
        ops = self.operators
        with torch.no_grad():
            if cfg.init == "paper":
                # SpecOnsNet's draw (theta, then psi, both always drawn); V has nothing to draw before it.
                ops.paper_init_()
            elif cfg.init_m_cap is not None:
                # SpecOnsNet's explicit-Euler-stable start with the true quadratic symbol |k|^2 (a = 0, b = 1):
                # k = 0 has no stiffness there, so it keeps init_m.
                ops.cap_mobility_(dt=cfg.dt, init_m=cfg.init_m, cap=cfg.init_m_cap, a=0.0, b=1.0)

    def energy(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The true ``V`` per batch member: ``{"quadratic", "local", "total"}`` (as :meth:`SpecOnsNet.energy`),
        each of shape ``(batch,)``."""
        return super().energy(u)

    def _stepping(self, stepper: str | None) -> tuple[str, int]:
        """The configured stepper unless one is given; only those of :data:`TRUE_V_STEPPERS`."""
        stepper, n = super()._stepping(stepper)
        if stepper not in TRUE_V_STEPPERS:
            raise ValueError(f"stepper must be one of {', '.join(TRUE_V_STEPPERS)} for the true-V model, "
                             f"got {stepper!r}.")
        return stepper, n

    def dissipation_rate(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/dt = -<mu, M mu>`` per batch member (continuous time)."""
        return -self.operators.dissipation(self.mu(u))
