"""The Onsager hypothesis class ``du/dt = -(M + W) dV/du`` on periodic grids (PyTorch).

Public API: :class:`SpecOnsNet`, :func:`model_config`, the steppers and the energy
check of :mod:`.steppers` (with the proof of discrete energy dissipation), and gauge tools of :mod:`.gauge`.
"""

from mesodyn.onsager.gauge import fit_affine, gauge_invariant_symbols, symbol_fit
from mesodyn.onsager.model import (
    GAUGES,
    OPERATOR_CHOICES,
    SpecOnsNet,
    SpecOnsNetConfig,
    grid_from_coordinates,
    model_config,
)
from mesodyn.onsager.steppers import STEPPERS, energy_check

__all__ = [
    "SpecOnsNet",
    "SpecOnsNetConfig",
    "model_config",
    "grid_from_coordinates",
    "STEPPERS",
    "GAUGES",
    "OPERATOR_CHOICES",
    "energy_check",
    "gauge_invariant_symbols",
    "fit_affine",
    "symbol_fit",
]
