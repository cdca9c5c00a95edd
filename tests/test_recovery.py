"""Recovery of known physics: SpecOnsNet trained (with :func:`mesodyn.training.fit`) on small PDE data sets.

Data: 24 trajectories on a 64-point periodic grid, made with :mod:`mesodyn.continuum`'s solvers. Models use
the gauge ``b = 1`` so that learned and true quantities are directly comparable.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from mesodyn.continuum.solvers import solve_allen_cahn, solve_gkdv
from mesodyn.onsager import fit_affine, gauge_invariant_symbols
from mesodyn.training import TrainConfig, fit, load_model

N, LENGTH, N_TRAJ = 64, 2 * np.pi, 24
X = LENGTH * np.arange(N) / N
K = np.fft.fftfreq(N, 1.0 / N)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def sine_fields(seed, max_k, n_modes):
    rng = np.random.default_rng(seed)
    u = np.zeros((N_TRAJ, N))
    for s in range(N_TRAJ):
        for k in rng.choice(np.arange(1, max_k + 1), n_modes, replace=False):
            u[s] += rng.uniform() * np.sin(k * X + rng.uniform(0, 2 * np.pi))
    return u


def as_dataset(u, times):
    return xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": times, "x": X})


def train(data, tmp_path, *, lr, epochs, init_m_cap=0.1):
    model_config = {"name": "speconsnet", "stepper": "euler", "operators": "both", "gauge": "unit_b",
                    "hidden": 32, "nonlocal_modes": 0, "init_m_cap": init_m_cap}
    settings = TrainConfig(window=6, rollout_steps=3, batch_size=16, lr=lr, lr_patience=100, max_epochs=epochs,
                           valid_every=50, early_stopping=20, seed=0, split_seed=0, device="cpu")
    result = fit(data, model_config=model_config, train=settings, out_dir=tmp_path, progress=False)
    return load_model(tmp_path).double(), result


def spectral_derivative(u, order):
    return np.real(np.fft.ifft((1j * K) ** order * np.fft.fft(u, axis=-1), axis=-1))


@pytest.mark.slow
def test_allen_cahn_learned_energy_is_affine_in_the_true_energy(tmp_path):
    eps = 0.25
    u0 = sine_fields(0, 4, 3)
    lo, hi = u0.min(axis=1, keepdims=True), u0.max(axis=1, keepdims=True)
    u0 = 2 * (u0 - lo) / (hi - lo) - 1
    times = 1e-3 * np.arange(21)
    u = solve_allen_cahn(u0, epsilon=eps, times=times, dt=1e-4, workers=1)
    # uniform start m(k) = 1: on this 64-point grid one Euler step of dt = 1e-3 is stable for every mode
    # (dt (a + b k²) <= 1.03), so the Euler-stability cap of the default start is not needed
    model, result = train(as_dataset(u, times), tmp_path, lr=3e-3, epochs=300, init_m_cap=None)

    snapshots = u[result.split["test"] + result.split["valid"]].reshape(-1, N)
    with torch.no_grad():
        learned = model.energy(torch.as_tensor(snapshots))["total"].numpy()
    true = (LENGTH / N) * np.sum(0.5 * spectral_derivative(snapshots, 1) ** 2
                                 + (snapshots**2 - 1) ** 2 / (4 * eps**2), axis=-1)
    line = fit_affine(learned, true)
    assert line["pearson_r"] >= 0.99, line
    # In the b = 1 gauge the true factorization has M = I: slope 1 and b*m(k) = 1 on the excited modes.
    assert line["slope"] == pytest.approx(1.0, abs=0.1), line
    symbols = gauge_invariant_symbols(model)
    assert np.allclose(symbols["b_m"][:9], 1.0, atol=0.15), symbols["b_m"][:9]
    assert np.abs(symbols["b_phi"][:9]).max() < 0.05


@pytest.mark.slow
def test_kdv_learned_operator_is_conservative_with_the_kdv_dispersion(tmp_path):
    u0 = sine_fields(1, 6, 3)
    u0 /= u0.std(axis=1, keepdims=True)
    times = 2e-4 * np.arange(21)
    u = solve_gkdv(u0, length=LENGTH, nonlinear=6.0, power=1, dispersion=1.0, times=times, dt=2e-5, workers=1)
    model, result = train(as_dataset(u, times), tmp_path, lr=3e-2, epochs=600)

    snapshots = torch.as_tensor(u[result.split["test"] + result.split["valid"]].reshape(-1, N))
    with torch.no_grad():
        mu = model.mu(snapshots)
        m, phi = model.operators.symbols()
        mu_hat = torch.fft.rfft(mu)
        m_mu = torch.fft.irfft(m * mu_hat, n=N)
        w_mu = torch.fft.irfft(1j * phi * mu_hat, n=N)
    # Dominated by W: the dissipative part of the learned vector field is a few per cent of the conservative.
    assert float(m_mu.norm() / w_mu.norm()) < 0.1
    # The gauge-invariant linear dispersion relation omega(k) = b*phi(k) * (a/b + F''(0)/b + k^2) of the
    # learned model matches KdV's -k^3 on the excited modes, and the W symbol is odd with the sign of -d/dx.
    symbols = gauge_invariant_symbols(model)
    f = model.free_energy.local
    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (curvature,) = torch.autograd.grad(f.derivative(zero).sum(), zero)
    k = np.arange(1, 7)
    omega = symbols["b_phi"][k] * (symbols["a_over_b"] + float(curvature) / symbols["b"] + k**2)
    # (k = 1 carries the least dispersion; the tolerance is 1 % of the largest frequency plus 5 %.)
    assert np.allclose(omega, -(k**3.0), rtol=0.05, atol=0.01 * k.max() ** 3), (omega, -(k**3.0))
    assert np.all(symbols["b_phi"][k] < 0)
    assert np.allclose(symbols["b_phi"][-k], -symbols["b_phi"][k])
