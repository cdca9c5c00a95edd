"""Continuum PDE data: periodic pseudo-spectral solvers for KdV-type and Allen–Cahn equations.

* :func:`make_dataset` builds the paper's ``kdv``, ``allen_cahn`` and ``allen_cahn_2d`` data sets (scheme
  ``paper`` reproduces the authors' Dedalus data; ``etdrk4`` is a fourth-order, dispersion-exact alternative).
* :func:`solve_gkdv` and :func:`solve_allen_cahn` are general batched solvers (ETDRK4, alias-free products).
* :mod:`~mesodyn.continuum.invariants` holds mass, the KdV Hamiltonian and the Allen–Cahn free energy.

See ``docs/continuum.md``.
"""

from mesodyn.continuum.datasets import (
    DATASETS,
    AllenCahn2DConfig,
    AllenCahnConfig,
    KdVConfig,
    config_for,
    make_dataset,
)
from mesodyn.continuum.invariants import allen_cahn_energy, kdv_hamiltonian, mass
from mesodyn.continuum.solvers import SCHEMES, BlowUpError, frame_schedule, solve_allen_cahn, solve_gkdv
from mesodyn.continuum.spectral import FourierGrid

__all__ = [
    "DATASETS",
    "SCHEMES",
    "AllenCahn2DConfig",
    "AllenCahnConfig",
    "BlowUpError",
    "FourierGrid",
    "KdVConfig",
    "allen_cahn_energy",
    "config_for",
    "frame_schedule",
    "kdv_hamiltonian",
    "make_dataset",
    "mass",
    "solve_allen_cahn",
    "solve_gkdv",
]
