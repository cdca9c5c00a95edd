"""What every diagnostic shares: the divergence rule, the model's preparation, reading the chosen trajectories,
the attributes of an output, and the power-law fit."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.fields import dataset_name
from mesodyn.models import capabilities
from mesodyn.models import model_name as _model_name
from mesodyn.provenance import provenance_attrs, to_netcdf_attrs
from mesodyn.rollout import prepare_model

DIVERGENCE_FACTOR = 50.0
"""A rollout diverges where ``|V| > DIVERGENCE_FACTOR * max(|V(u0)|, 1)`` or ``V`` is non-finite."""

SYSTEMS = ("allen_cahn", "kdv")
"""Systems whose true energy and true operator symbols are known."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# -- small helpers ------------------------------------------------------------------------------------------------
def _prepare(model: Any, dtype: str, device: str) -> tuple[torch.dtype, torch.device]:
    """Cast ``model`` in place (when it is a module) to ``dtype`` on the device of the one device rule
    (:func:`mesodyn.rollout.prepare_model`) and return the working dtype and device."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}.")
    return _DTYPES[dtype], prepare_model(model, dtype=_DTYPES[dtype], device=device)


_CAPABILITY_METHODS = {"energy": "energy()", "dissipation": "dissipation_rate()",
                       "operators": "Fourier operators (operators, grid)"}


def _require(model: Any, capability: str, what: str) -> None:
    """``ValueError`` unless ``model`` declares ``capability`` (:class:`mesodyn.registry.Capabilities`)."""
    if not getattr(capabilities(model), capability):
        raise ValueError(f"model {_model_name(model)!r} has no {_CAPABILITY_METHODS[capability]}: {what} needs "
                         f"{'them' if capability == 'operators' else 'one'}.")


def _stepper_name(model: Any, stepper: str | None) -> str:
    """The stepper a rollout of ``model`` uses: ``stepper``, else the model's own (:attr:`stepper` of a model that
    declares steppers), else ``"default"`` (a model with one step)."""
    return stepper or (str(model.stepper) if capabilities(model).steppers else "default")


def _samples(data: xr.Dataset, samples: Sequence[int]) -> np.ndarray:
    if "u" not in data:
        raise ValueError("the data set has no variable 'u'.")
    idx = np.asarray(list(samples), dtype=np.int64).reshape(-1)
    n = int(data["u"].sizes["sample"])
    if idx.size == 0:
        raise ValueError("samples must name at least one trajectory.")
    if np.any((idx < 0) | (idx >= n)):
        raise ValueError(f"samples must lie in [0, {n - 1}], got {idx.tolist()}.")
    return idx


def _frames(data: xr.Dataset, idx: np.ndarray, time: slice | None = None) -> np.ndarray:
    """``u`` of the chosen trajectories as float64 ``(sample, time, *grid)`` (only those are read)."""
    u = data["u"].isel(sample=idx.tolist(), time=time if time is not None else slice(None))
    return np.asarray(u.values, dtype=np.float64)


def _times(data: xr.Dataset) -> np.ndarray:
    return np.asarray(data["time"].values, dtype=np.float64)


def _n_steps(horizon: float, dt: float) -> int:
    """``round(horizon / dt)`` with halves rounded up (Python's ``round`` would round them to even), at least 1."""
    return max(1, int(math.floor(horizon / dt + 0.5)))


def _diverged(v: torch.Tensor, v0: torch.Tensor) -> torch.Tensor:
    limit = DIVERGENCE_FACTOR * torch.clamp(v0.abs(), min=1.0)
    return ~torch.isfinite(v) | (v.abs() > limit)


def _attrs(model: Any, data: xr.Dataset | None, kind: str, title: str, settings: Mapping[str, Any],
           idx: np.ndarray | None) -> dict[str, Any]:
    config = dict(getattr(model, "config", {}) or {})
    out: dict[str, Any] = {
        "title": title,
        "diagnostic": kind,
        "model": _model_name(model),
        "dataset": (dataset_name(data) or "unknown") if data is not None else "none",
        "dt_train": float(model.dt),
        **{k: v for k, v in settings.items()},
    }
    if idx is not None:
        out["samples"] = json.dumps([int(i) for i in idx])
    out.update(provenance_attrs({"model": config, "diagnostic": {"kind": kind, **settings}}))
    return to_netcdf_attrs(out)


def _sample_coord(idx: np.ndarray) -> tuple:
    return ("sample", idx.astype(np.int64), {"long_name": "index of the trajectory in the data file", "units": "1"})


def _time_coord(times: np.ndarray) -> tuple:
    return ("time", times, {"long_name": "time of the data frame", "units": "time unit of the data"})


# -- fits -----------------------------------------------------------------------------------------------------------
def power_law_fit(x: Any, y: Any, *, cap: float | None = None, groups: Any = None) -> dict[str, float]:
    """Least-squares fit ``log y = log C + p log x`` over the finite points with ``y > 0`` (and ``y < cap``).

    Parameters
    ----------
    x, y : array_like
        Broadcastable arrays (e.g. ``dt`` of shape ``(n, 1)`` against per-trajectory values ``(n, trajectory)``):
        every pair is one point.
    cap : float, optional
        Fit only points with ``y < cap`` (FENE's energy changes: ``0.2``).
    groups : array_like, optional
        A label per point (broadcastable to ``x`` and ``y``, e.g. the trajectory of each column). Each group then
        has its own prefactor and all share the exponent (a fixed-effects fit): trajectories of different amplitude
        differ in prefactor, not in the power law, and pooling them with one prefactor would count that spread as
        misfit. ``r2`` is then the share of the within-group variance of ``log y`` explained, and ``prefactor`` the
        geometric mean of the groups' prefactors. Groups with fewer than two distinct ``x`` are left out.

    Returns
    -------
    dict
        ``exponent`` ``p``, ``prefactor`` ``C``, ``r2`` (coefficient of determination in log–log) and ``n_points``;
        NaN values (and the count) where fewer than two distinct ``x`` remain.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    g = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=np.int64) if groups is None else groups
    x, y, g = np.broadcast_arrays(x, y, np.asarray(g))
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        if cap is not None:
            keep &= y < cap
    lx, ly, g = np.log(x[keep]), np.log(y[keep]), g[keep]
    labels = [lab for lab in np.unique(g) if np.ptp(lx[g == lab]) > 0]
    nan = {"exponent": math.nan, "prefactor": math.nan, "r2": math.nan}
    if not labels:
        return {**nan, "n_points": 0 if groups is not None else int(lx.size)}
    use = np.isin(g, labels)
    lx, ly, g = lx[use], ly[use], g[use]
    # Centre log x and log y within each group: the common slope is the pooled slope of the centred values.
    xc, yc = lx.copy(), ly.copy()
    mean_x, mean_y = {}, {}
    for lab in labels:
        sel = g == lab
        mean_x[lab], mean_y[lab] = lx[sel].mean(), ly[sel].mean()
        xc[sel] -= mean_x[lab]
        yc[sel] -= mean_y[lab]
    slope = float(xc @ yc / (xc @ xc))
    intercepts = np.array([mean_y[lab] - slope * mean_x[lab] for lab in labels])
    total, ss_res = float(yc @ yc), float(((yc - slope * xc) ** 2).sum())
    r2 = 1.0 - ss_res / total if total > 0 else (1.0 if ss_res == 0 else 0.0)
    return {"exponent": slope, "prefactor": math.exp(float(intercepts.mean())), "r2": r2, "n_points": int(lx.size)}


def _fit_vars(prefix: str, fit: Mapping[str, float], what: str) -> dict:
    units = {"exponent": "1", "prefactor": "energy unit / (argument unit)^exponent", "r2": "1", "n_points": "1"}
    names = {"exponent": "fitted power-law exponent", "prefactor": "fitted power-law prefactor",
             "r2": "coefficient of determination of the log-log fit", "n_points": "points in the fit"}
    out = {}
    for key in ("exponent", "prefactor", "r2", "n_points"):
        value = np.asarray(fit[key], dtype=np.int64 if key == "n_points" else np.float64)
        out[f"{prefix}_{key}"] = ((), value, {"long_name": f"{names[key]} of {what}", "units": units[key]})
    return out


