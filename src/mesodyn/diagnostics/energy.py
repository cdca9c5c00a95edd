"""The learned energy: against the true one, along the true trajectories, and its order near zero."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.continuum.invariants import allen_cahn_energy, kdv_hamiltonian
from mesodyn.diagnostics._common import (SYSTEMS, _attrs, _frames, _prepare, _require, _sample_coord,
                                         _samples, _time_coord, _times, power_law_fit)
from mesodyn.fields import dataset_name, grid_from_data
from mesodyn.models import capabilities
from mesodyn.onsager.gauge import fit_affine
from mesodyn.registry import DATASETS, is_chain

__all__ = ["true_energy", "total_energy", "energy_parts", "local_density", "energy_vs_truth", "energy_along_truth",
           "energy_order"]

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


def reads_f_from_table(model: Any) -> bool:
    """Whether ``total_energy(model, u, tabulated=True)`` reads ``F`` from a verified table: a SpecOnsNet whose ``F'``
    is the interpolant (the one place that decides it)."""
    return getattr(model, "local_derivative", None) == "interpolant"


def total_energy(model: Any, u: torch.Tensor, *, tabulated: bool = False) -> torch.Tensor:
    """The model's ``V(u)`` per batch member (``energy(u)["total"]``, or ``energy(u)`` itself where it returns a
    tensor, as OnsagerNet's does), without a graph.

    ``tabulated``: a SpecOnsNet whose ``F'`` is the interpolant reads ``F`` from its verified table (``V_T``, ``F``
    within the table's tolerance at every point, the energy whose law the AVF step satisfies exactly; see
    :meth:`mesodyn.onsager.energy.FreeEnergy.energy`); any other model ignores it.
    """
    with torch.no_grad():
        if tabulated and reads_f_from_table(model):
            e = model.energy(u, tabulated=True)
        else:
            e = model.energy(u)
    return e["total"] if isinstance(e, Mapping) else e


def _quadratic_a(model: Any) -> float:
    """``a`` of the quadratic part ``int a/2 u^2 + b/2 |grad u|^2`` of a model that declares its energy's parts
    (:class:`mesodyn.registry.Capabilities`); 0 for any other: its whole ``"quadratic"`` part is then read as the
    gradient term."""
    if not capabilities(model).energy_parts:
        return 0.0
    return model.quadratic_coefficients()[0]


def energy_parts(model: Any, u: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's energy split as in ``V = V0 + int b/2 |grad u|^2 + V_nl``, each of shape ``(batch,)``.

    ``V0 = int a/2 u^2 + F(u)``. SpecOnsNet's ``energy`` reports ``"quadratic"`` (``int a/2 u^2 + b/2 |grad u|^2``,
    both together), ``"local"`` (``int F``) and ``"nonlocal"``; the ``a`` term is split off with the model's
    ``quadratic_coefficients()`` and grid inner product. A model that does not declare its energy's parts (a
    stand-in) has ``a = 0`` here: its whole ``"quadratic"`` part is the gradient term, as it is for the true ``V``.

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
            a = _quadratic_a(model)
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
    model), or ``None`` for a model that does not declare its energy's parts."""
    if not capabilities(model).energy_parts:
        return None
    with torch.no_grad():
        return model.local_density(u)


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


# -- figure 3: learned against true energy ---------------------------------------------------------------------------
def energy_vs_truth(model: Any, data: xr.Dataset, *, samples: Sequence[int], system: str = "allen_cahn",
                    epsilon: float | None = None, dtype: str = "float64", device: str = "auto",
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
        name = dataset_name(data)
        if "epsilon" not in data.attrs or (name in DATASETS and is_chain(name)):
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


# -- figure 5: learned energy along the true trajectories --------------------------------------------------------------
def energy_along_truth(model: Any, data: xr.Dataset, *, samples: Sequence[int], dtype: str = "float64",
                       device: str = "auto", batch_size: int = 256) -> xr.Dataset:
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


# -- figure 7: order of the learned energy ---------------------------------------------------------------------------
_COMPONENTS = {
    "total": "V",
    "V0": "V0 = int a/2 u^2 + F(u)",
    "gradient": "int b/2 |grad u|^2",
    "nonlocal": "V_nl",
}


def _scaled_energy_differences(model: Any, u0: np.ndarray, scales: np.ndarray, *, dtype: torch.dtype,
                               device: torch.device, batch_size: int) -> tuple[list[str], np.ndarray]:
    """The components of :func:`energy_parts` the model reports, and ``|V_c(s u0) - V_c(0)|``
    (component, scale, sample) for the initial fields ``u0`` ``(sample, *grid)``."""
    n_samples = u0.shape[0]
    scaled = (scales[:, None, None] * u0.reshape(1, n_samples, -1)).reshape(scales.size * n_samples, *u0.shape[1:])
    parts = _energies_of_frames(model, scaled, dtype=dtype, device=device, batch_size=batch_size, parts=True)
    zero = energy_parts(model, torch.zeros((1, *u0.shape[1:]), dtype=dtype, device=device))
    components = [c for c in _COMPONENTS if c in parts]
    diff = np.stack([np.abs(parts[c].reshape(scales.size, n_samples) - float(zero[c][0])) for c in components])
    return components, diff


def _order_fit_vars(components: list[str], diff: np.ndarray, scales: np.ndarray,
                    s_max_fit: float | None) -> dict[str, Any]:
    """``energy_difference`` and, per component, the power law fitted over ``s <= s_max_fit``: one exponent for
    every trajectory, one prefactor each (:func:`power_law_fit` with ``groups``)."""
    in_fit = scales <= (np.inf if s_max_fit is None else float(s_max_fit))
    columns = np.arange(diff.shape[2])[None, :]
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
    return data_vars


def _density_vars(model: Any, u_grid: np.ndarray, *, dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
    """The learned local density ``F(u) - F(0)``, ``a/2 u^2 + F(u) - F(0)`` and ``a`` on ``u_grid``; empty for a
    model without a local density."""
    # F(0) is evaluated with the grid, as its last point, so that both come from one call
    density = local_density(model, torch.as_tensor(np.append(u_grid, 0.0), dtype=dtype, device=device))
    if density is None:
        return {}
    density = density.double().cpu().numpy()
    f = density[:-1] - density[-1]
    a = _quadratic_a(model)
    return {
        "local_density": (("u",), f, {"long_name": "learned local density F(u) - F(0)",
                                      "units": "model energy unit per unit volume"}),
        "local_energy_density": (("u",), 0.5 * a * u_grid**2 + f, {
            "long_name": "a/2 u^2 + F(u) - F(0)", "units": "model energy unit per unit volume"}),
        "a": ((), a, {"long_name": "coefficient a of the quadratic term a/2 u^2", "units": "1"}),
    }


def energy_order(model: Any, data: xr.Dataset, *, samples: Sequence[int], s: Sequence[float] | None = None,
                 s_max_fit: float | None = None, n_u: int = 201, u_range: tuple[float, float] | None = None,
                 dtype: str = "float64", device: str = "auto", batch_size: int = 256) -> xr.Dataset:
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
    components, diff = _scaled_energy_differences(model, frames[:, 0], scales, dtype=torch_dtype,
                                                  device=torch_device, batch_size=batch_size)
    data_vars = _order_fit_vars(components, diff, scales, s_max_fit)
    coords: dict[str, Any] = {
        "component": ("component", np.asarray(components, dtype=object), {
            "long_name": "part of the energy", "description": "; ".join(f"{c}: {_COMPONENTS[c]}" for c in components)}),
        "scale": ("scale", scales, {"long_name": "scale s of the initial field", "units": "1"}),
        "sample": _sample_coord(idx),
    }
    lo, hi = (float(np.min(frames)), float(np.max(frames))) if u_range is None else map(float, u_range)
    u_grid = np.linspace(lo, hi, int(n_u))
    density_vars = _density_vars(model, u_grid, dtype=torch_dtype, device=torch_device)
    if density_vars:
        data_vars.update(density_vars)
        coords["u"] = ("u", u_grid, {"long_name": "field value", "units": "unit of u"})
    ds = xr.Dataset(data_vars, coords=coords)
    settings = {"s_min": float(scales.min()), "s_max": float(scales.max()), "n_s": int(scales.size),
                "s_max_fit": "none" if s_max_fit is None else float(s_max_fit), "n_u": int(n_u), "dtype": dtype}
    ds.attrs = _attrs(model, data, "energy_order", "order of the learned energy near zero and its local density",
                      settings, idx)
    return ds


