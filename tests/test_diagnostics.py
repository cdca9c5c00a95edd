"""Energy and operator diagnostics on cases with known answers: the order of a pure quartic and of a quadratic energy,
an exactly conservative step keeps V, the affine fit of c V + d, the first-order energy change of explicit Euler, the
divergence flag of the step-size sweep, gauge-invariant symbols, and byte-identical netCDF files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from mesodyn.diagnostics import (
    DIVERGENCE_FACTOR, diagnostic_file, dissipation_along_rollout, energy_along_truth, energy_change_vs_dt,
    energy_order, energy_parts, energy_vs_truth, operator_symbols, power_law_fit, step_size_sweep, true_energy,
    spectral_extent, write_diagnostic,
)
from mesodyn.fields import write_netcdf
from mesodyn.models import build_model, cast_module
from mesodyn.onsager.energy import inverse_softplus
from mesodyn.training import split_trajectories

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TWO_PI = 2 * math.pi


# -- data and stand-in models ---------------------------------------------------------------------------------------
def travelling_waves(*, n_samples=3, n_time=6, dt=0.01, nx=16, speed=0.0, max_k=3, seed=0, noise=0.0, attrs=None):
    """``u(x, t) = sum_k A_k sin(k (x - speed t) + phase_k)``: an exact travelling wave, so an exact Fourier rotation
    reproduces it frame by frame. ``noise`` adds one fixed white-noise field (every mode present) to every frame."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx) * TWO_PI / nx
    t = np.arange(n_time) * dt
    k = np.arange(1, max_k + 1)
    amp, phase = rng.uniform(0.2, 1, (n_samples, k.size)), rng.uniform(0, TWO_PI, (n_samples, k.size))
    arg = k[None, None, :, None] * (x[None, None, None, :] - speed * t[None, :, None, None]) + phase[:, None, :, None]
    u = np.einsum("sk,stkx->stx", amp, np.sin(arg))
    if noise:
        u = u + noise * rng.normal(size=(n_samples, 1, nx))
    return xr.Dataset({"u": (("sample", "time", "x"), u, {"long_name": "field", "units": "1"})},
                      coords={"time": ("time", t, {"long_name": "time", "units": "1"}),
                              "x": ("x", x, {"long_name": "position", "units": "1"})},
                      attrs={"dataset": "toy", **(attrs or {})})


def fields_2d(*, n_samples=2, n_time=3, n=8, seed=1):
    rng = np.random.default_rng(seed)
    y = x = np.arange(n) * TWO_PI / n
    u = np.zeros((n_samples, n_time, n, n))
    for kx, ky in [(1, 0), (0, 1), (1, 1), (2, -1)]:
        a = rng.uniform(0.2, 1, (n_samples, n_time, 1, 1))
        p = rng.uniform(0, TWO_PI, (n_samples, n_time, 1, 1))
        u += a * np.sin(kx * x[None, None, None, :] + ky * y[None, None, :, None] + p)
    return xr.Dataset({"u": (("sample", "time", "y", "x"), u)},
                      coords={"time": np.arange(n_time) * 0.01, "y": y, "x": x}, attrs={"dataset": "toy"})


def grid_energy(u, symbol, length=TWO_PI):
    """``1/2 <u, S u>`` in the grid inner product for the real even symbol ``S(k)`` (numpy, last axis)."""
    n = u.shape[-1]
    k = np.fft.fftfreq(n, d=1.0 / n) * TWO_PI / length
    u_hat = np.fft.fft(u, axis=-1)
    return 0.5 * (length / n**2) * np.sum(symbol(k) * np.abs(u_hat) ** 2, axis=-1)


class StandIn(nn.Module):
    """The smallest object of the model interface: ``step``, ``dt``, ``config``, ``energy``."""

    def __init__(self, dt=0.01, n=16, length=TWO_PI):
        super().__init__()
        self.dt, self.n, self.length = dt, n, length
        self.register_buffer("k", torch.fft.rfftfreq(n, d=1.0 / n) * TWO_PI / length)
        self.config = {"name": type(self).__name__.lower()}

    def integral(self, f):
        return f.sum(dim=-1) * (self.length / self.n)


class Quartic(StandIn):
    """``V = int c u^4`` (all of it local), and a step that does nothing."""

    def __init__(self, c=0.7, **kw):
        super().__init__(**kw)
        self.c = c

    def energy(self, u):
        local = self.integral(self.c * u**4)
        return {"quadratic": torch.zeros_like(local), "local": local, "total": local}

    def step(self, u, dt=None):
        return u


class ExactRotation(StandIn):
    """``u_hat -> exp(-i phi dt) u_hat`` with ``phi = speed k``: the exact flow of ``u_t = -speed u_x``, which keeps
    every quadratic energy ``1/2 <u, (a + b k^2) u>`` to round-off at every ``dt``."""

    def __init__(self, speed=1.5, a=0.3, b=0.8, **kw):
        super().__init__(**kw)
        self.speed, self.a, self.b = speed, a, b

    def energy(self, u):
        u_hat = torch.fft.rfft(u, dim=-1)
        w = torch.full_like(self.k, 2.0)
        w[0] = w[-1] = 1.0
        v = 0.5 * self.length / self.n**2 * ((self.a + self.b * self.k**2) * w * u_hat.abs() ** 2).sum(dim=-1)
        return {"quadratic": v, "local": torch.zeros_like(v), "total": v}

    def step(self, u, dt=None):
        dt = self.dt if dt is None else dt
        phase = torch.exp(-1j * self.speed * self.k * dt)
        return torch.fft.irfft(phase * torch.fft.rfft(u, dim=-1), n=self.n, dim=-1)


class Scaled(nn.Module):
    """``c V + d`` of another model's energy (same steps)."""

    def __init__(self, inner, c, d):
        super().__init__()
        self.inner, self.c, self.d = inner, c, d
        self.dt, self.config = inner.dt, {"name": "scaled"}

    def energy(self, u):
        return {"total": self.c * self.inner.energy(u)["total"] + self.d}

    def step(self, u, dt=None):
        return self.inner.step(u, dt=dt)


def quadratic_speconsnet(*, n=16, dt=0.01, a=1.0, b=1.0, m=1.0, nonlocal_modes=0, stepper="euler", ndim=1):
    """SpecOnsNet with ``F = 0``: ``V = int a/2 u^2 + b/2 |grad u|^2`` (+ ``V_nl``), ``M = m``, ``W = 0``."""
    torch.manual_seed(0)
    model = build_model({"name": "speconsnet", "shape": [n] * ndim, "length": [TWO_PI] * ndim, "dt": dt, "hidden": 4,
                         "nonlocal_modes": nonlocal_modes, "operators": "M", "init_m": m, "init_m_cap": None,
                         "init_a": a, "init_b": b, "stepper": stepper})
    # In float64 with a, b and m set exactly (the float32 parameters of a fresh model hold them to 1e-7 only).
    cast_module(model, device="cpu", dtype=torch.float64)
    with torch.no_grad():
        model.free_energy.local.out.weight.zero_()
        model.free_energy.raw_a.fill_(inverse_softplus(a))
        model.free_energy.raw_b.fill_(inverse_softplus(b))
        model.operators.theta.fill_(math.sqrt(m))
    return model


# -- fits ------------------------------------------------------------------------------------------------------------
def test_power_law_fit_recovers_exponent_prefactor_and_honours_the_cap():
    x = np.logspace(-3, 0, 7)[:, None]
    y = 3.0 * x**1.5 * np.ones((1, 4))
    fit = power_law_fit(x, y)
    assert fit["n_points"] == 28
    np.testing.assert_allclose([fit["exponent"], fit["prefactor"], fit["r2"]], [1.5, 3.0, 1.0], rtol=1e-12)
    capped = power_law_fit(x, y, cap=0.05)          # keeps x with 3 x^1.5 < 0.05: the 4 x below 0.0706
    assert capped["n_points"] == 16 and math.isclose(capped["exponent"], 1.5, rel_tol=1e-12)
    y_bad = np.where(x > 0.5, np.inf, y)            # non-finite points are left out
    assert power_law_fit(x, y_bad)["n_points"] == 24
    # one exponent, one prefactor per group: trajectories of different amplitude are no misfit
    two = np.array([[1.0, 100.0]]) * x**-0.5
    pooled = power_law_fit(x, two)
    grouped = power_law_fit(x, two, groups=np.array([[0, 1]]))
    assert pooled["r2"] < 0.5 and math.isclose(pooled["exponent"], -0.5, rel_tol=1e-12)
    np.testing.assert_allclose([grouped["exponent"], grouped["prefactor"], grouped["r2"]], [-0.5, 10.0, 1.0],
                               rtol=1e-12)
    assert math.isnan(power_law_fit([1.0, 1.0], [1.0, 2.0])["exponent"])  # one distinct x: no fit
    assert math.isnan(power_law_fit(x, np.zeros_like(y))["exponent"])     # an identically zero part


# -- figure 3: the affine gauge ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ndim", [1, 2])
def test_affine_fit_of_c_v_plus_d_returns_c_d_and_r_one(ndim):
    data = travelling_waves(nx=16, n_time=4) if ndim == 1 else fields_2d()
    shape = list(data["u"].shape[2:])
    true_v = build_model({"name": "speconsnet_true_v", "shape": shape, "length": [TWO_PI] * ndim, "dt": 0.01,
                          "energy": "allen_cahn", "epsilon": 0.1})
    # The true-V model keeps the constant int 1/(4 eps^2) = |Omega| / (4 eps^2) that the figure's true V drops.
    constant = TWO_PI**ndim / (4 * 0.1**2)          # 157.08 in 1-D, 986.96 in 2-D
    ds = energy_vs_truth(true_v, data, samples=[0, 1], epsilon=0.1)
    np.testing.assert_allclose([ds["slope"].item(), ds["intercept"].item(), ds["pearson_r"].item()],
                               [1.0, constant, 1.0], rtol=1e-10)
    c, d = 2.5, -7.0
    ds = energy_vs_truth(Scaled(true_v, c, d), data, samples=[0, 1], epsilon=0.1)
    np.testing.assert_allclose(ds["slope"].item(), c, rtol=1e-10)
    np.testing.assert_allclose(ds["intercept"].item(), c * constant + d, rtol=1e-10)
    assert abs(ds["pearson_r"].item() - 1.0) < 1e-12
    assert ds["learned_energy"].dims == ("sample", "time") and ds["sample"].values.tolist() == [0, 1]
    expected = true_energy(data["u"].values[:2], system="allen_cahn", length=[TWO_PI] * ndim, epsilon=0.1)
    np.testing.assert_allclose(ds["true_energy"].values, expected, rtol=1e-14)


def test_energy_vs_truth_refuses_the_chains_epsilon():
    data = travelling_waves(attrs={"epsilon": 0.05})
    data.attrs["dataset"] = "fput"                  # a chain's epsilon is its lattice spacing
    with pytest.raises(ValueError, match="give epsilon"):
        energy_vs_truth(Quartic(), data, samples=[0])


# -- figure 7: orders of energies --------------------------------------------------------------------------------------
def test_order_of_a_pure_quartic_energy_is_four():
    ds = energy_order(Quartic(), travelling_waves(), samples=[0, 1, 2])
    assert ds["component"].values.tolist() == ["total", "V0", "gradient", "nonlocal"]
    p = ds["exponent"]
    assert abs(p.sel(component="total").item() - 4.0) < 1e-10 and abs(p.sel(component="V0").item() - 4.0) < 1e-10
    assert abs(ds["r2"].sel(component="total").item() - 1.0) < 1e-12
    assert ds["n_points"].sel(component="total").item() == 150     # 50 scales x 3 trajectories
    assert np.isnan(p.sel(component="gradient").item()) and np.isnan(p.sel(component="nonlocal").item())
    assert "local_density" not in ds                                  # the stand-in exposes no F


def test_order_of_a_quadratic_speconsnet_is_two_and_its_parts_are_split_exactly():
    a, b = 2.0, 0.5
    model = quadratic_speconsnet(a=a, b=b)
    data = travelling_waves()
    ds = energy_order(model, data, samples=[0, 1], s_max_fit=0.5)
    for c in ("total", "V0", "gradient"):
        assert abs(ds["exponent"].sel(component=c).item() - 2.0) < 1e-10, c
    assert np.isnan(ds["exponent"].sel(component="nonlocal").item())   # no V_nl
    assert ds["n_points"].sel(component="total").item() == 2 * int(np.sum(ds["scale"].values <= 0.5))
    # V0 = a/2 ||s u0||^2 and the gradient term b/2 ||grad s u0||^2, computed independently
    u0 = data["u"].values[:2, 0]
    s = ds["scale"].values[:, None]
    np.testing.assert_allclose(ds["energy_difference"].sel(component="V0").values,
                               s**2 * grid_energy(u0, lambda k: a + 0 * k), rtol=1e-10)
    np.testing.assert_allclose(ds["energy_difference"].sel(component="gradient").values,
                               s**2 * grid_energy(u0, lambda k: b * k**2), rtol=1e-10)
    # F = 0: the learned density vanishes and the local energy density is a/2 u^2 on the data's range
    u = ds["u"].values
    assert np.isclose(u[0], data["u"].values[:2].min()) and np.isclose(u[-1], data["u"].values[:2].max())
    np.testing.assert_array_equal(ds["local_density"].values, 0.0)
    np.testing.assert_allclose(ds["local_energy_density"].values, 0.5 * a * u**2, rtol=1e-12)


def test_energy_parts_add_up_to_the_total_for_a_full_speconsnet():
    torch.manual_seed(3)
    model = build_model({"name": "speconsnet", "shape": [16], "length": [TWO_PI], "dt": 0.01, "hidden": 4,
                         "nonlocal_modes": 3, "init_a": 1.3, "init_b": 0.7}).double()
    u = torch.as_tensor(travelling_waves()["u"].values[:, 0])
    parts = energy_parts(model, u)
    np.testing.assert_allclose((parts["V0"] + parts["gradient"] + parts["nonlocal"]).numpy(), parts["total"].numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(parts["gradient"].numpy(), grid_energy(u.numpy(), lambda k: 0.7 * k**2), rtol=1e-6)
    assert torch.all(parts["nonlocal"] > 0)


# -- exact conservation ------------------------------------------------------------------------------------------------
def test_an_exactly_conservative_step_keeps_v_along_its_own_trajectories():
    speed = 1.5
    model = ExactRotation(speed=speed, dt=0.01)
    data = travelling_waves(speed=speed, n_time=6, dt=0.01)     # the model's own exact trajectories
    sweep = step_size_sweep(model, data, samples=[0, 1, 2], factors=(0.1, 1, 3), horizon=0.05)
    assert sweep["stepper"].values.tolist() == ["default"]     # a step without a stepper argument
    assert sweep["n_steps"].values.tolist() == [50, 5, 2]      # round(0.05 / (f dt)); 1.67 -> 2
    v = sweep["energy"].values[0]                              # (factor, sample, step)
    v0 = v[:, :, :1]
    drift = np.nanmax(np.abs(v - v0) / v0)
    assert drift < 1e-13, drift
    assert not sweep["diverged"].values.any() and (sweep["diverged_step"].values == -1).all()
    # Steps on a data frame reproduce it to round-off; between frames the error is the linear interpolation's.
    rel = sweep["rel_rmse"].values[0]
    assert np.nanmax(rel[1, :, :6]) < 1e-13                   # factor 1: every step is a frame
    assert np.nanmax(rel[0, :, ::10]) < 1e-13                 # factor 0.1: every 10th step
    assert 1e-6 < np.nanmax(rel[0]) < 0.05
    assert np.isnan(rel[1, :, 6:]).all() and np.isnan(sweep["lead_time"].values[1, 6:]).all()
    # the factor-3 rollout ends at t = 0.06 > 0.05 = the last frame: no truth there
    assert np.isnan(rel[2, :, 2]).all() and np.isfinite(rel[2, :, 1]).all()
    along = energy_along_truth(model, data, samples=[0, 1, 2])
    assert along["relative_drift"].max().item() < 1e-13
    change = energy_change_vs_dt(model, data, samples=[0, 1])
    assert np.nanmax(change["max_change"].values) < 1e-13 * v0.max()


# -- figure 6: first-order energy change of explicit Euler -------------------------------------------------------------
def test_explicit_euler_on_a_quadratic_energy_changes_v_by_order_dt_per_step():
    # du/dt = -m (a - Laplacian) u: Euler changes V per step by V [(1 - lambda dt)^2 - 1] ~ -2 lambda dt V, so the
    # median (and the max) over steps of |dV| scales as dt^1; lambda dt <= 10 * 1e-3 keeps the O(dt^2) term at 1 %.
    model = quadratic_speconsnet(dt=1e-3)
    data = travelling_waves(n_time=21, dt=1e-3)               # horizon 0.02: 20 to 200 steps
    ds = energy_change_vs_dt(model, data, samples=[0, 1, 2])
    np.testing.assert_allclose(ds["dt"].values, 1e-3 * np.logspace(-1, 0, 5), rtol=1e-12)
    assert ds["n_steps"].values.tolist() == [200, 112, 63, 36, 20]
    for key in ("median", "max"):
        p, r2 = ds[f"{key}_exponent"].item(), ds[f"{key}_r2"].item()
        assert abs(p - 1.0) < 0.02 and r2 > 0.999, (key, p, r2)
    assert (ds["diverged_step"].values == -1).all()
    capped = energy_change_vs_dt(model, data, samples=[0, 1, 2], cap=float(ds["median_change"].values.min()) * 1.01)
    # a cap that leaves one dt per trajectory leaves nothing to fit
    assert capped["median_n_points"].item() == 0 and np.isnan(capped["median_exponent"].item())
    assert np.all(np.abs(ds["median_exponent_per_sample"].values - 1.0) < 0.02)
    assert np.all(ds["median_r2_per_sample"].values > 0.999)


# -- figure 4: the divergence flag -------------------------------------------------------------------------------------
def test_step_size_sweep_flags_divergent_explicit_euler_and_not_a_stable_rollout():
    # lambda(k) = m (a + b k^2) reaches 1 + 2 * 64 = 129 on 16 points: Euler amplifies the Nyquist mode by
    # |1 - 129 dt|, 0.29 at dt = 0.01 (stable) and 2.87 at dt = 0.03 (divergent); the stabilized step (S = 0 here, the
    # quadratic part implicit) is stable at every dt.
    a, b, m, dt = 1.0, 2.0, 1.0, 0.01
    model = quadratic_speconsnet(a=a, b=b, m=m, dt=dt)
    data = travelling_waves(n_time=31, dt=dt, noise=0.3)     # white noise: every mode present
    ds = step_size_sweep(model, data, samples=[0, 1, 2], factors=(1, 3), horizon=0.3)
    assert ds["stepper"].values.tolist() == ["euler", "stabilized"]
    flags = ds["diverged"]
    assert flags.sel(stepper="euler", factor=3).values.tolist() == [1, 1, 1]
    assert flags.sel(stepper="euler", factor=1).values.tolist() == [0, 0, 0]
    assert not flags.sel(stepper="stabilized").values.any()
    # the energies and the first diverged step predicted mode by mode (Euler is a per-mode multiplier here)
    u0 = data["u"].values[:3, 0]
    for factor in (1, 3):
        h = factor * dt
        n = ds["n_steps"].sel(factor=factor).item()
        v = np.stack([grid_energy(u0, lambda k, s=s: (a + b * k**2) * (1 - h * m * (a + b * k**2)) ** (2 * s))
                      for s in range(n + 1)], axis=1)
        got = ds["energy"].sel(stepper="euler", factor=factor).values[:, :n + 1]
        recorded = np.isfinite(got)
        np.testing.assert_allclose(got[recorded], v[recorded], rtol=1e-10)
        over = v > DIVERGENCE_FACTOR * np.maximum(np.abs(v[:, :1]), 1.0)
        expected = np.where(over.any(axis=1), over.argmax(axis=1), -1)
        assert ds["diverged_step"].sel(stepper="euler", factor=factor).values.tolist() == expected.tolist()
    assert (ds["diverged_step"].sel(stepper="euler", factor=3).values > 0).all()
    e = ds["energy"].sel(stepper="stabilized").values
    assert np.all(np.diff(e, axis=-1)[np.isfinite(np.diff(e, axis=-1))] <= 1e-12 * e[..., :1])
    # after a divergence nothing more is recorded
    first = ds["diverged_step"].sel(stepper="euler", factor=3).values
    euler3 = ds["energy"].sel(stepper="euler", factor=3).values
    for i, f in enumerate(first):
        assert np.isfinite(euler3[i, f]) and np.isnan(euler3[i, f + 1:]).all()


def test_step_size_sweep_leaves_out_a_stepper_the_model_refuses():
    model = build_model({"name": "speconsnet_true_v", "shape": [16], "length": [TWO_PI], "dt": 0.01,
                         "energy": "allen_cahn", "epsilon": 0.1})
    data = travelling_waves()
    ds = step_size_sweep(model, data, samples=[0], factors=(0.5,), horizon=0.02)
    assert ds["stepper"].values.tolist() == ["euler"]
    assert json.loads(ds.attrs["steppers_refused"]) == ["stabilized"]
    # the same model's fixed V: a = 0, b = 1, and its density F(u) - F(0) = (u^4 - 2 u^2) / (4 eps^2)
    order = energy_order(model, data, samples=[0], n_u=11)
    u = order["u"].values
    np.testing.assert_allclose(order["local_density"].values, (u**4 - 2 * u**2) / (4 * 0.1**2), rtol=1e-12,
                               atol=1e-12)
    assert order["a"].item() == 0.0 and abs(order["exponent"].sel(component="gradient").item() - 2) < 1e-10
    sym = operator_symbols(model, system="allen_cahn")
    assert sym["b"].item() == 1.0 and sym["a_over_b"].item() == 0.0


# -- ours: symbols and dissipation -------------------------------------------------------------------------------------
def _set_symbols(model, *, b_m, b_phi_of_k):
    """Set ``m = b_m / b`` on every pair and ``phi(k) = b_phi_of_k(k) / b`` (``W`` only where it is odd)."""
    ops, grid = model.operators, model.grid
    b = float(model.free_energy.b.detach())
    k = torch.as_tensor(grid.full_wavenumbers()[-1])           # 1-D: k; 2-D: kx (enough for these tests)
    with torch.no_grad():
        ops.theta.copy_(torch.full_like(ops.theta, math.sqrt(b_m / b)))
        rep = ops.sign_full > 0
        psi = torch.zeros_like(ops.psi)
        psi[ops.pair_full[rep]] = (b_phi_of_k(k[rep]) / b).to(psi.dtype)
        ops.psi.copy_(psi)


def test_operator_symbols_are_gauge_invariant_and_fit_the_truth():
    for b in (1.0, 2.5):                                     # the same b m and b phi in two gauges
        torch.manual_seed(0)
        model = build_model({"name": "speconsnet", "shape": [16], "length": [TWO_PI], "dt": 0.01, "hidden": 4,
                             "nonlocal_modes": 0, "init_b": b})
        _set_symbols(model, b_m=1.0, b_phi_of_k=lambda k: -k)
        ac = operator_symbols(model, system="allen_cahn")
        np.testing.assert_allclose(ac["b_m"].values, 1.0, rtol=1e-6)
        np.testing.assert_allclose(ac["m"].values, 1.0 / b, rtol=1e-6)
        assert np.all(np.diff(ac["k"].values) > 0) and ac["k"].values.tolist()[:2] == [-8.0, -7.0]
        np.testing.assert_allclose(ac["b_m_fit_coefficient"].item(), 1.0, rtol=1e-6)
        assert ac["b_m_fit_residual"].item() < 1e-6 and "b_phi_fit_coefficient" not in ac   # true b phi = 0
        kdv = operator_symbols(model, system="kdv")
        np.testing.assert_allclose(kdv["b_phi"].values, kdv["true_b_phi"].values, atol=1e-5)
        assert kdv["true_b_phi"].sel(k=-8.0).item() == 0.0  # Nyquist: W's symbol vanishes there
        np.testing.assert_allclose(kdv["b_phi_fit_coefficient"].item(), 1.0, rtol=1e-6)
        assert kdv["b_phi_fit_residual"].item() < 1e-6
    two_d = quadratic_speconsnet(n=8, ndim=2, m=0.5, b=2.0)
    ds = operator_symbols(two_d, system="allen_cahn")
    assert ds["b_m"].dims == ("ky", "kx") and ds["b_m"].shape == (8, 8)
    np.testing.assert_allclose(ds["b_m"].values, 1.0, rtol=1e-6)
    assert np.all(np.diff(ds["kx"].values) > 0) and np.all(np.diff(ds["ky"].values) > 0)


def test_dissipation_matches_the_discrete_energy_rate_for_small_steps():
    model = quadratic_speconsnet(dt=1e-4, stepper="stabilized")
    data = travelling_waves(n_time=3, dt=1e-4)
    ds = dissipation_along_rollout(model, data, samples=[0, 1], n_steps=4)
    d, rate = ds["dissipation"].values, ds["energy_rate"].values
    assert (d > 0).all() and np.isnan(rate[:, -1]).all()
    np.testing.assert_allclose(-rate[:, :-1], d[:, :-1], rtol=0.02)     # dV/dt = -<mu, M mu> + O(dt)
    truth = dissipation_along_rollout(model, data, samples=[0], along="truth")
    assert truth.sizes["step"] == 3 and truth.attrs["along"] == "truth"


# -- files -------------------------------------------------------------------------------------------------------------
def test_netcdf_round_trip_and_byte_identical_rewrite(tmp_path):
    model = quadratic_speconsnet(a=1.0, b=2.0, dt=0.01)
    ds = step_size_sweep(model, travelling_waves(n_time=31, noise=0.3), samples=[0, 1], factors=(1, 3), horizon=0.3)
    a = write_diagnostic(ds, tmp_path / "a" / "sweep.nc")
    b = write_diagnostic(ds, tmp_path / "b" / "sweep.nc")
    assert a.read_bytes() == b.read_bytes()
    back = xr.load_dataset(a)
    xr.testing.assert_equal(back, ds)
    assert back["diverged"].dtype == np.int8 and back["diverged"].attrs["flag_meanings"] == "bounded diverged"
    assert back.attrs["diagnostic"] == "step_size_sweep" and back.attrs["model"] == "speconsnet"
    assert json.loads(back.attrs["config"])["model"]["name"] == "speconsnet"
    with pytest.raises(ValueError, match="diagnostic"):
        write_diagnostic(xr.Dataset(), tmp_path / "c.nc")


def test_diagnostic_file_runs_on_a_saved_run_over_its_test_split(tmp_path):
    data_path = write_netcdf(travelling_waves(n_samples=10), tmp_path / "toy.nc")
    run = tmp_path / "run"
    run.mkdir()
    model = quadratic_speconsnet()
    torch.save(model.state_dict(), run / "weights.pt")
    (run / "model.json").write_text(json.dumps(model.config))
    split = {**split_trajectories(10), "n_samples": 10}
    (run / "split.json").write_text(json.dumps(split))
    outs = [diagnostic_file("energy_along_truth", run_dir=run, data_path=data_path, out_path=tmp_path / d / "e.nc",
                            n_samples=1) for d in ("a", "b")]
    assert outs[0].read_bytes() == outs[1].read_bytes()
    ds = xr.load_dataset(outs[0])
    assert ds["sample"].values.tolist() == sorted(split["test"])[:1]
    assert ds.attrs["run_dir"] == str(run) and ds.attrs["dataset"] == "toy"
    sym = xr.load_dataset(diagnostic_file("operator_symbols", run_dir=run, data_path=data_path,
                                          out_path=tmp_path / "s.nc"))
    assert sym.attrs["system"] == "none" and "true_b_m" not in sym        # no truth known for this data set
    with pytest.raises(ValueError, match="no true energy"):
        diagnostic_file("energy_vs_truth", run_dir=run, data_path=data_path, out_path=tmp_path / "v.nc")


def test_step_size_sweep_with_fewer_energy_evaluations_keeps_values_and_divergence():
    # the same rollouts as in full; V only every ceil(n / 4)-th step and at the last, the error at every step
    model = quadratic_speconsnet(a=1.0, b=2.0, m=1.0, dt=0.01)
    data = travelling_waves(n_time=31, dt=0.01, noise=0.3)
    full = step_size_sweep(model, data, samples=[0, 1], factors=(0.3, 3), horizon=None)
    thin = step_size_sweep(model, data, samples=[0, 1], factors=(0.3, 3), horizon=None, energy_points=4)
    assert full.attrs["horizon"] == pytest.approx(0.3)            # None: the data's whole span
    assert thin.attrs["energy_points"] == 4 and full.attrs["energy_points"] == "every step"
    xr.testing.assert_equal(thin["rel_rmse"].sel(factor=0.3), full["rel_rmse"].sel(factor=0.3))
    n = full["n_steps"].sel(factor=0.3).item()                    # 100 steps: V at 25, 50, 75, 100 only
    stride = math.ceil(n / 4)
    e_full = full["energy"].sel(stepper="euler", factor=0.3).values
    e_thin = thin["energy"].sel(stepper="euler", factor=0.3).values
    evaluated = [0, *[s for s in range(1, n + 1) if s % stride == 0 or s == n]]
    assert evaluated == [0, 25, 50, 75, 100]
    np.testing.assert_array_equal(e_thin[:, evaluated], e_full[:, evaluated])
    assert np.isnan(np.delete(e_thin[:, : n + 1], evaluated, axis=1)).all()
    # the 10-step rollouts at 3 dt_train (n <= energy_points would be every step; here the stride is 3) still
    # diverge, and no later than one stride after the full evaluation says
    first_full = full["diverged_step"].sel(stepper="euler", factor=3).values
    first_thin = thin["diverged_step"].sel(stepper="euler", factor=3).values
    stride3 = math.ceil(full["n_steps"].sel(factor=3).item() / 4)
    assert (first_full > 0).all() and (first_thin >= first_full).all() and (first_thin < first_full + stride3).all()
    for i, f in enumerate(first_full):  # the error is the same up to the divergence
        np.testing.assert_array_equal(thin["rel_rmse"].sel(stepper="euler", factor=3).values[i, : f + 1],
                                      full["rel_rmse"].sel(stepper="euler", factor=3).values[i, : f + 1])
    with pytest.raises(ValueError, match="energy_points"):
        step_size_sweep(model, data, samples=[0], factors=(1,), energy_points=0)


def test_diagnostic_file_exact_and_interpolated_local_derivative_agree(tmp_path):
    data_path = write_netcdf(travelling_waves(n_samples=10, n_time=11, noise=0.1), tmp_path / "toy.nc")
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(3)
    model = build_model({"name": "speconsnet", "shape": [16], "length": [TWO_PI], "dt": 0.01, "hidden": 8,
                         "nonlocal_modes": 0, "local_derivative": "interpolant"})
    torch.save(model.state_dict(), run / "weights.pt")
    (run / "model.json").write_text(json.dumps(model.config))
    (run / "split.json").write_text(json.dumps({**split_trajectories(10), "n_samples": 10}))
    out = {mode: xr.load_dataset(diagnostic_file("energy_change_vs_dt", run_dir=run, data_path=data_path,
                                                 out_path=tmp_path / f"{mode}.nc", n_samples=1, n_dt=2,
                                                 local_derivative=mode))
           for mode in ("exact", "interpolant")}
    assert out["exact"].attrs["local_derivative"] == "exact"
    assert out["interpolant"].attrs["local_derivative"] == "interpolant"
    a, b = out["exact"]["energy_change"].values, out["interpolant"]["energy_change"].values
    assert np.isfinite(a).any() and np.abs(a[np.isfinite(a)]).max() > 0
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12 * np.nanmax(np.abs(a)))
    with pytest.raises(ValueError, match="local_derivative"):
        diagnostic_file("operator_symbols", run_dir=run, data_path=None, out_path=tmp_path / "s.nc",
                        local_derivative="fast")


def test_spectral_extent_and_a_symbol_fit_over_the_modes_the_data_excite(tmp_path):
    # two modes, |k| = 2 with amplitude 1 and |k| = 5 with amplitude 0.1: energies 1 : 0.01
    x = np.arange(32) * TWO_PI / 32
    u = (np.sin(2 * x) + 0.1 * np.cos(5 * x))[None, None, :] * np.ones((3, 4, 1))
    data = xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": np.arange(4) * 0.01, "x": x},
                      attrs={"dataset": "toy"})
    assert spectral_extent(data, samples=[0, 1], fraction=0.98) == 2.0
    assert spectral_extent(data, samples=[0, 1], fraction=0.999) == 5.0
    two_d = fields_2d(n=8)                                    # plane waves up to |k| = sqrt(5)
    assert spectral_extent(two_d, samples=[0], fraction=1.0) == pytest.approx(math.sqrt(5))
    # diagnostic_file: k_max_fit "99%" fits b m over |k| <= 2 only
    data_path = write_netcdf(travelling_waves(n_samples=10, max_k=2), tmp_path / "toy.nc")
    run = tmp_path / "run"
    run.mkdir()
    model = quadratic_speconsnet()
    torch.save(model.state_dict(), run / "weights.pt")
    (run / "model.json").write_text(json.dumps(model.config))
    (run / "split.json").write_text(json.dumps({**split_trajectories(10), "n_samples": 10}))
    ds = xr.load_dataset(diagnostic_file("operator_symbols", run_dir=run, data_path=data_path,
                                         out_path=tmp_path / "s.nc", system="allen_cahn", k_max_fit="99%"))
    assert ds.attrs["k_max_fit"] == pytest.approx(2.0) and "99%" in ds.attrs["k_max_fit_rule"]
    with pytest.raises(ValueError, match="share of the spectral energy"):
        diagnostic_file("operator_symbols", run_dir=run, data_path=data_path, out_path=tmp_path / "t.nc",
                        k_max_fit="most")
