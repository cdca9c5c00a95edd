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
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.continuum.invariants import allen_cahn_energy, kdv_hamiltonian
from mesodyn.evaluation import EPS
from mesodyn.fields import check_fields, contract_of, dataset_name, grid_from_data, open_fields, write_netcdf
from mesodyn.onsager.gauge import fit_affine, gauge_invariant_symbols, symbol_fit
from mesodyn.provenance import provenance_attrs, to_netcdf_attrs
from mesodyn.registry import DATASETS

__all__ = [
    "DIVERGENCE_FACTOR", "DIAGNOSTICS", "SYSTEMS", "true_energy", "total_energy", "energy_parts", "local_density",
    "power_law_fit", "energy_vs_truth", "step_size_sweep", "energy_along_truth", "energy_change_vs_dt",
    "energy_order", "operator_symbols", "dissipation_along_rollout", "write_diagnostic", "diagnostic_file",
    "spectral_extent",
]

DIVERGENCE_FACTOR = 50.0
"""A rollout diverges where ``|V| > DIVERGENCE_FACTOR * max(|V(u0)|, 1)`` or ``V`` is non-finite."""

SYSTEMS = ("allen_cahn", "kdv")
"""Systems whose true energy and true operator symbols are known."""

# The systems known for each registered data set (the chains have none).
_SYSTEM_OF_DATASET = {"allen_cahn": "allen_cahn", "allen_cahn_2d": "allen_cahn", "kdv": "kdv"}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# -- small helpers ------------------------------------------------------------------------------------------------
def _model_name(model: Any) -> str:
    name = getattr(model, "name", None)
    if not isinstance(name, str):
        name = dict(getattr(model, "config", {}) or {}).get("name", type(model).__name__)
    return str(name)


def _prepare(model: Any, dtype: str, device: str) -> tuple[torch.dtype, torch.device]:
    """Cast ``model`` in place (when it is a module) and return the working dtype and device."""
    from mesodyn.models import cast_module

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}.")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype, torch_device = _DTYPES[dtype], torch.device(device)
    if isinstance(model, torch.nn.Module):
        cast_module(model, device=torch_device, dtype=torch_dtype)
        model.eval()
    return torch_dtype, torch_device


def _require(model: Any, method: str, what: str) -> None:
    if not callable(getattr(model, method, None)):
        raise ValueError(f"model {_model_name(model)!r} has no {method}(): {what} needs one.")


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


def _accepts_stepper(model: Any) -> bool:
    try:
        return "stepper" in inspect.signature(model.step).parameters
    except (TypeError, ValueError):
        return False


def _step(model: Any, u: torch.Tensor, dt: float, stepper: str | None) -> torch.Tensor:
    with torch.no_grad():
        if stepper is None:
            return model.step(u, dt=dt)
        return model.step(u, dt=dt, stepper=stepper)


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


# -- energies -----------------------------------------------------------------------------------------------------
def true_energy(u: Any, *, system: str, length: Sequence[float], epsilon: float | None = None) -> np.ndarray:
    """The true energy of each field, over the trailing grid axes.

    Parameters
    ----------
    u : array_like, shape (..., *grid)
        Fields on the periodic grid (1-D ``(x,)`` or 2-D ``(y, x)``, as many axes as ``length`` has entries).
    system : {"allen_cahn", "kdv"}
        ``"allen_cahn"``: ``int 1/2 |grad u|^2 + u^4/(4 eps^2) - u^2/(2 eps^2)`` (no constant);
        ``"kdv"``: ``int u_x^2/2 - u^3`` (1-D).
    length : sequence of float
        Domain length per grid axis (all equal: the continuum invariants assume a square domain).
    epsilon : float, optional
        Allen–Cahn interface width (required for ``"allen_cahn"``).

    Returns
    -------
    numpy.ndarray, shape (...)
    """
    u = np.asarray(u, dtype=np.float64)
    length = [float(L) for L in length]
    ndim = len(length)
    if not length or not np.allclose(length, length[0], rtol=1e-12, atol=0):
        raise ValueError(f"the true energies assume one length on every axis, got {length}.")
    if system == "allen_cahn":
        if epsilon is None or not epsilon > 0:
            raise ValueError(f"the Allen-Cahn energy needs a positive epsilon, got {epsilon!r}.")
        constant = length[0] ** ndim / (4.0 * epsilon**2)  # int 1/(4 eps^2): dropped in the paper's convention
        return allen_cahn_energy(u, epsilon=epsilon, length=length[0], ndim=ndim) - constant
    if system == "kdv":
        if ndim != 1:
            raise ValueError("the KdV Hamiltonian is defined on 1-D fields only.")
        return kdv_hamiltonian(u, length=length[0])
    raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, got {system!r}.")


def total_energy(model: Any, u: torch.Tensor) -> torch.Tensor:
    """The model's ``V(u)`` per batch member (``energy(u)["total"]``, or ``energy(u)`` itself where it returns a
    tensor, as OnsagerNet's does), without a graph."""
    with torch.no_grad():
        e = model.energy(u)
    return e["total"] if isinstance(e, Mapping) else e


def _coefficient(model: Any, name: str, default: float) -> float:
    free_energy = getattr(model, "free_energy", None)
    value = getattr(free_energy, name, None) if free_energy is not None else None
    return default if value is None else float(torch.as_tensor(value).detach())


def energy_parts(model: Any, u: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's energy split as in ``V = V0 + int b/2 |grad u|^2 + V_nl``, each of shape ``(batch,)``.

    ``V0 = int a/2 u^2 + F(u)``. SpecOnsNet's ``energy`` reports ``"quadratic"`` (``int a/2 u^2 + b/2 |grad u|^2``,
    both together), ``"local"`` (``int F``) and ``"nonlocal"``; the ``a`` term is split off with the model's
    ``free_energy.a`` and grid inner product. A model without ``free_energy.a`` (the true-``V`` ablation, a
    stand-in) has ``a = 0``: its whole ``"quadratic"`` part is the gradient term.

    Returns
    -------
    dict
        ``"total"`` always; ``"V0"``, ``"gradient"`` and ``"nonlocal"`` where ``energy`` reports ``"quadratic"``
        and ``"local"`` parts (``"nonlocal"`` is 0 if it reports none).
    """
    with torch.no_grad():
        e = model.energy(u)
        if not isinstance(e, Mapping):
            return {"total": e}
        out = {"total": e["total"]}
        if "quadratic" in e and "local" in e:
            a = _coefficient(model, "a", 0.0)
            if a != 0.0:
                grid = model.grid
                a_term = 0.5 * a * grid.inner(u, u)
            else:
                a_term = torch.zeros_like(e["total"])
            out["V0"] = a_term + e["local"]
            out["gradient"] = e["quadratic"] - a_term
            out["nonlocal"] = e.get("nonlocal", torch.zeros_like(e["total"]))
        return out


def local_density(model: Any, u: torch.Tensor) -> torch.Tensor | None:
    """The learned pointwise density ``F(u)`` elementwise (SpecOnsNet's MLP, the true ``F`` of the true-``V``
    model), or ``None`` for a model without one."""
    free_energy = getattr(model, "free_energy", None)
    with torch.no_grad():
        if callable(getattr(free_energy, "local_density", None)):
            return free_energy.local_density(u)
        local = getattr(free_energy, "local", None)
        if isinstance(local, torch.nn.Module):
            return local(u)
    return None


def _energies_of_frames(model: Any, frames: np.ndarray, *, dtype: torch.dtype, device: torch.device,
                        batch_size: int, parts: bool = False) -> dict[str, np.ndarray]:
    """``V`` (or all of :func:`energy_parts`) of every frame of ``frames`` ``(n, *grid)``, in batches."""
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, frames.shape[0], batch_size):
        u = torch.as_tensor(frames[start:start + batch_size], dtype=dtype, device=device)
        values = energy_parts(model, u) if parts else {"total": total_energy(model, u)}
        for key, value in values.items():
            out.setdefault(key, []).append(value.detach().double().cpu().numpy())
    return {key: np.concatenate(chunks) for key, chunks in out.items()}


def _trajectory_energies(model: Any, data: xr.Dataset, idx: np.ndarray, *, dtype: torch.dtype,
                         device: torch.device, batch_size: int,
                         truth: Callable[[np.ndarray], np.ndarray] | None = None
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """``V`` of every frame ``(sample, time)`` (and ``truth(frames)``), reading one trajectory at a time: all test
    trajectories of the 2-D data set at once would be 1.3 GB."""
    learned, true = [], []
    for i in idx:
        frames = _frames(data, np.asarray([i]))[0]
        learned.append(_energies_of_frames(model, frames, dtype=dtype, device=device, batch_size=batch_size)["total"])
        if truth is not None:
            true.append(truth(frames))
    return np.stack(learned), (np.stack(true) if truth is not None else None)


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


# -- figure 3: learned against true energy ---------------------------------------------------------------------------
def energy_vs_truth(model: Any, data: xr.Dataset, *, samples: Sequence[int], system: str = "allen_cahn",
                    epsilon: float | None = None, dtype: str = "float64", device: str = "cpu",
                    batch_size: int = 256) -> xr.Dataset:
    """Learned ``V`` against the true energy over every frame of the given trajectories.

    Parameters
    ----------
    model
        A model with ``energy`` (SpecOnsNet, the true-``V`` ablation, OnsagerNet).
    data
        Fields data set.
    samples
        Trajectories to use (the paper: every test trajectory).
    system : {"allen_cahn", "kdv"}
        Whose true energy (see :func:`true_energy`).
    epsilon
        Allen–Cahn interface width; default the data's ``epsilon`` attribute.
    dtype, device, batch_size
        Precision and device of the model's evaluation, frames per batch.

    Returns
    -------
    xarray.Dataset
        ``learned_energy`` and ``true_energy`` ``(sample, time)``; scalars ``slope``, ``intercept`` and
        ``pearson_r`` of the least-squares line ``learned = slope * true + intercept`` over all snapshots
        (:func:`mesodyn.onsager.gauge.fit_affine`).
    """
    _require(model, "energy", "the learned-versus-true energy")
    idx = _samples(data, samples)
    if system == "allen_cahn" and epsilon is None:
        # The chains' files carry an "epsilon" too, but it is their lattice spacing.
        info = DATASETS.get(dataset_name(data) or "")
        if "epsilon" not in data.attrs or (info is not None and info.kind == "chain"):
            raise ValueError("give epsilon: the data set records no Allen-Cahn epsilon.")
        epsilon = float(data.attrs["epsilon"])
    torch_dtype, torch_device = _prepare(model, dtype, device)
    length = grid_from_data(data)["length"]
    learned, truth = _trajectory_energies(
        model, data, idx, dtype=torch_dtype, device=torch_device, batch_size=batch_size,
        truth=lambda frames: true_energy(frames, system=system, length=length, epsilon=epsilon))
    fit = fit_affine(learned.ravel(), truth.ravel())
    settings = {"system": system, "epsilon": "none" if epsilon is None else float(epsilon), "dtype": dtype,
                "true_energy": ("int 1/2 |grad u|^2 + u^4/(4 eps^2) - u^2/(2 eps^2) dx (no constant)"
                                if system == "allen_cahn" else "int u_x^2/2 - u^3 dx")}
    ds = xr.Dataset(
        {
            "learned_energy": (("sample", "time"), learned, {"long_name": "learned free energy V_theta",
                                                             "units": "model energy unit"}),
            "true_energy": (("sample", "time"), truth, {"long_name": f"true energy of {system}",
                                                        "units": "energy unit of the data"}),
            "slope": ((), fit["slope"], {"long_name": "least-squares slope of learned on true energy",
                                         "units": "1"}),
            "intercept": ((), fit["intercept"], {"long_name": "least-squares intercept of learned on true energy",
                                                 "units": "model energy unit"}),
            "pearson_r": ((), fit["pearson_r"], {"long_name": "Pearson correlation of learned and true energy",
                                                 "units": "1"}),
        },
        coords={"sample": _sample_coord(idx), "time": _time_coord(_times(data))},
    )
    ds.attrs = _attrs(model, data, "energy_vs_truth", "learned against true energy over test snapshots",
                      settings, idx)
    return ds


# -- figure 4: step-size sweep --------------------------------------------------------------------------------------
def _interpolation(tau: np.ndarray, t: float) -> tuple[int, float] | None:
    """Frame ``j`` and weight ``w`` with ``truth(t) = (1 - w) u_j + w u_{j+1}``; ``None`` beyond the data."""
    if t > tau[-1] * (1 + 1e-9):
        return None
    j = int(np.clip(np.searchsorted(tau, t, side="right") - 1, 0, tau.size - 2))
    return j, float(np.clip((t - tau[j]) / (tau[j + 1] - tau[j]), 0.0, 1.0))


def _relative_rmse(pred: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """The metric of :mod:`mesodyn.evaluation` for one step, per batch member (float64)."""
    axes = tuple(range(1, pred.ndim))
    pred, truth = pred.double(), truth.double()
    num = (pred - truth).pow(2).mean(dim=axes)
    return torch.sqrt(num / (truth.pow(2).mean(dim=axes) + EPS)).cpu().numpy()


def step_size_sweep(model: Any, data: xr.Dataset, *, samples: Sequence[int],
                    factors: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1, 3), horizon: float | None = 0.1,
                    steppers: Sequence[str] = ("euler", "stabilized"), energy_points: int | None = None,
                    dtype: str = "float64", device: str = "cpu") -> xr.Dataset:
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
    horizon = float(tau[-1]) if horizon is None else horizon
    if not horizon > 0 or horizon > tau[-1] * (1 + 1e-9):
        raise ValueError(f"horizon must lie in (0, {tau[-1]:g}] (the data's time span), got {horizon!r}.")
    if energy_points is not None and (isinstance(energy_points, bool) or int(energy_points) < 1):
        raise ValueError(f"energy_points must be a positive integer or None, got {energy_points!r}.")
    factors = [float(f) for f in factors]
    if not factors or any(not f > 0 for f in factors):
        raise ValueError(f"factors must be positive, got {factors}.")
    dt_train = float(model.dt)
    dts = [f * dt_train for f in factors]
    n_steps = [_n_steps(horizon, dt) for dt in dts]
    width = max(n_steps) + 1
    frames = torch.as_tensor(_frames(data, idx), dtype=torch.float64, device=torch_device)
    n_s = idx.size
    names = [str(s) for s in steppers] if _accepts_stepper(model) else ["default"]
    kept, refused = [], []
    for name in names:
        stepper = None if name == "default" else name
        if stepper is not None:
            # A stepper the model does not offer (the true-V model has no stabilized one) is refused by its
            # first step; it is left out rather than failing the whole sweep.
            try:
                _step(model, frames[:1, 0].to(torch_dtype), dt_train, stepper)
            except ValueError:
                refused.append(name)
                continue
        energy = np.full((len(factors), n_s, width), np.nan)
        rel = np.full((len(factors), n_s, width), np.nan)
        flag = np.zeros((len(factors), n_s), dtype=np.int8)
        first = np.full((len(factors), n_s), -1, dtype=np.int64)
        for i, (dt, n) in enumerate(zip(dts, n_steps)):
            stride = 1 if energy_points is None else max(1, math.ceil(n / int(energy_points)))
            u = frames[:, 0].to(torch_dtype)
            v0 = total_energy(model, u)
            energy[i, :, 0] = v0.double().cpu().numpy()
            rel[i, :, 0] = _relative_rmse(u, frames[:, 0])
            alive = torch.ones(n_s, dtype=torch.bool, device=torch_device)
            for s in range(1, n + 1):
                u = _step(model, u, dt, stepper)
                live = alive.cpu().numpy()
                if s % stride == 0 or s == n:
                    v = total_energy(model, u)
                    energy[i, live, s] = v.double().cpu().numpy()[live]
                    bad = alive & _diverged(v, v0)
                else:  # between evaluations of V: a non-finite state only
                    finite = torch.isfinite(u.reshape(n_s, -1)).all(dim=1)
                    bad = alive & ~finite
                    energy[i, live & bad.cpu().numpy(), s] = np.inf
                where = _interpolation(tau, s * dt)
                if where is not None:
                    j, w = where
                    truth = (1.0 - w) * frames[:, j] + w * frames[:, j + 1]
                    rel[i, live, s] = _relative_rmse(u, truth)[live]
                if bool(bad.any()):
                    hit = bad.cpu().numpy()
                    flag[i, hit], first[i, hit] = 1, s
                    alive &= ~bad
                    if not bool(alive.any()):
                        break
                    # A diverged member continues from zeros (its values are no longer recorded), so that no
                    # step sees non-finite input.
                    u = torch.where(alive.reshape(-1, *([1] * (u.ndim - 1))), u, torch.zeros_like(u))
        kept.append((name, energy, rel, flag, first))
    if not kept:
        raise ValueError(f"model {_model_name(model)!r} refused every stepper of {list(names)}.")
    steps = np.arange(width, dtype=np.int64)
    lead = np.where(steps[None, :] <= np.asarray(n_steps)[:, None], steps[None, :] * np.asarray(dts)[:, None],
                    np.nan)
    dims4, dims3 = ("stepper", "factor", "sample", "step"), ("stepper", "factor", "sample")
    ds = xr.Dataset(
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
    settings = {"factors": factors, "horizon": float(horizon), "steppers": [str(s) for s in steppers],
                "steppers_refused": refused, "divergence_factor": DIVERGENCE_FACTOR,
                "energy_points": "every step" if energy_points is None else int(energy_points), "dtype": dtype}
    ds.attrs = _attrs(model, data, "step_size_sweep", "rollouts at several time steps: learned energy, error and "
                      "divergence", settings, idx)
    return ds


# -- figure 5: learned energy along the true trajectories --------------------------------------------------------------
def energy_along_truth(model: Any, data: xr.Dataset, *, samples: Sequence[int], dtype: str = "float64",
                       device: str = "cpu", batch_size: int = 256) -> xr.Dataset:
    """``V_theta(u(t))`` and ``V_theta(u(t)) - V_theta(u(0))`` along the true trajectories (no rollout).

    Returns
    -------
    xarray.Dataset
        ``energy`` and ``energy_change`` ``(sample, time)``, and ``relative_drift`` ``(sample,)``: the largest
        ``|V(t) - V(0)|`` over ``max(|V(0)|, 1)``.
    """
    _require(model, "energy", "the learned energy along the truth")
    idx = _samples(data, samples)
    torch_dtype, torch_device = _prepare(model, dtype, device)
    v, _ = _trajectory_energies(model, data, idx, dtype=torch_dtype, device=torch_device, batch_size=batch_size)
    change = v - v[:, :1]
    drift = np.abs(change).max(axis=1) / np.maximum(np.abs(v[:, 0]), 1.0)
    ds = xr.Dataset(
        {
            "energy": (("sample", "time"), v, {"long_name": "learned free energy V_theta of the true field",
                                               "units": "model energy unit"}),
            "energy_change": (("sample", "time"), change, {"long_name": "V_theta(u(t)) - V_theta(u(0))",
                                                           "units": "model energy unit"}),
            "relative_drift": (("sample",), drift, {
                "long_name": "max over time of |V_theta(t) - V_theta(0)| / max(|V_theta(0)|, 1)", "units": "1"}),
        },
        coords={"sample": _sample_coord(idx), "time": _time_coord(_times(data))},
    )
    ds.attrs = _attrs(model, data, "energy_along_truth", "learned energy along the true trajectories",
                      {"dtype": dtype}, idx)
    return ds


# -- figure 6: one-step energy change against the time step ---------------------------------------------------------
def energy_change_vs_dt(model: Any, data: xr.Dataset, *, samples: Sequence[int], n_dt: int = 5,
                        horizon: float | None = None, cap: float | None = None, stepper: str | None = None,
                        dtype: str = "float64", device: str = "cpu") -> xr.Dataset:
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
    dt_train = float(model.dt)
    ratios = np.logspace(-1.0, 0.0, int(n_dt))
    dts = dt_train * ratios
    n_steps = [_n_steps(horizon, float(dt)) for dt in dts]
    width = max(n_steps)
    u0 = torch.as_tensor(_frames(data, idx, time=slice(0, 1))[:, 0], dtype=torch_dtype, device=torch_device)
    n_s = idx.size
    change = np.full((dts.size, n_s, width), np.nan)
    first = np.full((dts.size, n_s), -1, dtype=np.int64)
    for i, (dt, n) in enumerate(zip(dts, n_steps)):
        u = u0.clone()
        v_start = total_energy(model, u)
        v_prev = v_start
        alive = torch.ones(n_s, dtype=torch.bool, device=torch_device)
        row = np.full((n_s, n), np.inf)
        for s in range(1, n + 1):
            u = _step(model, u, float(dt), stepper)
            v = total_energy(model, u)
            bad = alive & _diverged(v, v_start)
            live = (alive & ~bad).cpu().numpy()
            row[live, s - 1] = (v - v_prev).abs().double().cpu().numpy()[live]
            if bool(bad.any()):
                first[i, bad.cpu().numpy()] = s
                alive &= ~bad
                if not bool(alive.any()):
                    break
                u = torch.where(alive.reshape(-1, *([1] * (u.ndim - 1))), u, torch.zeros_like(u))
            v_prev = v
        change[i, :, :n] = row
    valid = ~np.isnan(change)
    median = np.array([[np.median(change[i, j, valid[i, j]]) for j in range(n_s)] for i in range(dts.size)])
    maximum = np.array([[np.max(change[i, j, valid[i, j]]) for j in range(n_s)] for i in range(dts.size)])
    columns = np.arange(n_s)[None, :]
    fits = {"median": power_law_fit(dts[:, None], median, cap=cap, groups=columns),
            "max": power_law_fit(dts[:, None], maximum, cap=cap, groups=columns)}
    per_sample = {key: [power_law_fit(dts, values[:, j], cap=cap) for j in range(n_s)]
                  for key, values in (("median", median), ("max", maximum))}
    data_vars = {
        "energy_change": (("dt", "sample", "step"), change, {
            "long_name": "|V(u^s) - V(u^(s-1))| (inf after divergence, NaN padding)", "units": "model energy unit"}),
        "median_change": (("dt", "sample"), median, {"long_name": "median over steps of the energy change",
                                                     "units": "model energy unit"}),
        "max_change": (("dt", "sample"), maximum, {"long_name": "maximum over steps of the energy change",
                                                   "units": "model energy unit"}),
        "diverged_step": (("dt", "sample"), first, {"long_name": "first diverged step (-1: never)", "units": "1"}),
    }
    for key, fit in fits.items():
        data_vars.update(_fit_vars(key, fit, f"the {key} energy change against dt (common exponent, one prefactor "
                                             "per trajectory)"))
        for name in ("exponent", "r2"):
            data_vars[f"{key}_{name}_per_sample"] = (("sample",), np.asarray([f[name] for f in per_sample[key]]), {
                "long_name": f"{'exponent' if name == 'exponent' else 'R^2'} of the power-law fit of the {key} "
                             "energy change of one trajectory against dt", "units": "1"})
    ds = xr.Dataset(
        data_vars,
        coords={
            "dt": ("dt", dts, {"long_name": "time step", "units": "time unit of the data"}),
            "dt_ratio": ("dt", ratios, {"long_name": "time step over the training time step", "units": "1"}),
            "n_steps": ("dt", np.asarray(n_steps, dtype=np.int64), {"long_name": "steps of the rollout",
                                                                    "units": "1"}),
            "sample": _sample_coord(idx),
            "step": ("step", np.arange(1, width + 1, dtype=np.int64), {"long_name": "step of the rollout",
                                                                       "units": "1"}),
        },
    )
    settings = {"n_dt": int(n_dt), "horizon": horizon, "cap": "none" if cap is None else float(cap),
                "stepper": stepper or str(getattr(model, "stepper", "default")),
                "divergence_factor": DIVERGENCE_FACTOR, "dtype": dtype}
    ds.attrs = _attrs(model, data, "energy_change_vs_dt", "one-step energy change against the time step",
                      settings, idx)
    return ds


# -- figure 7: order of the learned energy ---------------------------------------------------------------------------
_COMPONENTS = {
    "total": "V",
    "V0": "V0 = int a/2 u^2 + F(u)",
    "gradient": "int b/2 |grad u|^2",
    "nonlocal": "V_nl",
}


def energy_order(model: Any, data: xr.Dataset, *, samples: Sequence[int], s: Sequence[float] | None = None,
                 s_max_fit: float | None = None, n_u: int = 201, u_range: tuple[float, float] | None = None,
                 dtype: str = "float64", device: str = "cpu", batch_size: int = 256) -> xr.Dataset:
    """How fast each part of the learned energy grows away from zero, and the learned local density.

    For each scale ``s`` and initial field ``u0`` (frame 0 of each trajectory), ``|V_c(s u0) - V_c(0)|`` for the
    components ``c`` of :func:`energy_parts` (``total`` ``V``, ``V0``, the ``gradient`` term and ``nonlocal``
    ``V_nl``) and the exponent ``p`` of a power law fitted in log–log over ``s <= s_max_fit`` (one exponent for all
    trajectories, one prefactor each: :func:`power_law_fit` with ``groups``). A pure quadratic energy has ``p = 2``;
    near zero a learned energy whose leading term is quadratic shows ``p`` close to 2.

    Parameters
    ----------
    model
        A model with ``energy``.
    data
        Fields data set (the u grid of the density spans the chosen trajectories' values).
    samples
        Trajectories (the paper: 5 test trajectories).
    s
        Scales; default 50 log-spaced in ``[0.1, 1.2]``.
    s_max_fit
        Fit only ``s <= s_max_fit`` (the paper's FENE figure: 0.2); default all.
    n_u, u_range
        Points of the u grid of the density and its range (default the data's min and max over the chosen
        trajectories, every frame).
    dtype, device, batch_size
        Precision, device, fields per batch.

    Returns
    -------
    xarray.Dataset
        ``energy_difference`` (component, scale, sample), ``exponent``, ``prefactor``, ``r2``, ``n_points``
        (component; NaN where a component is identically zero or not reported). Where the model has a local
        density: ``local_density`` ``F(u) - F(0)`` and ``local_energy_density`` ``a/2 u^2 + F(u) - F(0)`` on the
        coordinate ``u``, with the scalar ``a``.
    """
    _require(model, "energy", "the order of the energy")
    idx = _samples(data, samples)
    torch_dtype, torch_device = _prepare(model, dtype, device)
    scales = np.logspace(np.log10(0.1), np.log10(1.2), 50) if s is None else np.asarray(s, dtype=np.float64)
    if scales.ndim != 1 or scales.size < 2 or np.any(~(scales > 0)):
        raise ValueError("s must hold at least two positive scales.")
    frames = _frames(data, idx)
    u0 = frames[:, 0]
    scaled = (scales[:, None, None] * u0.reshape(1, idx.size, -1)).reshape(scales.size * idx.size, *u0.shape[1:])
    parts = _energies_of_frames(model, scaled, dtype=torch_dtype, device=torch_device, batch_size=batch_size,
                                parts=True)
    zero = energy_parts(model, torch.zeros((1, *u0.shape[1:]), dtype=torch_dtype, device=torch_device))
    components = [c for c in _COMPONENTS if c in parts]
    diff = np.stack([np.abs(parts[c].reshape(scales.size, idx.size) - float(zero[c][0])) for c in components])
    in_fit = scales <= (np.inf if s_max_fit is None else float(s_max_fit))
    columns = np.arange(idx.size)[None, :]
    fits = [power_law_fit(scales[in_fit, None], diff[k][in_fit], groups=columns) for k in range(len(components))]
    data_vars: dict[str, Any] = {
        "energy_difference": (("component", "scale", "sample"), diff, {
            "long_name": "|V_c(s u0) - V_c(0)|", "units": "model energy unit"}),
    }
    for key in ("exponent", "prefactor", "r2", "n_points"):
        values = np.asarray([f[key] for f in fits], dtype=np.int64 if key == "n_points" else np.float64)
        data_vars[key] = (("component",), values, {
            "long_name": {"exponent": "fitted order p of |V_c(s u0) - V_c(0)| ~ C s^p",
                          "prefactor": "fitted prefactor C", "r2": "coefficient of determination of the fit",
                          "n_points": "points in the fit"}[key],
            "units": "model energy unit" if key == "prefactor" else "1"})
    coords: dict[str, Any] = {
        "component": ("component", np.asarray(components, dtype=object), {
            "long_name": "part of the energy", "description": "; ".join(f"{c}: {_COMPONENTS[c]}" for c in components)}),
        "scale": ("scale", scales, {"long_name": "scale s of the initial field", "units": "1"}),
        "sample": _sample_coord(idx),
    }
    lo, hi = (float(np.min(frames)), float(np.max(frames))) if u_range is None else map(float, u_range)
    u_grid = np.linspace(lo, hi, int(n_u))
    density = local_density(model, torch.as_tensor(np.append(u_grid, 0.0), dtype=torch_dtype, device=torch_device))
    if density is not None:
        density = density.double().cpu().numpy()
        f = density[:-1] - density[-1]
        a = _coefficient(model, "a", 0.0)
        data_vars["local_density"] = (("u",), f, {"long_name": "learned local density F(u) - F(0)",
                                                  "units": "model energy unit per unit volume"})
        data_vars["local_energy_density"] = (("u",), 0.5 * a * u_grid**2 + f, {
            "long_name": "a/2 u^2 + F(u) - F(0)", "units": "model energy unit per unit volume"})
        data_vars["a"] = ((), a, {"long_name": "coefficient a of the quadratic term a/2 u^2", "units": "1"})
        coords["u"] = ("u", u_grid, {"long_name": "field value", "units": "unit of u"})
    ds = xr.Dataset(data_vars, coords=coords)
    settings = {"s_min": float(scales.min()), "s_max": float(scales.max()), "n_s": int(scales.size),
                "s_max_fit": "none" if s_max_fit is None else float(s_max_fit), "n_u": int(n_u), "dtype": dtype}
    ds.attrs = _attrs(model, data, "energy_order", "order of the learned energy near zero and its local density",
                      settings, idx)
    return ds


# -- ours: gauge-invariant operator symbols -------------------------------------------------------------------------
def spectral_extent(data: xr.Dataset, *, samples: Sequence[int], fraction: float = 0.999) -> float:
    """The smallest wavenumber magnitude ``K`` such that the modes with ``|k| <= K`` hold ``fraction`` of the
    spectral energy ``sum |u_hat(k)|^2`` of every frame of the given trajectories (2-D: ``|k|`` of the vector).

    The learned symbols are constrained only where the data have energy; this is where to compare them with the
    truth (:func:`operator_symbols`' ``k_max_fit``).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}.")
    idx = _samples(data, samples)
    grid = grid_from_data(data)
    shape, length = [int(n) for n in grid["shape"]], [float(L) for L in grid["length"]]
    axes = [np.fft.fftfreq(n, d=1.0 / n) * 2 * np.pi / L for n, L in zip(shape, length)]
    kmag = np.sqrt(sum(k**2 for k in np.meshgrid(*axes, indexing="ij")))
    power = np.zeros(kmag.shape)
    for i in idx:  # one trajectory at a time (a 2-D test set at once would be a gigabyte)
        frames = _frames(data, np.asarray([i]))[0]
        power += (np.abs(np.fft.fftn(frames, axes=tuple(range(1, frames.ndim)))) ** 2).sum(axis=0)
    order = np.argsort(kmag, axis=None)
    k_sorted, cum = kmag.ravel()[order], np.cumsum(power.ravel()[order])
    if cum[-1] <= 0:
        return 0.0
    return float(k_sorted[np.searchsorted(cum, fraction * cum[-1])])


def _symbols(model: Any) -> dict[str, Any]:
    """:func:`mesodyn.onsager.gauge.gauge_invariant_symbols`, or for a fixed ``V`` without ``a``/``b`` (the
    true-``V`` ablation: ``a = 0``, ``b = 1``) the raw symbols."""
    if hasattr(getattr(model, "free_energy", None), "b"):
        out = gauge_invariant_symbols(model)
    else:
        with torch.no_grad():
            m, phi = model.operators.symbols(full=True)
        out = {"k": model.grid.full_wavenumbers(), "b_m": m.double().cpu().numpy(),
               "b_phi": phi.double().cpu().numpy(), "a_over_b": 0.0, "b": 1.0}
    return out


def operator_symbols(model: Any, *, system: str | None = None, k_max_fit: float | None = None) -> xr.Dataset:
    """The symbols of ``M`` and ``W`` times ``b`` (invariant under the gauge ``(M, W, V) -> (M/c, W/c, c V)``).

    With ``system`` the true symbols in the ``b = 1`` gauge are added and fitted: Allen–Cahn ``b m = 1``,
    ``b phi = 0``; KdV ``b m = 0``, ``b phi = -k`` (zero on the Nyquist mode, which the class cannot hold).

    Parameters
    ----------
    model
        A model with Fourier operators (``model.operators``, ``model.grid``): SpecOnsNet, the true-``V`` ablation.
    system : {"allen_cahn", "kdv"}, optional
        Known truth.
    k_max_fit
        Fit only modes with ``|k| <= k_max_fit`` (the resolved ones); default all.

    Returns
    -------
    xarray.Dataset
        1-D: dim ``k``; 2-D: dims ``ky``, ``kx``; wavenumbers increasing (``fftshift`` order). ``b_m``,
        ``b_phi``, ``m``, ``phi``; scalars ``a_over_b`` and ``b``; with ``system``: ``true_b_m``, ``true_b_phi``
        and the fits through the origin ``{b_m, b_phi}_fit_coefficient`` and ``..._fit_residual``
        (:func:`mesodyn.onsager.gauge.symbol_fit`, where the true symbol is not zero).
    """
    if getattr(model, "operators", None) is None or getattr(model, "grid", None) is None:
        raise ValueError(f"model {_model_name(model)!r} has no Fourier operators (operators, grid).")
    if system is not None and system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)} or None, got {system!r}.")
    sym = _symbols(model)
    b = float(sym["b"])
    k = sym["k"]
    ndim = k.shape[0]
    axes = tuple(range(ndim))
    shift = lambda a: np.fft.fftshift(a, axes=axes)  # noqa: E731
    dims = ("k",) if ndim == 1 else ("ky", "kx")
    axis_k = [np.fft.fftshift(np.take(k[d], 0, axis=1 - d) if ndim == 2 else k[0]) for d in range(ndim)]
    data_vars: dict[str, Any] = {
        "b_m": (dims, shift(sym["b_m"]), {"long_name": "b times the symbol m(k) of M (gauge invariant)",
                                          "units": "1"}),
        "b_phi": (dims, shift(sym["b_phi"]), {"long_name": "b times the symbol phi(k) of W = i phi (gauge invariant)",
                                              "units": "1"}),
        "m": (dims, shift(sym["b_m"] / b), {"long_name": "symbol m(k) of M (gauge dependent)", "units": "1"}),
        "phi": (dims, shift(sym["b_phi"] / b), {"long_name": "symbol phi(k) of W (gauge dependent)", "units": "1"}),
        "a_over_b": ((), float(sym["a_over_b"]), {"long_name": "a / b of the quadratic energy", "units": "1"}),
        "b": ((), b, {"long_name": "coefficient b of int b/2 |grad u|^2", "units": "1"}),
    }
    if system is not None:
        if system == "kdv" and ndim != 1:
            raise ValueError("the KdV symbols are known on 1-D grids only.")
        shape = k.shape[1:]
        if system == "allen_cahn":
            true_m, true_phi = np.ones(shape), np.zeros(shape)
        else:
            n = shape[0]
            true_m, true_phi = np.zeros(shape), -k[0].copy()
            if n % 2 == 0:
                true_phi[n // 2] = 0.0  # self-conjugate: W's symbol is zero there by construction
        data_vars["true_b_m"] = (dims, shift(true_m), {"long_name": "true b m(k)", "units": "1"})
        data_vars["true_b_phi"] = (dims, shift(true_phi), {"long_name": "true b phi(k)", "units": "1"})
        kmag = np.sqrt((k**2).sum(axis=0))
        sel = kmag <= (np.inf if k_max_fit is None else float(k_max_fit))
        for name, learned, truth in (("b_m", sym["b_m"], true_m), ("b_phi", sym["b_phi"], true_phi)):
            if np.any(truth[sel] != 0):
                fit = symbol_fit(learned[sel], truth[sel])
                data_vars[f"{name}_fit_coefficient"] = ((), fit["coefficient"], {
                    "long_name": f"c of {name} ~ c * true {name} (1: the truth)", "units": "1"})
                data_vars[f"{name}_fit_residual"] = ((), fit["relative_residual"], {
                    "long_name": f"relative residual of that fit of {name}", "units": "1"})
    coords = {d: (d, axis_k[i], {"long_name": f"wavenumber {d}", "units": "1 / length unit of the data"})
              for i, d in enumerate(dims)}
    ds = xr.Dataset(data_vars, coords=coords)
    settings = {"system": system or "none", "k_max_fit": "none" if k_max_fit is None else float(k_max_fit)}
    ds.attrs = _attrs(model, None, "operator_symbols", "gauge-invariant symbols of the learned operators",
                      settings, None)
    return ds


# -- ours: dissipation along rollouts ----------------------------------------------------------------------------------
def dissipation_along_rollout(model: Any, data: xr.Dataset, *, samples: Sequence[int], n_steps: int | None = None,
                              dt: float | None = None, stepper: str | None = None, along: str = "rollout",
                              dtype: str = "float64", device: str = "cpu") -> xr.Dataset:
    """The dissipation ``<mu, M mu>`` and the discrete energy rate along rollouts (or the true trajectories).

    For a gradient flow ``dV/dt = -<mu, M mu>`` in continuous time; the discrete rate
    ``(V(u^{s+1}) - V(u^s)) / dt`` of a stepper approaches it as ``dt -> 0`` (and is ``<= 0`` for the
    stabilized stepper at every ``dt``).

    Parameters
    ----------
    model
        A model with ``energy`` and ``dissipation_rate`` (``-<mu, M mu>``): SpecOnsNet, the true-``V`` ablation.
    data
        Fields data set.
    samples
        Trajectories.
    n_steps, dt, stepper
        Rollout length (default the data's frames), step (default ``model.dt``) and stepper (default the
        model's); ``along="truth"`` uses the data's frames and spacing instead.
    along : {"rollout", "truth"}
        States from a rollout from frame 0, or the data's frames.
    dtype, device
        Precision and device.

    Returns
    -------
    xarray.Dataset
        ``energy``, ``dissipation`` (``<mu, M mu> >= 0``) and ``energy_rate`` (``(V^{s+1} - V^s) / dt``, NaN at the
        last step) ``(sample, step)``, coordinate ``time`` on ``step``.
    """
    _require(model, "energy", "the dissipation along rollouts")
    _require(model, "dissipation_rate", "the dissipation along rollouts")
    if along not in ("rollout", "truth"):
        raise ValueError(f"along must be 'rollout' or 'truth', got {along!r}.")
    idx = _samples(data, samples)
    torch_dtype, torch_device = _prepare(model, dtype, device)
    times = _times(data)
    if along == "truth":
        states = _frames(data, idx)
        step_dt = float(np.mean(np.diff(times)))
        n = states.shape[1] - 1
        next_state = lambda s, u: torch.as_tensor(states[:, s], dtype=torch_dtype, device=torch_device)  # noqa: E731
    else:
        step_dt = float(model.dt if dt is None else dt)
        n = times.size - 1 if n_steps is None else int(n_steps)
        next_state = lambda s, u: _step(model, u, step_dt, stepper)  # noqa: E731
    if n < 1:
        raise ValueError(f"n_steps must be at least 1, got {n}.")
    u = torch.as_tensor(_frames(data, idx, time=slice(0, 1))[:, 0], dtype=torch_dtype, device=torch_device)
    energy = np.full((idx.size, n + 1), np.nan)
    dissipation = np.full((idx.size, n + 1), np.nan)
    for s in range(n + 1):
        if s > 0:
            u = next_state(s, u)
        energy[:, s] = total_energy(model, u).double().cpu().numpy()
        with torch.no_grad():
            dissipation[:, s] = (-model.dissipation_rate(u)).double().cpu().numpy()
    rate = np.full_like(energy, np.nan)
    rate[:, :-1] = np.diff(energy, axis=1) / step_dt
    steps = np.arange(n + 1, dtype=np.int64)
    ds = xr.Dataset(
        {
            "energy": (("sample", "step"), energy, {"long_name": "learned free energy V_theta",
                                                    "units": "model energy unit"}),
            "dissipation": (("sample", "step"), dissipation, {
                "long_name": "dissipation <mu, M mu> (continuous-time -dV/dt)", "units": "model energy unit / time"}),
            "energy_rate": (("sample", "step"), rate, {"long_name": "(V(u^(s+1)) - V(u^s)) / dt",
                                                       "units": "model energy unit / time"}),
        },
        coords={"sample": _sample_coord(idx),
                "step": ("step", steps, {"long_name": "step", "units": "1"}),
                "time": ("step", steps * step_dt, {"long_name": "time since frame 0",
                                                   "units": "time unit of the data"})},
    )
    settings = {"along": along, "dt": step_dt, "n_steps": n,
                "stepper": "none" if along == "truth" else (stepper or str(getattr(model, "stepper", "default"))),
                "dtype": dtype}
    ds.attrs = _attrs(model, data, "dissipation_along_rollout", "dissipation and energy rate along "
                      + ("rollouts" if along == "rollout" else "the true trajectories"), settings, idx)
    return ds


# -- files ------------------------------------------------------------------------------------------------------------
def _spectral_fraction(rule: str) -> float:
    """``"99.9%"`` -> 0.999 (``k_max_fit`` given as a share of the data's spectral energy)."""
    try:
        value = float(rule.strip().rstrip("%")) / 100.0
    except ValueError:
        value = math.nan
    if not rule.strip().endswith("%") or not 0 < value <= 1:
        raise ValueError(f"k_max_fit must be a number or a share of the spectral energy such as '99.9%', got "
                         f"{rule!r}.")
    return value


DIAGNOSTICS: dict[str, Callable[..., xr.Dataset]] = {
    "energy_vs_truth": energy_vs_truth,
    "step_size_sweep": step_size_sweep,
    "energy_along_truth": energy_along_truth,
    "energy_change_vs_dt": energy_change_vs_dt,
    "energy_order": energy_order,
    "operator_symbols": operator_symbols,
    "dissipation_along_rollout": dissipation_along_rollout,
}
"""Every diagnostic by the name :func:`diagnostic_file` takes (and files record as ``diagnostic``)."""


def write_diagnostic(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a diagnostic data set atomically (:func:`mesodyn.fields.write_netcdf`); byte-identical on rerun."""
    for key in ("diagnostic", "mesodyn_version", "git_commit", "config"):
        if key not in ds.attrs:
            raise ValueError(f"the data set lacks the attribute {key!r}: write the output of a diagnostic.")
    return write_netcdf(ds, path)


def diagnostic_file(kind: str, *, run_dir: str | os.PathLike, data_path: str | os.PathLike | None,
                    out_path: str | os.PathLike, n_samples: int | None = None, local_derivative: str | None = None,
                    **options: Any) -> Path:
    """Run diagnostic ``kind`` on the model saved in ``run_dir`` and write ``out_path``.

    The trajectories are the run's test split (``split.json``, never trained on), in increasing order, the first
    ``n_samples`` of them (default all). ``operator_symbols`` reads no data (``data_path`` may be ``None``); its
    ``system`` defaults to the one known for the run's data set, as does ``energy_vs_truth``'s.

    Parameters
    ----------
    kind
        A key of :data:`DIAGNOSTICS`.
    run_dir
        What :func:`mesodyn.training.fit` writes (``model.json``, ``weights.pt``, ``split.json``).
    data_path
        The fields file the model was trained on.
    out_path
        Output netCDF (conventionally ``results/diagnostics/{dataset}/{run}/{kind}.nc``).
    n_samples
        How many test trajectories.
    operator_symbols' ``k_max_fit`` may be a share of the spectral energy such as ``"99.9%"``: the fit then covers
    the modes holding that share of the test trajectories' energy (:func:`spectral_extent`; the first
    ``n_samples`` of them, default all).
    local_derivative : {"exact", "interpolant"}, optional
        How a SpecOnsNet evaluates ``F'`` here (default: as it was trained). Both are the same function (the
        interpolant to 1e-12 relative in float64, :mod:`mesodyn.onsager.interpolant`); the interpolant pays for
        building its table on large batches (training, 2-D fields), the exact path is cheaper on a diagnostic's
        few 1-D fields in float64 (measured 18 against 45 ms per step of five 256-point fields).
    **options
        Keyword options of the diagnostic (``samples`` excluded).

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    from mesodyn.models import load_model

    if kind not in DIAGNOSTICS:
        raise ValueError(f"kind must be one of {', '.join(DIAGNOSTICS)}, got {kind!r}.")
    if "samples" in options:
        raise ValueError("the samples are the run's test split; choose how many with n_samples.")
    run_dir = Path(run_dir)
    model = load_model(run_dir, device="cpu", dtype=torch.float64)
    local = getattr(getattr(model, "free_energy", None), "local", None)
    if local_derivative is not None:
        if local_derivative not in ("exact", "interpolant"):
            raise ValueError(f"local_derivative must be 'exact' or 'interpolant', got {local_derivative!r}.")
        if hasattr(local, "derivative_mode"):
            local.derivative_mode = local_derivative
    fn = DIAGNOSTICS[kind]
    extra = {"run_dir": str(run_dir), "data_path": "none" if data_path is None else str(data_path),
             "local_derivative": str(getattr(local, "derivative_mode", "none"))}
    if kind == "operator_symbols":
        fit_rule = None
        if data_path is not None:
            with open_fields(data_path) as data:
                check_fields(data, contract=contract_of(dataset_name(data)), source=data_path, samples=[])
                if "system" not in options:
                    options["system"] = _SYSTEM_OF_DATASET.get(dataset_name(data) or "")
                if isinstance(options.get("k_max_fit"), str):
                    fit_rule = options["k_max_fit"]
                    fraction = _spectral_fraction(fit_rule)
                    split = json.loads((run_dir / "split.json").read_text())
                    test = sorted(int(i) for i in split["test"])
                    options["k_max_fit"] = spectral_extent(
                        data, samples=test if n_samples is None else test[: int(n_samples)], fraction=fraction)
        elif isinstance(options.get("k_max_fit"), str):
            raise ValueError("k_max_fit from the data's spectrum needs data_path.")
        ds = fn(model, **options)
        if fit_rule is not None:
            extra["k_max_fit_rule"] = f"the modes holding {fit_rule} of the test data's spectral energy"
    else:
        if data_path is None:
            raise ValueError(f"diagnostic {kind!r} needs data_path.")
        split = json.loads((run_dir / "split.json").read_text())
        test = sorted(int(i) for i in split["test"])
        samples = test if n_samples is None else test[: int(n_samples)]
        with open_fields(data_path) as data:
            # true data that are not finite would be read as the model's failure
            check_fields(data, contract=contract_of(dataset_name(data)), source=data_path, samples=samples)
            if kind == "energy_vs_truth" and "system" not in options:
                system = _SYSTEM_OF_DATASET.get(dataset_name(data) or "")
                if system is None:
                    raise ValueError(f"no true energy is known for data set {dataset_name(data)!r}.")
                options["system"] = system
            ds = fn(model, data, samples=samples, **options)
    ds.attrs.update(to_netcdf_attrs(extra))
    return write_diagnostic(ds, out_path)
