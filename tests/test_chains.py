"""Chain simulators: reproduction of the paper's data, Verlet properties, exact solutions, determinism."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.special import jv

from mesodyn.chains import FENEChain, FPUTChain, draw_sine_modes, initial_state, simulate_ensemble
from mesodyn.chains.data import fields_dataset
from mesodyn.chains.simulate import integrate, strain_of


@pytest.mark.parametrize("name, model", [("fput", FPUTChain()), ("fene", FENEChain())])
def test_reproduces_reference_bit_level(reference, name, model):
    """Seed 0 and the paper's parameters give the authors' first 8 trajectories to 1e-9 (u and u_chain)."""
    ref = reference(name)
    n = ref.sizes["sample"]
    ens = simulate_ensemble(model, n_samples=n, seed=0, progress=False)
    ds = fields_dataset(ens)
    np.testing.assert_array_equal(ds.ic_k.values, ref.ic_k.values)
    np.testing.assert_allclose(ds.ic_amplitude.values, ref.ic_amp.values, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds.ic_phase.values, ref.ic_phase.values, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    np.testing.assert_array_equal(ds.t_lab.values, ref.t_lab.values)
    np.testing.assert_allclose(ds.x.values, ref.x.values, rtol=0, atol=1e-15)
    assert np.abs(ds.u_chain.values - ref.u_chain.values).max() < 1e-9
    assert np.abs(ds.u.values - ref.u.values).max() < 1e-9
    np.testing.assert_array_equal(ds.rng_trial.values, ref.rng_trial.values)
    assert ds.attrs["substeps_effective"] == ref.attrs["chain_substeps_eff"]
    assert ds.attrs["dt_chain"] == ref.attrs["dt_chain"]
    if name == "fene":
        np.testing.assert_allclose(ds.r_max_over_R.values, ref.r_max_over_R.values, rtol=1e-9)


def _energy_error(model, x0, v0, dt, t_end, save_every=1):
    """Max relative energy error along the run, per sample."""
    xs, vs = integrate(model, x0, v0, dt=dt, n_steps=int(round(t_end / dt)), save_every=save_every)
    energy = model.hamiltonian(xs, vs)
    return (np.abs(energy - energy[:, :1]) / np.abs(energy[:, :1])).max(axis=1)


@pytest.mark.parametrize("model, amp", [(FPUTChain(alpha=1.0, beta=0.5), 40.0), (FENEChain(), 5.0)])
def test_verlet_energy_bounded_and_second_order(model, amp):
    """Velocity Verlet's energy error is O(dt²) and stays so over 25× longer runs: bounded, no drift."""
    draws = draw_sine_modes(np.random.default_rng(3), 2)
    x0, v0 = initial_state(model, draws)
    x0, v0 = x0 * amp, v0 * amp  # a strongly nonlinear wave (FENE: max |r|/R ≈ 0.6), so the error is visible
    errs = np.array([_energy_error(model, x0, v0, dt, 200.0, save_every=round(0.2 / dt)) for dt in (0.2, 0.1, 0.05)])
    orders = np.log2(errs[:-1] / errs[1:])
    assert np.all(orders > 1.85) and np.all(orders < 2.15), (errs, orders)
    # A drifting (non-symplectic or round-off dominated) scheme would lose the dt² scaling over long runs.
    long = np.array([_energy_error(model, x0, v0, dt, 5000.0, save_every=round(2 / dt)) for dt in (0.1, 0.05)])
    assert np.all(long < 1e-3), long
    assert np.all(np.log2(long[0] / long[1]) > 1.8), long


def test_harmonic_chain_matches_bessel_solution():
    """Harmonic chain (α = β = 0), unit momentum kick at site 0: p_n(t) = J_{2n}(2t) on the infinite chain."""
    model = FPUTChain(n_sites=256, alpha=0.0, beta=0.0)
    n = model.n_sites
    # strain form: r_n = q_{n+1} - q_n, so dr_n/dt = p_{n+1} - p_n; the kick p_0 = 1 gives v_{-1} = 1, v_0 = -1
    r0 = np.zeros(n)
    v0 = np.zeros(n)
    v0[-1], v0[0] = 1.0, -1.0
    sites = np.arange(n)
    sites = np.where(sites < n // 2, sites, sites - n)
    errs = []
    for dt in (0.02, 0.01):
        xs, vs = integrate(model, r0, v0, dt=dt, n_steps=int(round(30.0 / dt)), save_every=int(round(30.0 / dt)))
        exact = jv(2 * (sites + 1), 60.0) - jv(2 * sites, 60.0)
        errs.append(np.abs(vs[0, -1] - exact).max())
    assert errs[1] < 5e-4  # |v| reaches about 0.3
    assert 3.5 < errs[0] / errs[1] < 4.5  # second order in dt


def test_fput_substep_convergence_is_second_order():
    """The paper's step is not converged; refining substeps converges at second order (Richardson)."""
    draws = draw_sine_modes(np.random.default_rng(0), 2)
    fields = {}
    for sub in (50, 100, 200, 400):
        model = FPUTChain(substeps=sub, t_final=0.05, save_every=50)
        x0, v0 = initial_state(model, draws)
        xs, _ = integrate(model, x0, v0, dt=model.dt_chain, n_steps=model.n_slow_steps * sub,
                          save_every=model.n_slow_steps * sub)
        fields[sub] = xs[:, -1] / model.epsilon**2
    d1 = np.abs(fields[50] - fields[100]).max()
    d2 = np.abs(fields[100] - fields[200]).max()
    d3 = np.abs(fields[200] - fields[400]).max()
    assert 3.5 < d1 / d2 < 4.5 and 3.5 < d2 / d3 < 4.5, (d1, d2, d3)


def test_result_independent_of_thread_count():
    model = FENEChain(t_final=0.01, save_every=5)
    runs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        runs.append(simulate_ensemble(model, n_samples=5, seed=11, progress=False).state)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_batches_reproduce_one_by_one_acceptance():
    """Rejected trials are replaced by the next draws of the stream, whatever the batch size."""
    model = FPUTChain(t_final=0.02, save_every=10, u_bound=2.2)  # a tight bound: some trials are rejected
    full = simulate_ensemble(model, n_samples=6, seed=0, progress=False)
    batched = simulate_ensemble(model, n_samples=6, seed=0, progress=False, batch_size=2)
    assert full.n_trials > 6  # rejections happened
    np.testing.assert_array_equal(full.trial, batched.trial)
    np.testing.assert_array_equal(full.state, batched.state)
    assert np.all(full.peak / model.epsilon**2 <= 2.2)


def test_fene_displacement_strain_and_zero_mean():
    model = FENEChain()
    draws = draw_sine_modes(np.random.default_rng(1), 3)
    q, p = initial_state(model, draws)
    np.testing.assert_allclose(q.mean(axis=1), 0, atol=1e-15)
    r = strain_of(model, q)
    from mesodyn.chains import sine_field

    expected = model.epsilon**2 * sine_field(draws, model.epsilon * np.arange(model.n_sites))
    assert np.abs(r - expected).max() / model.epsilon**2 < 1e-12


@pytest.mark.parametrize("kwargs, match", [
    ({"n_sites": 2}, "n_sites"),
    ({"dt_slow": -1.0}, "dt_slow"),
    ({"substeps": 0}, "substeps"),
    ({"n_modes": 7}, "n_modes"),
    ({"t_final": 1.0, "save_every": 7}, "save_every"),
])
def test_bad_parameters_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FPUTChain(**kwargs)
