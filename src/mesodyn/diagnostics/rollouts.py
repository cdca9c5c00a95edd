"""Rollouts at several time steps and steppers: the step-size sweep and the one-step energy change.

Both roll the model out with :func:`mesodyn.rollout.rollout` and stop a trajectory where its learned energy leaves
the bound of :data:`~mesodyn.diagnostics.DIVERGENCE_FACTOR` (or its state is non-finite).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.diagnostics._common import (DIVERGENCE_FACTOR, _attrs, _diverged, _fit_vars, _frames, _model_name,
                                         _n_steps, _prepare, _require, _sample_coord, _samples, _stepper_name,
                                         _times, power_law_fit)
from mesodyn.diagnostics.energy import total_energy
from mesodyn.metrics import relative_rmse
from mesodyn.models import capabilities
from mesodyn.rollout import guarded_step, rollout

__all__ = ["step_size_sweep", "energy_change_vs_dt"]


# -- figure 4: step-size sweep --------------------------------------------------------------------------------------
def _interpolation(tau: np.ndarray, t: float) -> tuple[int, float] | None:
    """Frame ``j`` and weight ``w`` with ``truth(t) = (1 - w) u_j + w u_{j+1}``; ``None`` beyond the data."""
    if t > tau[-1] * (1 + 1e-9):
        return None
    j = int(np.clip(np.searchsorted(tau, t, side="right") - 1, 0, tau.size - 2))
    return j, float(np.clip((t - tau[j]) / (tau[j + 1] - tau[j]), 0.0, 1.0))


def _relative_rmse(pred: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """:func:`mesodyn.metrics.relative_rmse` of one step, per batch member (float64)."""
    return relative_rmse(pred.double(), truth.double(), grid_axes=pred.ndim - 1).cpu().numpy()


def _sweep_settings(tau: np.ndarray, horizon: float | None, factors: Sequence[float],
                    energy_points: int | None) -> tuple[float, list[float]]:
    """The sweep's horizon (default the data's span) and factors, checked."""
    horizon = float(tau[-1]) if horizon is None else horizon
    if not horizon > 0 or horizon > tau[-1] * (1 + 1e-9):
        raise ValueError(f"horizon must lie in (0, {tau[-1]:g}] (the data's time span), got {horizon!r}.")
    if energy_points is not None and (isinstance(energy_points, bool) or int(energy_points) < 1):
        raise ValueError(f"energy_points must be a positive integer or None, got {energy_points!r}.")
    factors = [float(f) for f in factors]
    if not factors or any(not f > 0 for f in factors):
        raise ValueError(f"factors must be positive, got {factors}.")
    return horizon, factors


def _refuses(model: Any, u: torch.Tensor, dt: float, stepper: str) -> bool:
    """Whether the model refuses ``stepper`` (``ValueError`` at its first step): the true-V model has no stabilized
    stepper; such a stepper is left out rather than failing the whole sweep."""
    try:
        guarded_step(model, u, dt=dt, stepper=stepper)
    except ValueError:
        return True
    return False


def _sweep_rollout(model: Any, frames: torch.Tensor, tau: np.ndarray, *, dt: float, n: int, width: int,
                   stepper: str | None, stride: int, dtype: torch.dtype) -> tuple[np.ndarray, ...]:
    """One rollout of the sweep: ``energy`` and ``rel_rmse`` (sample, step), ``diverged`` and ``diverged_step``."""
    n_s = frames.shape[0]
    energy, rel = np.full((n_s, width), np.nan), np.full((n_s, width), np.nan)
    u0 = frames[:, 0].to(dtype)
    v0 = total_energy(model, u0)
    energy[:, 0] = v0.double().cpu().numpy()
    rel[:, 0] = _relative_rmse(u0, frames[:, 0])

    def record(s: int, u: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        live = alive.cpu().numpy()
        if s % stride == 0 or s == n:
            v = total_energy(model, u)
            energy[live, s] = v.double().cpu().numpy()[live]
            bad = _diverged(v, v0)
        else:  # between evaluations of V: a non-finite state only
            bad = ~torch.isfinite(u.reshape(n_s, -1)).all(dim=1)
            energy[live & (alive & bad).cpu().numpy(), s] = np.inf
        where = _interpolation(tau, s * dt)
        if where is not None:
            j, w = where
            truth = (1.0 - w) * frames[:, j] + w * frames[:, j + 1]
            rel[live, s] = _relative_rmse(u, truth)[live]
        return bad

    first = rollout(lambda u: guarded_step(model, u, dt=dt, stepper=stepper), u0, n_steps=n, on_step=record)
    return energy, rel, (first >= 0).astype(np.int8), first


def _sweep_dataset(kept: list[tuple], factors: list[float], dts: list[float], n_steps: list[int],
                   idx: np.ndarray) -> xr.Dataset:
    """The sweep's data set from ``(stepper, energy, rel_rmse, diverged, diverged_step)`` per kept stepper."""
    width = max(n_steps) + 1
    steps = np.arange(width, dtype=np.int64)
    lead = np.where(steps[None, :] <= np.asarray(n_steps)[:, None], steps[None, :] * np.asarray(dts)[:, None],
                    np.nan)
    dims4, dims3 = ("stepper", "factor", "sample", "step"), ("stepper", "factor", "sample")
    return xr.Dataset(
        {
            "energy": (dims4, np.stack([k[1] for k in kept]), {
                "long_name": "learned free energy V_theta along the rollout (NaN after divergence, padding and, with "
                             "energy_points, between the evaluated steps)",
                "units": "model energy unit"}),
            "rel_rmse": (dims4, np.stack([k[2] for k in kept]), {
                "long_name": "relative RMSE against the truth interpolated linearly in time", "units": "1"}),
            "diverged": (dims3, np.stack([k[3] for k in kept]), {
                "long_name": "rollout diverged (non-finite V or |V| > 50 max(|V(0)|, 1))", "units": "1",
                "flag_values": np.array([0, 1], dtype=np.int8), "flag_meanings": "bounded diverged"}),
            "diverged_step": (dims3, np.stack([k[4] for k in kept]), {
                "long_name": "first diverged step (-1: never)", "units": "1"}),
        },
        coords={
            "stepper": ("stepper", np.asarray([k[0] for k in kept], dtype=object), {"long_name": "time stepper"}),
            "factor": ("factor", np.asarray(factors), {"long_name": "time step over the training time step",
                                                       "units": "1"}),
            "dt": ("factor", np.asarray(dts), {"long_name": "time step", "units": "time unit of the data"}),
            "n_steps": ("factor", np.asarray(n_steps, dtype=np.int64), {"long_name": "steps of the rollout",
                                                                        "units": "1"}),
            "sample": _sample_coord(idx),
            "step": ("step", steps, {"long_name": "step of the rollout", "units": "1"}),
            "lead_time": (("factor", "step"), lead, {"long_name": "lead time (step times dt; NaN: padding)",
                                                     "units": "time unit of the data"}),
        },
    )


def step_size_sweep(model: Any, data: xr.Dataset, *, samples: Sequence[int],
                    factors: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1, 3), horizon: float | None = 0.1,
                    steppers: Sequence[str] = ("euler", "stabilized"), energy_points: int | None = None,
                    dtype: str = "float64", device: str = "auto") -> xr.Dataset:
    """Rollouts from frame 0 at ``dt = f dt_train`` for each factor ``f`` and stepper.

    Each rollout takes ``n = round(horizon / dt)`` steps. Recorded along it: the learned ``V`` and the relative
    RMSE (:func:`mesodyn.evaluation.relative_rmse`) against the truth interpolated linearly in time between the
    data's frames (NaN past the last frame). A rollout is stopped at the first step where it diverges
    (:data:`DIVERGENCE_FACTOR`); the values of that step are kept, later ones are NaN.

    With ``energy_points`` the learned ``V`` (which can cost far more than a step: in 2-D the pointwise MLP runs at
    every grid point) is evaluated only every ``ceil(n / energy_points)``-th step and at the last one; the others
    are NaN. The error is still recorded at every step, and every step still checks that the state is finite;
    the energy bound of the divergence rule is then checked at the evaluated steps only, so ``diverged_step`` can
    come up to one stride late. Rollouts of at most ``energy_points`` steps (those at and above the training step
    in the paper's sweep, where explicit Euler diverges) are evaluated at every step, exactly as without it.

    Parameters
    ----------
    model
        A model with ``energy``. If its ``step`` accepts ``stepper`` (SpecOnsNet, the true-``V`` ablation,
        Res-OnsagerNet) each of ``steppers`` is run, and one the model refuses (``ValueError`` at the first step)
        is left out and named in the attribute ``steppers_refused``; otherwise the model's own step only, as the
        stepper ``"default"``.
    data
        Fields data set; ``horizon`` must not exceed its time span.
    samples
        Trajectories (the paper: 5 test trajectories).
    factors, horizon, steppers
        Step-size factors of ``dt_train = model.dt``, time span of the rollouts (``None``: the data's whole span;
        the paper's 0.1 is the whole span of its PDE data), steppers.
    energy_points
        Evaluate ``V`` at about this many steps per rollout (see above); ``None``: at every step.
    dtype, device
        Precision and device.

    Returns
    -------
    xarray.Dataset
        Dims ``stepper``, ``factor``, ``sample``, ``step`` (0 … max n, padded with NaN). ``energy`` and
        ``rel_rmse`` (stepper, factor, sample, step); ``diverged`` (0/1) and ``diverged_step`` (−1: never)
        (stepper, factor, sample); coordinates ``dt`` and ``n_steps`` on ``factor``, ``lead_time``
        (factor, step).
    """
    _require(model, "energy", "the step-size sweep")
    idx = _samples(data, samples)
    torch_dtype, torch_device = _prepare(model, dtype, device)
    tau = _times(data) - float(data["time"].values[0])
    horizon, factors = _sweep_settings(tau, horizon, factors, energy_points)
    dt_train = float(model.dt)
    dts = [f * dt_train for f in factors]
    n_steps = [_n_steps(horizon, dt) for dt in dts]
    frames = torch.as_tensor(_frames(data, idx), dtype=torch.float64, device=torch_device)
    names = [str(s) for s in steppers] if capabilities(model).steppers else ["default"]
    kept, refused = [], []
    for name in names:
        stepper = None if name == "default" else name
        if stepper is not None and _refuses(model, frames[:1, 0].to(torch_dtype), dt_train, stepper):
            refused.append(name)
            continue
        runs = [_sweep_rollout(model, frames, tau, dt=dt, n=n, width=max(n_steps) + 1, stepper=stepper,
                               stride=1 if energy_points is None else max(1, math.ceil(n / int(energy_points))),
                               dtype=torch_dtype) for dt, n in zip(dts, n_steps)]
        kept.append((name, *(np.stack([run[k] for run in runs]) for k in range(4))))
    if not kept:
        raise ValueError(f"model {_model_name(model)!r} refused every stepper of {list(names)}.")
    ds = _sweep_dataset(kept, factors, dts, n_steps, idx)
    settings = {"factors": factors, "horizon": float(horizon), "steppers": [str(s) for s in steppers],
                "steppers_refused": refused, "divergence_factor": DIVERGENCE_FACTOR,
                "energy_points": "every step" if energy_points is None else int(energy_points), "dtype": dtype}
    ds.attrs = _attrs(model, data, "step_size_sweep", "rollouts at several time steps: learned energy, error and "
                      "divergence", settings, idx)
    return ds


# -- figure 6: one-step energy change against the time step ---------------------------------------------------------
def _energy_changes(model: Any, u0: torch.Tensor, *, dt: float, n: int,
                    stepper: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``|V(u^s) - V(u^(s-1))|`` (sample, step) of one rollout (``inf`` from divergence on) and the diverged step."""
    row = np.full((u0.shape[0], n), np.inf)
    v_start = total_energy(model, u0)
    previous = [v_start]

    def record(s: int, u: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        v = total_energy(model, u)
        bad = alive & _diverged(v, v_start)
        live = (alive & ~bad).cpu().numpy()
        row[live, s - 1] = (v - previous[0]).abs().double().cpu().numpy()[live]
        previous[0] = v
        return bad

    first = rollout(lambda u: guarded_step(model, u, dt=dt, stepper=stepper), u0.clone(), n_steps=n,
                    on_step=record)
    return row, first


def _change_fit_vars(dts: np.ndarray, median: np.ndarray, maximum: np.ndarray, cap: float | None) -> dict:
    """The power-law fits of the median and maximum changes against ``dt``: shared exponent, and per trajectory."""
    n_s = median.shape[1]
    columns = np.arange(n_s)[None, :]
    data_vars: dict[str, Any] = {}
    for key, values in (("median", median), ("max", maximum)):
        fit = power_law_fit(dts[:, None], values, cap=cap, groups=columns)
        data_vars.update(_fit_vars(key, fit, f"the {key} energy change against dt (common exponent, one prefactor "
                                             "per trajectory)"))
        per_sample = [power_law_fit(dts, values[:, j], cap=cap) for j in range(n_s)]
        for name in ("exponent", "r2"):
            data_vars[f"{key}_{name}_per_sample"] = (("sample",), np.asarray([f[name] for f in per_sample]), {
                "long_name": f"{'exponent' if name == 'exponent' else 'R^2'} of the power-law fit of the {key} "
                             "energy change of one trajectory against dt", "units": "1"})
    return data_vars


def _change_dataset(change: np.ndarray, first: np.ndarray, *, dts: np.ndarray, ratios: np.ndarray,
                    n_steps: list[int], idx: np.ndarray, cap: float | None) -> xr.Dataset:
    """The data set of :func:`energy_change_vs_dt` from the changes (dt, sample, step; NaN padding) and the
    diverged steps (dt, sample): the median and maximum over each rollout's steps and their fits against ``dt``."""
    valid = ~np.isnan(change)
    n_dt, n_samples = change.shape[:2]
    median = np.array([[np.median(change[i, j, valid[i, j]]) for j in range(n_samples)] for i in range(n_dt)])
    maximum = np.array([[np.max(change[i, j, valid[i, j]]) for j in range(n_samples)] for i in range(n_dt)])
    data_vars = {
        "energy_change": (("dt", "sample", "step"), change, {
            "long_name": "|V(u^s) - V(u^(s-1))| (inf after divergence, NaN padding)", "units": "model energy unit"}),
        "median_change": (("dt", "sample"), median, {"long_name": "median over steps of the energy change",
                                                     "units": "model energy unit"}),
        "max_change": (("dt", "sample"), maximum, {"long_name": "maximum over steps of the energy change",
                                                   "units": "model energy unit"}),
        "diverged_step": (("dt", "sample"), first, {"long_name": "first diverged step (-1: never)", "units": "1"}),
        **_change_fit_vars(dts, median, maximum, cap),
    }
    return xr.Dataset(data_vars, coords={
        "dt": ("dt", dts, {"long_name": "time step", "units": "time unit of the data"}),
        "dt_ratio": ("dt", ratios, {"long_name": "time step over the training time step", "units": "1"}),
        "n_steps": ("dt", np.asarray(n_steps, dtype=np.int64), {"long_name": "steps of the rollout", "units": "1"}),
        "sample": _sample_coord(idx),
        "step": ("step", np.arange(1, max(n_steps) + 1, dtype=np.int64), {"long_name": "step of the rollout",
                                                                          "units": "1"}),
    })


def energy_change_vs_dt(model: Any, data: xr.Dataset, *, samples: Sequence[int], n_dt: int = 5,
                        horizon: float | None = None, cap: float | None = None, stepper: str | None = None,
                        dtype: str = "float64", device: str = "auto") -> xr.Dataset:
    """Per-step energy changes ``|V(u^{s+1}) - V(u^s)|`` of rollouts at ``n_dt`` time steps.

    The time steps are log-spaced in ``[dt_train / 10, dt_train]``; each rollout starts at frame 0 and takes
    ``round(horizon / dt)`` steps. Per trajectory the median and the maximum over steps are fitted against
    ``dt`` by :func:`power_law_fit`: one exponent shared by all trajectories with one prefactor each, and each
    trajectory on its own (only finite values below ``cap``). After a rollout
    diverges (:data:`DIVERGENCE_FACTOR`) its remaining changes count as ``inf``.

    Parameters
    ----------
    model
        A model with ``energy``.
    data
        Fields data set.
    samples
        Trajectories (the paper: 5 test trajectories).
    n_dt
        Number of time steps.
    horizon
        Time span of each rollout; default the data's.
    cap
        Fit only changes below it (the paper's FENE figure: 0.2).
    stepper
        Passed to ``model.step`` (default: the model's own).
    dtype, device
        Precision and device.

    Returns
    -------
    xarray.Dataset
        Dims ``dt``, ``sample``, ``step`` (1 … max n). ``energy_change`` (dt, sample, step): ``|V(u^s) -
        V(u^{s-1})|``; ``median_change``, ``max_change`` and ``diverged_step`` (dt, sample); the fits
        ``median_exponent``, ``median_prefactor``, ``median_r2``, ``median_n_points`` and the same for ``max``;
        per trajectory ``median_exponent_per_sample``, ``median_r2_per_sample`` and the same for ``max``.
    """
    _require(model, "energy", "the energy change against dt")
    if isinstance(n_dt, bool) or int(n_dt) < 2:
        raise ValueError(f"n_dt must be an integer >= 2, got {n_dt!r}.")
    idx = _samples(data, samples)
    torch_dtype, torch_device = _prepare(model, dtype, device)
    tau = _times(data) - float(data["time"].values[0])
    horizon = float(tau[-1]) if horizon is None else float(horizon)
    if not horizon > 0:
        raise ValueError(f"horizon must be positive, got {horizon!r}.")
    ratios = np.logspace(-1.0, 0.0, int(n_dt))
    dts = float(model.dt) * ratios
    n_steps = [_n_steps(horizon, float(dt)) for dt in dts]
    u0 = torch.as_tensor(_frames(data, idx, time=slice(0, 1))[:, 0], dtype=torch_dtype, device=torch_device)
    change = np.full((dts.size, idx.size, max(n_steps)), np.nan)
    first = np.full((dts.size, idx.size), -1, dtype=np.int64)
    for i, (dt, n) in enumerate(zip(dts, n_steps)):
        change[i, :, :n], first[i] = _energy_changes(model, u0, dt=float(dt), n=n, stepper=stepper)
    ds = _change_dataset(change, first, dts=dts, ratios=ratios, n_steps=n_steps, idx=idx, cap=cap)
    settings = {"n_dt": int(n_dt), "horizon": horizon, "cap": "none" if cap is None else float(cap),
                "stepper": _stepper_name(model, stepper),
                "divergence_factor": DIVERGENCE_FACTOR, "dtype": dtype}
    ds.attrs = _attrs(model, data, "energy_change_vs_dt", "one-step energy change against the time step",
                      settings, idx)
    return ds
