"""SpecOnsNet: the spectral Onsager network ``du/dt = -(M + W) dV/du`` on a periodic 1-D or 2-D grid.

The grid (``shape``, ``length``) always comes from the data's coordinates. A model is described by a
JSON-able config (``model.config``, :class:`mesodyn.models.configs.SpecOnsNetConfig`) and rebuilt from it by
:func:`mesodyn.models.build_model`; weights travel as a plain
``state_dict`` (loadable with ``torch.load(..., weights_only=True)``), never pickled modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mesodyn.models.base import Model
from mesodyn.models.configs import GAUGES, LOCAL_DERIVATIVES, OPERATOR_CHOICES, SpecOnsNetConfig
from mesodyn.onsager.energy import FreeEnergy
from mesodyn.onsager.operators import grid_and_operators
from mesodyn.onsager.steppers import step as _step

__all__ = ["SpecOnsNetConfig", "GradientFlowModel", "SpecOnsNet", "model_config", "GAUGES", "OPERATOR_CHOICES", "grid_from_coordinates"]


def model_config(**options: Any) -> dict[str, Any]:
    """A validated, complete, JSON-able SpecOnsNet config with defaults filled in.

    Keyword arguments are the fields of :class:`SpecOnsNetConfig` (``name`` may be given as ``"speconsnet"``).
    Unknown keys raise ``ValueError``.
    """
    return SpecOnsNetConfig.from_options(options).to_dict()


class GradientFlowModel(Model):
    """``du/dt = -(M + W) mu``, ``mu = dV/du``, with learned Fourier operators ``self.operators`` and a free-energy
    module ``self.free_energy`` (``mu``, ``energy``, the coefficients ``a`` and ``b`` of its quadratic part and
    ``local_density``): what SpecOnsNet and its true-V ablation share."""

    @property
    def stepper(self) -> str:
        """The stepper :meth:`step` takes when given none (the config's)."""
        return self.cfg.stepper

    def quadratic_coefficients(self) -> tuple[float, float]:
        """``(a, b)`` of the quadratic part ``int a/2 u^2 + b/2 |grad u|^2`` of :meth:`energy` (its
        ``"quadratic"`` entry), as numbers."""
        # detached: a number, not a step of a graph (a and b are learned parameters of SpecOnsNet)
        return tuple(float(torch.as_tensor(c).detach()) for c in (self.free_energy.a, self.free_energy.b))

    def local_density(self, u: torch.Tensor) -> torch.Tensor:
        """The density ``F(u)``, elementwise, of the local part ``int F(u)`` of :meth:`energy` (its ``"local"``
        entry)."""
        return self.free_energy.local_density(u)

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/du`` in the grid inner product ``<f, g> = (|Omega|/N) sum f g`` (mean over cells times the
        domain volume), the same inner product in which ``M`` is symmetric PSD and ``W`` antisymmetric."""
        self.check_input(u)
        return self.free_energy.mu(u)

    def energy(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parts of ``V`` and their ``"total"``, each of shape ``(batch,)``."""
        self.check_input(u)
        return self.free_energy.energy(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The vector field ``du/dt = -(M + W) mu(u)``."""
        return -self.operators.apply(self.mu(u))

    def dissipation_rate(self, u: torch.Tensor) -> torch.Tensor:
        """``-<mu, M mu>`` per batch member: ``dV/dt`` in continuous time (for SpecOnsNet when
        :attr:`SpecOnsNet.is_gradient_flow`)."""
        return -self.operators.dissipation(self.mu(u))

    def step(self, u: torch.Tensor, dt: float | None = None, stepper: str | None = None) -> torch.Tensor:
        """One step of size ``dt`` (default ``self.dt``) with ``stepper`` (default: the configured one), made of
        the config's ``substeps`` substeps of ``dt / substeps`` (SpecOnsNet in training mode: its
        ``train_stepper`` and ``train_substeps`` where given)."""
        self.check_input(u)
        stepper, n = self._stepping(stepper)
        h = (self.dt if dt is None else float(dt)) / n
        for _ in range(n):
            u = _step(self, u, h, stepper)
        return u

    def _stepping(self, stepper: str | None) -> tuple[str, int]:
        """The stepper and the substeps of one :meth:`step`."""
        return stepper or self.stepper, int(self.cfg.substeps)


class SpecOnsNet(GradientFlowModel):
    """Spectral Onsager network ``du/dt = -(M + W) mu``, ``mu = dV/du`` (see :mod:`mesodyn.onsager`).

    Construct with the keyword arguments of :class:`SpecOnsNetConfig`. Fields are tensors of shape
    ``(batch, *shape)``.

    Random draws, all from torch's global generator (:func:`mesodyn.training.fit` seeds it before building the
    model), in this order: the linear layers of ``F`` (``lin1``, ``lin2``, ``lin3``, ``out``), then those of
    ``V_nl`` (``lin1``, ``lin2``, ``lin3``), all at PyTorch's default initialization whatever ``init`` is; then,
    with ``init="paper"`` only, ``theta`` and then ``psi`` (:meth:`FourierOperators.paper_init_`). The
    authors' code also builds its potential (``F``, ``V_nl``) before drawing ``M`` and ``W``. So at one seed
    ``"ours"`` and ``"paper"`` have the same ``F`` and ``V_nl`` weights and differ in ``a``, ``b``, ``M`` and
    ``W`` only. ``init="ours"`` draws nothing beyond the linear layers.

    With ``nonlocal_gradient="paper"`` (and ``nonlocal_modes > 0``) the model is not a gradient flow of its own
    ``V``: :meth:`mu`'s ``V_nl`` part is the authors' rescaled gradient while :meth:`energy` is unchanged, so
    :meth:`dissipation_rate` is not ``dV/dt`` and the ``"stabilized"`` stepper, whose energy guarantee needs
    ``mu = dV/du``, is refused: as the configured stepper by the config's validation, and when asked for at a
    step (:attr:`is_gradient_flow`).
    """

    config_class = SpecOnsNetConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        cfg = self.cfg
        self._step_cache: dict | None = None  # weight terms of the steppers, inside :meth:`shared_tables`
        self.grid, self.operators = grid_and_operators(cfg)
        if cfg.init == "ours" and cfg.init_m_cap is not None:
            self.operators.cap_mobility_(dt=cfg.dt, init_m=cfg.init_m, cap=cfg.init_m_cap, a=cfg.init_a, b=cfg.init_b)
        self.free_energy = FreeEnergy(grid=self.grid, hidden=cfg.hidden, nonlocal_modes=cfg.nonlocal_modes,
                                      fix_b=cfg.gauge == "unit_b", local_derivative=cfg.local_derivative,
                                      init_a=cfg.init_a, init_b=cfg.init_b,
                                      nonlocal_gradient=cfg.nonlocal_gradient)
        if cfg.init == "paper":
            # After F and V_nl: the draw order documented above.
            self.free_energy.paper_init_()
            self.operators.paper_init_()

    def _stepping(self, stepper: str | None) -> tuple[str, int]:
        """In training mode the config's ``train_stepper``/``train_substeps`` where given, else the rollout's."""
        cfg = self.cfg
        if not self.training:
            return super()._stepping(stepper)
        return stepper or cfg.train_stepper or cfg.stepper, int(cfg.train_substeps or cfg.substeps)

    @contextlib.contextmanager
    def shared_tables(self, fields: torch.Tensor):
        """A context for one training step's K-step rollout, its backward included (the weights must not change
        inside): ``F'`` reads one table fitted on the range of ``fields`` (interpolant models; see
        :meth:`mesodyn.onsager.energy.PointwiseMLP.shared_table`) instead of a table per call, and the steppers
        form the symbols of ``M + W``, ``a + b|k|^2`` and their exponentials once, not once per step."""
        previous = self._step_cache
        with self.free_energy.local.shared_table(fields):
            self._step_cache = {}
            try:
                yield
            finally:
                self._step_cache = previous

    @property
    def local_derivative(self) -> str:
        """How ``F'`` is evaluated, ``"exact"`` or ``"interpolant"`` (:class:`mesodyn.onsager.energy.PointwiseMLP`:
        the same function, at different cost). Settable, e.g. to the cheaper one for a diagnostic; the config keeps
        the value the model was trained with."""
        return self.free_energy.local.derivative_mode

    @local_derivative.setter
    def local_derivative(self, mode: str) -> None:
        if mode not in LOCAL_DERIVATIVES:
            raise ValueError(f"local_derivative must be one of {', '.join(LOCAL_DERIVATIVES)}, got {mode!r}.")
        self.free_energy.local.derivative_mode = mode

    @property
    def is_gradient_flow(self) -> bool:
        """Whether :meth:`mu` is ``dV/du`` of :meth:`energy` (false with the paper's ``V_nl`` gradient)."""
        return self.free_energy.is_gradient

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/du`` in the grid inner product (:meth:`GradientFlowModel.mu`). With ``nonlocal_gradient="paper"``
        the ``V_nl`` part is the authors' gradient on the raw FFT coefficients instead, ``w_k |Omega| / N^2``
        times ours on mode ``k`` (:class:`NonlocalEnergy`)."""
        return super().mu(u)

    def energy(self, u: torch.Tensor, *, tabulated: bool = False) -> dict[str, torch.Tensor]:
        """``{"quadratic", "local", "nonlocal", "total"}``, each of shape ``(batch,)``. ``tabulated`` (interpolant
        models, without gradients): ``F`` read from its verified table, ``V_T``
        (:meth:`mesodyn.onsager.energy.FreeEnergy.energy`)."""
        self.check_input(u)
        return self.free_energy.energy(u, tabulated=tabulated)

    def energy_lower_bound(self) -> torch.Tensor:
        """``C`` with ``V(u) >= -C`` for every field (``C = |Omega| ||w_out||_1``)."""
        return self.free_energy.lower_bound()

    def stabilization(self) -> torch.Tensor:
        """``S = L/2`` used by the ``"stabilized"`` stepper."""
        return 0.5 * self.free_energy.curvature_bound()


def grid_from_coordinates(*coords: Sequence[float]) -> dict[str, list]:
    """``{"shape": [...], "length": [...]}`` from uniform periodic coordinate arrays (2-D: ``y`` then ``x``).

    The period is ``n * spacing`` (the last point is not repeated), so it is read from the data, never assumed.
    """
    shape, length = [], []
    for c in coords:
        c = np.asarray(c, dtype=float)
        if c.ndim != 1 or c.size < 2:
            raise ValueError(f"each coordinate must be a 1-D array of at least 2 points, got shape {c.shape}.")
        spacing = np.diff(c)
        if not np.allclose(spacing, spacing[0], rtol=1e-9, atol=0.0) or spacing[0] <= 0:
            raise ValueError("coordinates must be uniformly spaced and increasing.")
        shape.append(int(c.size))
        length.append(float(c.size * (c[-1] - c[0]) / (c.size - 1)))
    return {"shape": shape, "length": length}
