"""Long horizons: rollouts far past the data's horizon from every held-out initial state.

The data end after their horizon (100 steps of the training step on the paper's data sets), so the evaluation cannot
say whether a model stays bounded after it. This diagnostic rolls each model out for many more steps (by default
ten times the data's) with the one rollout engine (:func:`mesodyn.rollout.rollout`) and records, per trajectory,
whether and where it stops being finite, the largest ``|u|`` it reaches against the data's, and, for a model with
an energy (:class:`mesodyn.registry.Capabilities`), ``V`` along it and whether ``V`` ever rose. A model whose step
guarantees ``V(u⁺) <= V(u)`` (the stabilized and AVF steps of :mod:`mesodyn.onsager.steppers`) must show no rise
beyond round-off; the paper's explicit Euler step guarantees nothing of the kind.

A SpecOnsNet whose ``F'`` is the interpolant has ``V`` recorded with ``F`` read from its verified table (``V_T``,
:func:`mesodyn.diagnostics.energy.total_energy` with ``tabulated``): the energy whose law its AVF step satisfies
exactly, ``F`` within 1e-6 of ``max |F|`` at every point in float32. On the default run's AVF models the recorded
values moved by float32 round-off of the sum (at most 2.6e-5 of ``max(|V|, 1)``, where ``V`` is a small difference
of parts of hundreds), no count of rises changed, and every state stayed bit for bit. The MLP at every grid point of
every step had cost half of a 2-D long horizon (20 fields of 128², 8.1 of 16.2 s over 60 steps) and a quarter in
1-D.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.diagnostics._common import _attrs, _frames, _prepare, _sample_coord, _samples
from mesodyn.diagnostics.energy import reads_f_from_table, total_energy
from mesodyn.models import capabilities
from mesodyn.rollout import guarded_step, rollout

__all__ = ["HORIZON_FACTOR", "ENERGY_RISE_RTOL", "energy_rises", "long_horizon"]

HORIZON_FACTOR = 10
"""Steps of a long-horizon rollout, in units of the data's horizon (its frames minus one), unless given."""

ENERGY_RISE_RTOL = {"float32": 1e-5, "float64": 1e-10}
"""A step raises ``V`` where ``V(u⁺) - V(u) > rtol * max(|V(u)|, 1)``: round-off of ``V`` (a sum over the grid)
is about this large relative to it in each precision, so a conserving step is not read as a rising one."""


def energy_rises(energy: np.ndarray, *, rtol: float) -> np.ndarray:
    """The steps at which ``V`` rose beyond round-off, per trajectory.

    Parameters
    ----------
    energy : numpy.ndarray, shape (sample, step)
        ``V`` at step 0 (the initial state) and after every step; NaN after a trajectory stopped.
    rtol : float
        Relative round-off allowance (:data:`ENERGY_RISE_RTOL`).

    Returns
    -------
    numpy.ndarray of bool, shape (sample, step - 1)
        True where ``V`` after the step exceeds ``V`` before it by more than ``rtol * max(|V|, 1)``.
    """
    before, after = energy[:, :-1], energy[:, 1:]
    with np.errstate(invalid="ignore"):
        return (after - before) > rtol * np.maximum(np.abs(before), 1.0)


def _record(model: Any, n: int, n_steps: int, with_energy: bool):
    """A rollout callback that keeps per-step finiteness, max ``|u|`` and ``V``; and its arrays."""
    max_abs = np.zeros(n, dtype=np.float64)
    energy = np.full((n, n_steps + 1), np.nan, dtype=np.float64)

    def on_step(s: int, u: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        flat = u.detach().reshape(n, -1)
        finite = torch.isfinite(flat).all(dim=1)
        if with_energy:
            v = total_energy(model, u, tabulated=True).detach().to(torch.float64).reshape(n)
            finite &= torch.isfinite(v)  # an energy that overflowed counts as a state gone
            keep = (alive & finite).cpu().numpy()
            energy[keep, s] = v.cpu().numpy()[keep]
        else:
            keep = (alive & finite).cpu().numpy()
        amp = flat.abs().amax(dim=1).to(torch.float64).cpu().numpy()
        max_abs[keep] = np.maximum(max_abs[keep], amp[keep])
        return ~finite

    return on_step, max_abs, energy


def _density_source(model: Any, with_energy: bool) -> str:
    """How the recorded ``V`` evaluates ``F``: ``"table"`` (``V_T``), ``"exact"``, or ``"none"`` (no energy)."""
    if not with_energy:
        return "none"
    return "table" if reads_f_from_table(model) else "exact"


def long_horizon(model: Any, data: xr.Dataset, *, samples: Sequence[int], n_steps: int | None = None,
                 dtype: str = "float32", device: str = "auto") -> xr.Dataset:
    """Roll the model out from frame 0 of every one of ``samples`` for ``n_steps`` steps of its own step.

    Parameters
    ----------
    model
        Any model of the interface (``step``, ``dt``; ``energy`` where :func:`mesodyn.models.capabilities` says so).
    data
        A fields data set; the initial states are frame 0 of ``samples``, and the data's max ``|u|`` is taken over
        every frame of them.
    samples
        Trajectories (conventionally the run's held-out test split).
    n_steps
        Steps per rollout (default :data:`HORIZON_FACTOR` times the data's horizon, its frames minus one).
    dtype, device
        Precision and device of the rollout (float32: the evaluation's and the paper's precision).

    Returns
    -------
    xarray.Dataset
        ``first_nonfinite_step`` ``(sample,)`` (−1: finite throughout), ``finite_fraction`` ``(step,)``,
        ``max_abs_u`` and ``max_abs_u_ratio`` ``(sample,)`` (over the finite steps, against ``data_max_abs_u``);
        with an energy also ``energy`` ``(sample, step)`` (NaN once a rollout stopped), ``energy_rise_steps``
        ``(sample,)`` (steps at which ``V`` rose beyond round-off, :data:`ENERGY_RISE_RTOL`) and
        ``energy_max_rise`` ``(sample,)`` (the largest one-step rise relative to ``max(|V|, 1)``).
    """
    idx = _samples(data, samples)
    n_frames = int(data["u"].sizes["time"])
    n_steps = HORIZON_FACTOR * (n_frames - 1) if n_steps is None else int(n_steps)
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}.")
    torch_dtype, torch_device = _prepare(model, dtype, device)
    truth = _frames(data, idx)
    data_max = float(np.abs(truth).max())
    with_energy = bool(capabilities(model).energy)
    u0 = torch.as_tensor(truth[:, 0], dtype=torch_dtype, device=torch_device)
    on_step, max_abs, energy = _record(model, len(idx), n_steps, with_energy)
    max_abs[:] = np.abs(truth[:, 0]).reshape(len(idx), -1).max(axis=1)
    if with_energy:
        energy[:, 0] = total_energy(model, u0, tabulated=True).detach().to(torch.float64).cpu().numpy().reshape(-1)
    first = rollout(lambda v: guarded_step(model, v), u0, n_steps=n_steps, on_step=on_step)
    steps = np.arange(n_steps + 1, dtype=np.int64)
    alive = (first[:, None] < 0) | (steps[None, :] < first[:, None])
    variables: dict[str, Any] = {
        "first_nonfinite_step": (("sample",), first, {
            "long_name": "first step at which the rollout is not finite (-1: finite throughout)", "units": "1"}),
        "finite_fraction": (("step",), alive.mean(axis=0), {
            "long_name": "fraction of the rollouts still finite after the step", "units": "1"}),
        "max_abs_u": (("sample",), max_abs, {"long_name": "largest |u| along the rollout while finite",
                                             "units": "unit of u"}),
        "max_abs_u_ratio": (("sample",), max_abs / data_max, {
            "long_name": "largest |u| along the rollout over the largest |u| of the data's trajectories",
            "units": "1"}),
        "data_max_abs_u": ((), data_max, {"long_name": "largest |u| over every frame of the trajectories",
                                          "units": "unit of u"}),
    }
    rtol = ENERGY_RISE_RTOL[dtype]
    if with_energy:
        rises = energy_rises(energy, rtol=rtol)
        with np.errstate(invalid="ignore"):
            rel = np.diff(energy, axis=1) / np.maximum(np.abs(energy[:, :-1]), 1.0)
        largest = np.where(np.isfinite(rel).any(axis=1), np.nanmax(np.where(np.isfinite(rel), rel, -np.inf), axis=1),
                           np.nan)
        variables.update({
            "energy": (("sample", "step"), energy, {"long_name": "learned energy V along the rollout",
                                                    "units": "model energy unit"}),
            "energy_rise_steps": (("sample",), rises.sum(axis=1).astype(np.int64), {
                "long_name": "steps at which V rose by more than energy_rise_rtol * max(|V|, 1)", "units": "1"}),
            "energy_max_rise": (("sample",), largest, {
                "long_name": "largest one-step change of V relative to max(|V|, 1)", "units": "1"}),
        })
    ds = xr.Dataset(variables, coords={
        "sample": _sample_coord(idx),
        "step": ("step", steps, {"long_name": "steps of the model's step from the initial state", "units": "1"})})
    ds.attrs = _attrs(model, data, "long_horizon", "long-horizon rollouts from every held-out initial state",
                      {"dtype": dtype, "n_steps": n_steps, "data_steps": n_frames - 1, "has_energy": int(with_energy),
                       "energy_rise_rtol": rtol, "energy_density": _density_source(model, with_energy)}, idx)
    return ds
