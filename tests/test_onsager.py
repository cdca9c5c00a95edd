"""Mathematical properties of the Onsager hypothesis class, for random parameters and random fields."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mesodyn.onsager import (
    STEPPERS,
    SpecOnsNet,
    energy_check,
    fit_affine,
    gauge_invariant_symbols,
    grid_from_coordinates,
    model_config,
)
from mesodyn.models import build_model
from mesodyn.onsager.energy import SILU_D1_BOUND, SILU_D2_BOUND
from mesodyn.onsager.operators import mode_pairs
from mesodyn.onsager.steppers import stabilized_step

SHAPES = [(7,), (8,), (12,), (15,), (4, 6), (5, 7), (6, 5), (8, 8)]
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def random_model(shape, seed, *, operators="both", conserved=False, scale=1.0, nonlocal_modes=3,
                 gauge="none", hidden=16):
    """A float64 model whose every parameter is drawn at random (not just the default initialization)."""
    torch.manual_seed(seed)
    length = tuple(2 * np.pi * (1 + 0.5 * i) for i in range(len(shape)))
    model = SpecOnsNet(shape=shape, length=length, dt=1e-3, operators=operators, conserved=conserved,
                       hidden=hidden, nonlocal_modes=nonlocal_modes, gauge=gauge).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def random_field(shape, seed, batch=3, amplitude=1.0):
    gen = torch.Generator().manual_seed(seed + 7)
    return amplitude * torch.randn((batch, *shape), generator=gen, dtype=torch.float64)


def dense(apply, n_points, shape):
    basis = torch.eye(n_points, dtype=torch.float64).reshape(n_points, *shape)
    return apply(basis).reshape(n_points, n_points).T  # column j = image of e_j


# --- operators ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_mode_pairs_are_an_involution(shape):
    pair, sign, n_pairs = mode_pairs(shape)
    flipped_pair = pair[np.ix_(*[(-np.arange(n)) % n for n in shape])]
    flipped_sign = sign[np.ix_(*[(-np.arange(n)) % n for n in shape])]
    assert np.array_equal(flipped_pair, pair)
    assert np.array_equal(flipped_sign, -sign)
    assert sign[(0,) * len(shape)] == 0
    assert n_pairs == (np.prod(shape) + np.sum(sign == 0)) // 2


@PROPERTY
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 10_000), conserved=st.booleans())
def test_assembled_m_is_symmetric_psd_and_w_antisymmetric(shape, seed, conserved):
    model = random_model(shape, seed, conserved=conserved)
    n = model.grid.n_points
    m_full, phi_full = (s.detach().numpy() for s in model.operators.symbols(full=True))
    # Hermitian consistency of the full-grid symbols, checked directly.
    flip = np.ix_(*[(-np.arange(k)) % k for k in shape])
    assert np.array_equal(m_full[flip], m_full) and (m_full >= 0).all()
    assert np.array_equal(phi_full[flip], -phi_full)
    # Dense matrices through the full complex FFT: nothing can hide in a discarded imaginary part.
    symbol = torch.complex(torch.as_tensor(m_full), torch.as_tensor(phi_full))
    dims = tuple(range(-len(shape), 0))

    def full_apply(sym):
        return lambda u: torch.fft.ifftn(sym * torch.fft.fftn(u, dim=dims), dim=dims)

    m_mat = dense(full_apply(symbol.real + 0j), n, shape)
    w_mat = dense(full_apply(1j * symbol.imag), n, shape)
    scale = 1.0 + np.abs(m_full).max() + np.abs(phi_full).max()
    assert torch.abs(m_mat.imag).max() < 1e-12 * scale and torch.abs(w_mat.imag).max() < 1e-12 * scale
    m_mat, w_mat = m_mat.real, w_mat.real
    assert torch.allclose(m_mat, m_mat.T, atol=1e-12 * scale, rtol=0)
    assert torch.allclose(w_mat, -w_mat.T, atol=1e-12 * scale, rtol=0)
    assert torch.linalg.eigvalsh(0.5 * (m_mat + m_mat.T)).min() > -1e-12 * scale
    # The model's own (rfft) path assembles the same operator M + W.
    with torch.no_grad():
        model_mat = dense(model.operators.apply, n, shape)
    assert torch.allclose(model_mat, m_mat + w_mat, atol=1e-12 * scale, rtol=0)
    if conserved:
        assert torch.allclose(m_mat.sum(dim=0), torch.zeros(n, dtype=torch.float64), atol=1e-12 * scale)


def test_w_only_and_m_only_variants():
    for operators, has_m, has_w in (("M", True, False), ("W", False, True)):
        model = random_model((8,), 3, operators=operators)
        m, phi = model.operators.symbols(full=True)
        assert bool((m != 0).any()) == has_m and bool((phi != 0).any()) == has_w


# --- energy ------------------------------------------------------------------------------------------------


def test_silu_derivative_bounds_hold():
    z = torch.linspace(-40, 40, 800_001, dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(torch.nn.functional.silu(z).sum(), z, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), z)
    assert d1.abs().max() <= SILU_D1_BOUND and d1.abs().max() > 1.09
    assert d2.abs().max() <= SILU_D2_BOUND + 1e-12 and d2.abs().max() > 0.4999


@PROPERTY
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 10_000), amplitude=st.sampled_from([0.1, 1.0, 30.0]))
def test_energy_is_bounded_below_by_the_stated_constant(shape, seed, amplitude):
    model = random_model(shape, seed, scale=2.0)
    u = random_field(shape, seed, amplitude=amplitude)
    with torch.no_grad():
        parts = model.energy(u)
        bound = model.energy_lower_bound()
        a = model.free_energy.a
        coercive = 0.5 * a * model.grid.inner(u, u) - bound
    assert torch.allclose(parts["total"], parts["quadratic"] + parts["local"] + parts["nonlocal"])
    assert (parts["nonlocal"] >= 0).all() and (parts["quadratic"] >= 0).all()
    assert (parts["total"] >= coercive - 1e-9 * (1 + coercive.abs())).all()
    assert (parts["total"] >= -bound).all()


@PROPERTY
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 10_000))
def test_mu_matches_finite_difference_of_v(shape, seed):
    model = random_model(shape, seed, nonlocal_modes=16)
    u = random_field(shape, seed)
    v = random_field(shape, seed + 1)
    eps = 1e-5
    with torch.no_grad():
        mu = model.mu(u)
        fd = (model.energy(u + eps * v)["total"] - model.energy(u - eps * v)["total"]) / (2 * eps)
        directional = model.grid.inner(mu, v)
    scale = 1 + directional.abs()
    assert torch.allclose(fd, directional, atol=1e-6 * scale.max(), rtol=1e-6)
    # and the whole gradient, in the grid inner product, from autograd of V
    uu = u.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.energy(uu)["total"].sum(), uu)
    assert torch.allclose(grad / model.grid.cell_volume, mu, atol=1e-9 * (1 + mu.abs().max()), rtol=0)


def test_closed_form_derivative_of_f_matches_autograd():
    model = random_model((8,), 5, hidden=64)
    u = torch.linspace(-6, 6, 2001, dtype=torch.float64, requires_grad=True)
    f = model.free_energy.local
    (auto,) = torch.autograd.grad(f(u).sum(), u)
    assert torch.allclose(f.derivative(u.detach()), auto, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curvature_bounds_dominate_sampled_second_derivatives(seed):
    model = random_model((6, 5), seed, nonlocal_modes=16, scale=1.5)
    f = model.free_energy.local
    u = torch.linspace(-30, 30, 20001, dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(f(u).sum(), u, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), u)
    assert d2.abs().max() <= f.curvature_bound()
    # V_nl: the Hessian in the grid inner product is (1/h) * Euclidean Hessian; check its norm
    nl = model.free_energy.nonlocal_part
    x = random_field((6, 5), seed, batch=1)
    hess = torch.autograd.functional.hessian(lambda y: nl(y.reshape(1, 6, 5)).sum(), x.reshape(-1))
    l2_hess = hess / model.grid.cell_volume
    assert torch.linalg.eigvalsh(l2_hess).abs().max() <= nl.curvature_bound()


@pytest.mark.parametrize("shape", [(7,), (8,), (20,), (5, 7), (6, 8), (40, 36)])
def test_nonlocal_feature_map_has_norm_at_most_one_over_n(shape):
    """The premise of the V_nl curvature bound: ||P||^2 <= 1/N for the feature map c = P u."""
    model = random_model(shape, 0, nonlocal_modes=16)
    n = model.grid.n_points
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    p = model.free_energy.nonlocal_part.features(basis).T  # (features, N)
    assert torch.linalg.matrix_norm(p, ord=2) ** 2 <= (1 + 1e-12) / n


# --- dynamics ----------------------------------------------------------------------------------------------


@PROPERTY
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 10_000),
       operators=st.sampled_from(["both", "M", "W"]), conserved=st.booleans())
def test_continuous_time_dissipation(shape, seed, operators, conserved):
    model = random_model(shape, seed, operators=operators, conserved=conserved)
    u = random_field(shape, seed)
    with torch.no_grad():
        mu = model.mu(u)
        rate = model.grid.inner(mu, model(u))
        dissipation = model.dissipation_rate(u)
    scale = 1e-10 * (1 + model.grid.inner(mu, mu))
    assert (rate <= scale).all()
    assert torch.allclose(rate, dissipation, atol=scale.max().item(), rtol=1e-9)
    if operators == "W":
        assert (rate.abs() <= scale).all()


@PROPERTY
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 10_000),
       log_dt=st.floats(math.log10(1e-4), 1.0), operators=st.sampled_from(["both", "M", "W"]),
       amplitude=st.sampled_from([0.3, 3.0]))
def test_stabilized_step_never_increases_energy(shape, seed, log_dt, operators, amplitude):
    """The theorem (S = L/2, no energy check inside the step) and the adaptive stepper built on it."""
    model = random_model(shape, seed, operators=operators, nonlocal_modes=16, scale=1.5)
    u0 = random_field(shape, seed, amplitude=amplitude)
    dt = 10.0**log_dt
    for adaptive in (False, True):
        u = u0
        for _ in range(3):
            with torch.no_grad():
                before = model.energy(u)["total"]
                u = stabilized_step(model, u, dt, adaptive=adaptive)
                after = model.energy(u)["total"]
            assert (after - before <= 1e-11 * (1 + before.abs())).all(), (adaptive, before, after)


@pytest.mark.parametrize("dt", [1e-4, 1e-2, 1.0, 10.0])
def test_conservative_member_stays_bounded(dt):
    """M = 0: V is non-increasing, hence ||u||^2 <= 2 (V(u0) + C) / a along the whole rollout."""
    model = random_model((16,), 11, operators="W", nonlocal_modes=16, scale=1.5)
    u0 = random_field((16,), 11, amplitude=2.0)
    with torch.no_grad():
        traj = model.rollout(u0, 50, dt=dt, stepper="stabilized")
        flat = traj.reshape(-1, 16)
        energies = model.energy(flat)["total"].reshape(traj.shape[:2])
        bound = 2 * (energies[:, :1] + model.energy_lower_bound()) / model.free_energy.a
        norms = model.grid.inner(flat, flat).reshape(traj.shape[:2])
    assert torch.isfinite(traj).all()
    assert (torch.diff(energies, dim=1) <= 1e-10 * (1 + energies[:, :-1].abs())).all()
    assert (norms <= bound * (1 + 1e-10)).all()
    assert (norms[:, -1] > 1e-3 * norms[:, 0]).all()  # bounded by conservation, not by decay to zero


def test_explicit_euler_and_plain_sbdf1_are_not_energy_stable_at_large_dt():
    """The guarantee is not vacuous: the paper's steps increase V on members where ours does not."""
    model = random_model((16,), 4, operators="both", scale=1.5, nonlocal_modes=16)
    u = random_field((16,), 4, batch=8, amplitude=2.0)
    for stepper in ("euler", "sbdf1"):
        assert not energy_check(model, u, dt=10.0, stepper=stepper)["ok"].all(), stepper
    assert energy_check(model, u, dt=10.0, stepper="stabilized")["ok"].all()


def test_adaptive_stabilization_equals_sbdf1_where_sbdf1_dissipates():
    model = random_model((16,), 9, operators="M", scale=0.3)
    u = random_field((16,), 9, batch=4, amplitude=0.5)
    with torch.no_grad():
        plain = model.step(u, dt=1e-4, stepper="sbdf1")
        assert (model.energy(plain)["total"] <= model.energy(u)["total"]).all()
        assert torch.allclose(model.step(u, dt=1e-4, stepper="stabilized"), plain, rtol=0, atol=1e-14)


@pytest.mark.parametrize("stepper", [s for s in STEPPERS if s not in ("avf", "etdrk2")])
def test_steppers_converge_at_first_order(stepper):
    """Consistent first-order schemes: successive differences at dt, dt/2, dt/4 shrink by a factor 2 (the
    second-order ``avf`` and ``etdrk2`` are tested in test_onsager_avf.py and test_onsager_exponential.py)."""
    model = random_model((12,), 2, scale=0.5)
    with torch.no_grad():
        model.operators.theta.mul_(0.3)
    u0 = random_field((12,), 2, batch=2, amplitude=0.5)
    horizon = 0.02
    with torch.no_grad():
        finals = [model.rollout(u0, n, dt=horizon / n, stepper=stepper)[:, -1] for n in (32, 64, 128)]
    d1, d2 = float((finals[0] - finals[1]).norm()), float((finals[1] - finals[2]).norm())
    assert 1.8 < d1 / d2 < 2.2, (d1, d2)


# --- configuration, gauge, persistence --------------------------------------------------------------------


def test_config_round_trip_rebuilds_an_identical_model_and_weights_load_safely():
    model = SpecOnsNet(shape=(6, 8), length=(2.0, 3.0), dt=0.01, stepper="stabilized", operators="both",
                       conserved=True, gauge="unit_b", nonlocal_modes=4, hidden=8)
    config = json.loads(json.dumps(model.config))
    assert config["name"] == "speconsnet" and config == model_config(**config)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = build_model(config)
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    u = torch.randn(2, 6, 8)
    with torch.no_grad():
        assert torch.equal(clone.step(u), model.step(u))
        assert torch.equal(clone.rollout(u, 3), model.rollout(u, 3))
    assert clone.rollout(u, 3).shape == (2, 4, 6, 8)


@pytest.mark.parametrize("bad, word", [({"stepper": "rk4"}, "stepper"), ({"operators": "X"}, "operators"),
                                       ({"dt": -1.0}, "dt"), ({"length": [1.0, 2.0]}, "length"),
                                       ({"gauge": "c"}, "gauge"), ({"color": 1}, "color"),
                                       ({"name": "nope"}, "name")])
def test_bad_options_raise_one_clear_sentence(bad, word):
    options = {"shape": [8], "length": [1.0], "dt": 0.1} | bad
    with pytest.raises(ValueError, match=word):
        model_config(**options)
    with pytest.raises(ValueError, match=word):
        build_model({"name": "speconsnet"} | options)


def test_model_rejects_fields_of_the_wrong_grid():
    model = SpecOnsNet(shape=(8,), length=(1.0,), dt=0.1)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(2, 9))


def test_grid_from_coordinates_reads_the_period_from_the_data():
    x = np.arange(256) * (2 * np.pi / 256)
    y = np.arange(6) * 0.5
    assert grid_from_coordinates(x) == {"shape": [256], "length": [pytest.approx(2 * np.pi)]}
    assert grid_from_coordinates(y, x)["shape"] == [6, 256]
    assert grid_from_coordinates(y, x)["length"][0] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="uniform"):
        grid_from_coordinates(np.array([0.0, 1.0, 3.0]))


def test_gauge_transformation_leaves_dynamics_and_invariants_unchanged():
    """(M, W, V) -> (M/c, W/c, cV): same vector field, same b*m and b*phi; V changes affinely (slope c)."""
    model = random_model((10,), 8, nonlocal_modes=4)
    c = 3.7
    other = build_model(model.config).double()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.operators.theta.div_(math.sqrt(c))
        other.operators.psi.div_(c)
        fe, ofe = model.free_energy, other.free_energy
        ofe.raw_a.copy_(torch.log(torch.expm1(c * fe.a)))
        ofe.raw_b.copy_(torch.log(torch.expm1(c * fe.b)))
        ofe.local.out.weight.mul_(c)
        ofe.nonlocal_part.v.mul_(math.sqrt(c))
        u = random_field((10,), 8, batch=20)
        assert torch.allclose(model(u), other(u), rtol=1e-9, atol=1e-9)
        fit = fit_affine(other.energy(u)["total"].numpy(), model.energy(u)["total"].numpy())
    assert fit["slope"] == pytest.approx(c, rel=1e-9) and fit["pearson_r"] == pytest.approx(1.0, abs=1e-12)
    s1, s2 = gauge_invariant_symbols(model), gauge_invariant_symbols(other)
    assert np.allclose(s1["b_m"], s2["b_m"], rtol=1e-9) and np.allclose(s1["b_phi"], s2["b_phi"], rtol=1e-9)


def test_unit_b_gauge_fixes_b():
    model = SpecOnsNet(shape=(8,), length=(1.0,), dt=0.1, gauge="unit_b")
    assert float(model.free_energy.b) == 1.0
    assert all("raw_b" not in name for name, _ in model.named_parameters())


def test_fit_affine_recovers_a_known_line():
    x = np.linspace(0, 1, 50)
    fit = fit_affine(2.5 * x - 1.0, x)
    assert fit == pytest.approx({"slope": 2.5, "intercept": -1.0, "pearson_r": 1.0})
    noisy = fit_affine(np.sin(7 * x), x)
    assert abs(noisy["pearson_r"]) < 0.9
