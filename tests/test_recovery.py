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


def train(data, tmp_path, *, lr, epochs, init_m_cap=0.1, hidden=32):
    model_config = {"name": "speconsnet", "stepper": "euler", "operators": "both", "gauge": "unit_b",
                    "hidden": hidden, "nonlocal_modes": 0, "init_m_cap": init_m_cap}
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
def test_kdv_learned_operator_is_conservative_and_proportional_to_d_dx(tmp_path):
    """KdV ``u_t + 6 u u_x + u_xxx = 0`` is ``u_t = -W dV/du`` with ``W = -d/dx`` (``b phi(k) = -k``), ``M = 0``
    and ``V = int 1/2 u_x^2 - u^3`` in the ``b = 1`` gauge.

    The linear dynamics alone only fix ``b phi(k) (A + k^2) = -k^3`` (``A = a/b + F''(0)/b``), which every
    ``phi(k) = -k^3 / (A + k^2)`` satisfies; only the nonlinear term ``6 u u_x = d/dx (3 u^2)`` pins ``W`` to
    ``d/dx``. The data are therefore strongly nonlinear: amplitude 3 (std) on modes 1..6, so that ``6 u u_x``
    dominates the low modes and excites the harmonics 7..10 (each 0.2-0.4 % of the energy; modes 1..10 hold
    all but 0.1 %). With amplitude 1 the fit stalls on such a member (600 epochs at lr 3e-2, hidden 32:
    ``A ~ 44``, ``b phi(k)/k`` from -0.05 at k = 1 to -0.67 at k = 10; the settings below: ``A ~ 17``,
    ``b phi(1) = -0.14``). With amplitude 3 the nonlinear term drives the fit to ``A`` below 1 and
    ``b phi(k)/k`` within 4 % of -1 in 1000 epochs at lr 6e-2 (after 500 or 700 epochs it is not yet flat:
    -0.72 .. -0.96, -0.84 .. -0.98).
    """
    u0 = sine_fields(1, 6, 3)
    u0 *= 3.0 / u0.std(axis=1, keepdims=True)
    times = 2e-4 * np.arange(21)
    u = solve_gkdv(u0, length=LENGTH, nonlinear=6.0, power=1, dispersion=1.0, times=times, dt=2e-5, workers=1)
    model, result = train(as_dataset(u, times), tmp_path, lr=6e-2, epochs=1000, hidden=16)

    snapshots = u[result.split["test"] + result.split["valid"]].reshape(-1, N)
    with torch.no_grad():
        mu = model.mu(torch.as_tensor(snapshots))
        m, phi = model.operators.symbols()
        mu_hat = torch.fft.rfft(mu)
        m_mu = torch.fft.irfft(m * mu_hat, n=N)
        w_mu = torch.fft.irfft(1j * phi * mu_hat, n=N)
        energy = model.energy(torch.as_tensor(snapshots))
    # Dominated by W: the dissipative part of the learned vector field is a few per cent of the conservative
    # one (what remains of M mostly offsets the amplification |1 + i omega dt| > 1 of the explicit Euler step
    # on the fast modes; measured 0.06).
    assert float(m_mu.norm() / w_mu.norm()) < 0.1

    # W is -d/dx in the b = 1 gauge: b*phi(k)/k = -1 on the modes that carry the data (1..6) and on the
    # nonlinear harmonics (7..10), flat within 10 % (measured -0.96 .. -1.00).
    symbols = gauge_invariant_symbols(model)
    k = np.arange(1, 11)
    ratio = symbols["b_phi"][k] / k
    assert np.allclose(ratio, -1.0, atol=0.1), ratio
    assert ratio.max() / ratio.min() > 0.9, ratio  # both negative: max/min = smallest/largest magnitude
    assert np.allclose(symbols["b_phi"][-k], -symbols["b_phi"][k])

    # The learned non-gradient part of V, int a/2 u^2 + F(u), is int -u^3 up to an affine map with slope 1
    # (b = 1 fixes the scale; int u = 0 on these data hides a linear term of F).
    gradient_part = (LENGTH / N) * np.sum(0.5 * spectral_derivative(snapshots, 1) ** 2, axis=-1)
    learned = energy["total"].numpy() - gradient_part
    line = fit_affine(learned, (LENGTH / N) * np.sum(-(snapshots**3), axis=-1))
    assert line["pearson_r"] >= 0.999, line
    assert line["slope"] == pytest.approx(1.0, abs=0.05), line

    # The gauge-invariant linear dispersion relation omega(k) = b*phi(k) * (a/b + F''(0)/b + k^2) of the
    # learned model matches KdV's -k^3 on the modes 1..6.
    f = model.free_energy.local
    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (curvature,) = torch.autograd.grad(f.derivative(zero).sum(), zero)
    k = np.arange(1, 7)
    omega = symbols["b_phi"][k] * (symbols["a_over_b"] + float(curvature) / symbols["b"] + k**2)
    # (k = 1 carries the least dispersion; the tolerance is 1 % of the largest frequency plus 5 %.)
    assert np.allclose(omega, -(k**3.0), rtol=0.05, atol=0.01 * k.max() ** 3), (omega, -(k**3.0))
