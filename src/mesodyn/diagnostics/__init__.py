"""Diagnostics of learned energies and operators: the numbers behind the energy figures.

Every function takes a model of the interface of :class:`mesodyn.models.base.Model` (``step``, ``dt``, ``config``;
most also need an ``energy``) and, where it looks at data, a fields data set (``u`` with dims ``(sample, time, x)``
or ``(sample, time, y, x)``, opened lazily or in memory: only the trajectories named by ``samples`` are read). Each
returns an :class:`xarray.Dataset` with CF-style ``long_name``/``units`` attributes and the provenance attributes of
:func:`mesodyn.provenance.provenance_attrs`; :func:`write_diagnostic` writes it atomically and byte-identically on
rerun, and :func:`diagnostic_file` runs one diagnostic on a saved model and a fields file (the figures read only
these files, under ``results/diagnostics/``, never a model).

What the paper (arXiv 2605.16211; its authors' code MLDS-NUS/Meso-SpecOnsNet) plots, and what we add:

=============================  ===========================================================================
function                       what it measures
=============================  ===========================================================================
:func:`energy_vs_truth`        learned ``V`` against the true energy over test snapshots, with the affine
                               least-squares line and Pearson ``r`` (the gauge ``V -> c V + const``)
:func:`step_size_sweep`        rollouts at ``dt = f dt_train``: ``V`` along each, relative RMSE against
                               the truth interpolated linearly in time, and which rollouts diverge
:func:`energy_along_truth`     ``V(t)`` and ``V(t) - V(0)`` on the true trajectories (no rollout)
:func:`energy_change_vs_dt`    per-step ``|V(u^{s+1}) - V(u^s)|`` against ``dt`` with a power-law fit
:func:`energy_order`           ``|V_c(s u0) - V_c(0)|`` against ``s`` for the parts of ``V``, the fitted
                               exponent, and the learned local density ``F``
:func:`operator_symbols`       gauge-invariant symbols ``b m(k)`` and ``b phi(k)`` with the known truth (ours)
:func:`dissipation_along_rollout`  ``<mu, M mu>`` and the discrete ``dV/dt`` along rollouts (ours)
:func:`prediction`             one test trajectory rolled out over the whole horizon beside the truth (ours)
:func:`identifiability`        the learned linear dynamics and symbols of several fits, their spread and
                               their residual against the truth (ours)
=============================  ===========================================================================

Conventions
-----------
* ``samples`` are positions along the data's ``sample`` dimension (the indices of :mod:`mesodyn.evaluation`); the
  output's ``sample`` coordinate holds them.
* The model is moved to ``device`` and cast in place to ``dtype`` (float64 by default: per-step energy changes at
  ``dt_train / 10`` are far below float32 round-off of ``V``) and put in eval mode; everything runs under
  ``torch.no_grad()`` (a step that needs autograd enables it itself, as in :mod:`mesodyn.evaluation`).
* Divergence (:data:`DIVERGENCE_FACTOR`): a rollout counts as diverged at the first step whose learned ``V`` is
  non-finite or exceeds ``50 max(|V(u0)|, 1)`` in absolute value; it is not continued after that step (later
  entries are NaN, or ``inf`` for energy changes).
* The true Allen–Cahn energy is ``int 1/2 |grad u|^2 + u^4/(4 eps^2) - u^2/(2 eps^2)`` (no constant, the paper's
  figure), i.e. :func:`mesodyn.continuum.invariants.allen_cahn_energy` minus ``|Omega|/(4 eps^2)``; the KdV one is
  :func:`mesodyn.continuum.invariants.kdv_hamiltonian` (``int u_x^2/2 - u^3``).

Modules, by concept
-------------------
:mod:`~mesodyn.diagnostics.energy` (the learned energy: against the truth, along the truth, its order),
:mod:`~mesodyn.diagnostics.rollouts` (the step-size sweep and the energy change against ``dt``),
:mod:`~mesodyn.diagnostics.operators` (operator symbols, dissipation),
:mod:`~mesodyn.diagnostics.identifiability` (what several fits learned, and whether it is identified) and :mod:`~mesodyn.diagnostics.files` (the
workflow's entry points). Every public name is importable from :mod:`mesodyn.diagnostics` itself.
"""

from __future__ import annotations

from mesodyn.diagnostics._common import DIVERGENCE_FACTOR, SYSTEMS, power_law_fit
from mesodyn.diagnostics.energy import (energy_along_truth, energy_order, energy_parts, energy_vs_truth, local_density,
                                        total_energy, true_energy)
from mesodyn.diagnostics.files import DIAGNOSTICS, diagnostic_file, identifiability_file, write_diagnostic
from mesodyn.diagnostics.operators import dissipation_along_rollout, operator_symbols, spectral_extent
from mesodyn.diagnostics.horizon import energy_rises, long_horizon
from mesodyn.diagnostics.identifiability import (identifiability, linear_response, relative_residual,
                                                 relative_spread, true_linear_rate)
from mesodyn.diagnostics.prediction import prediction
from mesodyn.diagnostics.rollouts import energy_change_vs_dt, step_size_sweep

__all__ = [
    "DIVERGENCE_FACTOR", "DIAGNOSTICS", "SYSTEMS", "true_energy", "total_energy", "energy_parts", "local_density",
    "power_law_fit", "energy_vs_truth", "step_size_sweep", "energy_along_truth", "energy_change_vs_dt",
    "energy_order", "operator_symbols", "dissipation_along_rollout", "write_diagnostic", "diagnostic_file",
    "spectral_extent", "prediction", "long_horizon", "energy_rises", "identifiability", "identifiability_file",
    "linear_response", "true_linear_rate", "relative_spread", "relative_residual",
]
