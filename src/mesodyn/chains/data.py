"""Chain ensembles as xarray data sets: the mesoscopic fields file and the microscopic trajectories file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from mesodyn.chains.models import chain_from_config
from mesodyn.chains.simulate import ChainEnsemble, simulate_ensemble
from mesodyn.coarse import coarse_grain, site_positions

__all__ = ["make_chain_data", "fields_dataset", "micro_dataset"]

SITE_ATTRS = {"long_name": "chain site index n", "units": "1"}


def fields_dataset(ens: ChainEnsemble, *, n_grid: int = 256, method: str = "linear") -> xr.Dataset:
    """The mesoscopic data set ``u(sample, time, x)`` (slow time τ, co-moving ξ) of an ensemble."""
    model = ens.model
    eps = model.epsilon
    tau = eps**3 * ens.t_lab
    u = coarse_grain(ens.strain, ens.t_lab, epsilon=eps, c=model.c, n_grid=n_grid, method=method)
    n = u.shape[0]
    peak_name, peak_attrs = (
        ("u_max", {"long_name": "max over slow steps of max_n |u_n| (rejection if > u_bound)", "units": "1"})
        if model.form == "strain"
        else ("r_max_over_R", {"long_name": "max over slow steps of max_n |r_n|/R (rejection if > r_bound)",
                               "units": "1"})
    )
    peak = ens.peak / eps**2 if model.form == "strain" else ens.peak
    ds = xr.Dataset(
        {
            "u": (("sample", "time", "x"), u, {
                "long_name": f"rescaled strain u = r/eps^2 in the co-moving frame, {method} periodic interpolation",
                "units": "1"}),
            "u_chain": (("sample", "time", "site"), ens.strain / eps**2, {
                "long_name": "rescaled strain r_n/eps^2 at chain site n (before interpolation)", "units": "1"}),
            "xi_site": (("time", "site"), site_positions(model.n_sites, ens.t_lab, c=model.c), {
                "long_name": "unwrapped co-moving position eps*n - eps*c*t_lab of site n", "units": "1"}),
            "t_lab": (("time",), ens.t_lab, {
                "long_name": "lab (lattice) time, accumulated as t_lab += dt_chain per substep", "units": "1"}),
            "ic_k": (("sample", "mode"), ens.draws.k, {"long_name": "IC integer wavenumbers (draw order)",
                                                      "units": "1"}),
            "ic_amplitude": (("sample", "mode"), ens.draws.amplitude, {"long_name": "IC amplitudes ~ U(0, 1)",
                                                                      "units": "1"}),
            "ic_phase": (("sample", "mode"), ens.draws.phase, {"long_name": "IC phases ~ U(0, 2 pi)",
                                                              "units": "rad"}),
            "ic_norm": (("sample",), ens.draws.norm, {
                "long_name": "std of the raw sine sum at 1024 equispaced points (u0 = raw / ic_norm)", "units": "1"}),
            "rng_trial": (("sample",), ens.trial, {
                "long_name": "1-based position of the trial in the RNG stream (rejected trials consume draws)",
                "units": "1"}),
            peak_name: (("sample",), peak, peak_attrs),
        },
        coords={
            "sample": ("sample", np.arange(n), {"long_name": "index of the accepted trajectory", "units": "1"}),
            "time": ("time", tau, {"long_name": "slow time tau = eps^3 t_lab", "units": "1"}),
            "x": ("x", np.arange(n_grid) * (2 * np.pi / n_grid), {
                "long_name": "co-moving slow coordinate xi = eps (n - c t)", "units": "1"}),
            "site": ("site", np.arange(model.n_sites), SITE_ATTRS),
            "mode": ("mode", np.arange(model.n_modes), {"long_name": "slot of the initial condition's sine sum",
                                                         "units": "1"}),
        },
        attrs={
            **model.attrs(),
            "title": f"{model.name.upper()} chain, rescaled strain in the co-moving long-wave frame",
            "coarse_method": method,
            "n_grid": n_grid,
            "n_trials": ens.n_trials,
            "n_rejected": ens.n_trials - n,
        },
    )
    return ds


def micro_dataset(ens: ChainEnsemble, *, keep: int | None = None) -> xr.Dataset:
    """The microscopic trajectories (first ``keep`` samples): ``r, p`` (strain form) or ``q, p``."""
    model = ens.model
    n = ens.state.shape[0] if keep is None else min(keep, ens.state.shape[0])
    if model.form == "strain":
        state = {"r": (("sample", "time", "site"), ens.state[:n], {
            "long_name": "strain r_n = q_{n+1} - q_n", "units": "1"})}
        vel_name = "dr_n/dt, the strain rate (the strain form's momentum variable)"
    else:
        state = {"q": (("sample", "time", "site"), ens.state[:n], {"long_name": "displacement q_n", "units": "1"})}
        vel_name = "momentum p_n = dq_n/dt (unit masses)"
    return xr.Dataset(
        {**state, "p": (("sample", "time", "site"), ens.velocity[:n], {"long_name": vel_name, "units": "1"})},
        coords={
            "sample": ("sample", np.arange(n), {"long_name": "index of the accepted trajectory (as in the fields file)",
                                                "units": "1"}),
            "time": ("time", ens.t_lab, {"long_name": "lab (lattice) time", "units": "1"}),
            "site": ("site", np.arange(model.n_sites), SITE_ATTRS),
        },
        attrs={**model.attrs(), "title": f"{model.name.upper()} chain, microscopic trajectories"},
    )


def make_chain_data(
    name: str,
    params: Mapping[str, Any],
    *,
    seed: int,
    method: str = "linear",
    n_grid: int = 256,
    keep_micro: int | None = None,
    progress: bool = True,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Simulate a chain data set from its config section; return the (fields, micro) data sets."""
    model = chain_from_config(name, dict(params))
    ens = simulate_ensemble(model, n_samples=int(params.get("n_samples", 1000)), seed=seed, progress=progress)
    fields = fields_dataset(ens, n_grid=n_grid, method=method)
    fields.attrs["seed"] = seed
    micro = micro_dataset(ens, keep=keep_micro)
    micro.attrs["seed"] = seed
    return fields, micro
