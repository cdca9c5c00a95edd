"""The OnsagerNet and Res-OnsagerNet baselines: parameter counts, structure of M and W, the Euler step against
its formula, evaluation without gradients, the authors' frozen a = b = 0, save/load, and training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr

from mesodyn.baselines.onsagernet import OnsagerNet
from mesodyn.baselines.res_onsagernet import ResOnsagerNet, hermitian_part, parameter_count
from mesodyn.models import build_model, config_for_data, load_model
from mesodyn.onsager import SpecOnsNet
from mesodyn.training import TrainConfig, fit, rollout_loss

pytestmark = pytest.mark.usefixtures("torch_one_thread")

GRID_1D = {"shape": [8], "length": [2 * math.pi], "dt": 0.01}
GRID_2D = {"shape": [6, 8], "length": [2 * math.pi, 3.0], "dt": 0.01}
TINY_ONS = {"name": "onsagernet", "hidden": 6, "rank_m": 2, "rank_w": 3, "beta": 1e-3}
TINY_RES = {"name": "res_onsagernet", "hidden": 12}


def make(options, grid, *, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = build_model(config_for_data(options, grid=grid))
    return model.to(dtype)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------
# parameter counts (full size: build only, no forward)
# ----------------------------------------------------------------------------------------------------------
def test_parameter_counts_are_the_papers():
    paper_1d = {"shape": [256], "length": [2 * math.pi], "dt": 1e-3}
    ons = build_model(config_for_data({"name": "onsagernet"}, grid=paper_1d, dataset="kdv"))
    # V: 3 x (256*256 + 256) + 256 (no output bias) + log alpha; M: 2 x (256*256 + 256) + 256*2048 + 2048;
    # W: 2 x (256*256 + 256) + 256*1024 + 1024, and C: 256*4
    hidden = 256 * 256 + 256
    expected = (3 * hidden + 256 + 1) + (2 * hidden + 256 * 2048 + 2048) + (2 * hidden + 256 * 1024 + 1024) + 1024
    assert n_params(ons) == expected == 1_251_329
    assert abs(n_params(ons) / 1.25e6 - 1) < 0.01
    assert ons.cfg.beta == 0.0

    res = build_model(config_for_data({"name": "res_onsagernet"}, grid=paper_1d))
    # MLP 258 -> 512 -> 512 -> 512 -> 258 (no output bias), 129 pairs of modes for M and for W, a_p and b_p
    mlp = (258 * 512 + 512) + 2 * (512 * 512 + 512) + 512 * 258
    assert n_params(res) == mlp + 2 * 129 + 2 == parameter_count(shape=(256,)) == 790_276
    assert abs(n_params(res) / 0.79e6 - 1) < 0.01

    paper_2d = {"shape": [128, 128], "length": [2 * math.pi] * 2, "dt": 1e-3}
    res2 = build_model(config_for_data({"name": "res_onsagernet"}, grid=paper_2d))
    io = 2 * 128 * 65  # rfft2 of 128 x 128: 128 x 65 complex values
    pairs = (128 * 128 + 4) // 2  # {k, -k}; four self-conjugate modes
    mlp2 = (io * 512 + 512) + 2 * (512 * 512 + 512) + 512 * io
    print(f"Res-OnsagerNet 2-D parameters: {n_params(res2)}")
    assert io == 16_640
    assert n_params(res2) == mlp2 + 2 * pairs + 2 == parameter_count(shape=(128, 128)) == 17_581_574


def test_onsagernet_is_one_dimensional_and_res_rejects_the_stabilized_stepper():
    with pytest.raises(ValueError, match="1-D"):
        config_for_data({"name": "onsagernet"}, grid=GRID_2D)
    with pytest.raises(ValueError, match="stepper"):
        config_for_data({"name": "res_onsagernet", "stepper": "stabilized"}, grid=GRID_1D)
    assert config_for_data({"name": "onsagernet"}, grid=GRID_1D, dataset="allen_cahn")["beta"] == 1e-3


# ----------------------------------------------------------------------------------------------------------
# OnsagerNet
# ----------------------------------------------------------------------------------------------------------
def test_onsagernet_m_is_symmetric_psd_and_w_antisymmetric():
    model = make(TINY_ONS, GRID_1D)
    x = torch.randn(3, 8, dtype=torch.float64)
    m, w = model.matrices(x)
    assert torch.allclose(m, m.transpose(-1, -2), atol=1e-15)
    eig = torch.linalg.eigvalsh(m)
    assert eig.min() >= 1e-3 - 1e-12  # beta I + B B^T
    assert torch.allclose(w, -w.transpose(-1, -2), atol=1e-15) and w.abs().max() > 0
    v = torch.randn(3, 8, dtype=torch.float64)
    assert torch.allclose(model.apply_operators(x, v), ((m + w) @ v[..., None])[..., 0], atol=1e-13)


def test_onsagernet_step_is_euler_with_the_gradient_of_v():
    model = make(TINY_ONS, GRID_1D)
    with torch.no_grad():
        model.log_alpha.fill_(math.log(0.3))  # alpha x visible next to the MLP's gradient
    x = torch.randn(2, 8, dtype=torch.float64)
    grad = model.grad_energy(x)
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for i in range(8):
            e = torch.zeros_like(x)
            e[:, i] = eps
            fd[:, i] = (model.energy(x + e) - model.energy(x - e)) / (2 * eps)
    assert torch.allclose(grad, fd, rtol=0, atol=1e-8)
    m, w = model.matrices(x)
    dt = 0.037
    expected = x - dt * ((m + w) @ fd[..., None])[..., 0]
    assert torch.allclose(model.step(x, dt=dt), expected, atol=1e-8)
    assert torch.allclose(model(x), -((m + w) @ grad[..., None])[..., 0], atol=1e-13)


def test_onsagernet_evaluates_without_gradients_and_trains_through_grad_v():
    model = make(TINY_ONS, GRID_1D)
    x = torch.randn(4, 8, dtype=torch.float64)
    with_grad = model.step(x)
    assert with_grad.requires_grad  # training: the graph of grad V is kept
    with torch.no_grad():
        plain = model.step(x)
    assert not plain.requires_grad and torch.equal(plain, with_grad.detach())
    with torch.inference_mode():
        inferred = model.step(x)
    assert torch.equal(inferred, plain)
    # grad V enters the loss: the parameters of MLP_V receive gradients only through it
    model.zero_grad()
    with_grad.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in model.mlp_v.parameters())
    # and the step is differentiable in its input, second derivatives of MLP_V included
    x_req = x[:2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: model.step(y, dt=0.1), (x_req,), eps=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# Res-OnsagerNet
# ----------------------------------------------------------------------------------------------------------
def test_hermitian_part_is_what_irfftn_keeps():
    gen = torch.Generator().manual_seed(1)
    for shape in [(8,), (7,), (6, 8), (5, 7)]:
        half = (*shape[:-1], shape[-1] // 2 + 1)
        f = torch.complex(torch.randn(3, *half, generator=gen, dtype=torch.float64),
                          torch.randn(3, *half, generator=gen, dtype=torch.float64))
        dims = tuple(range(-len(shape), 0))
        h = hermitian_part(f, shape)
        assert torch.allclose(torch.fft.irfftn(h, s=shape, dim=dims), torch.fft.irfftn(f, s=shape, dim=dims),
                              atol=1e-14)
        assert torch.allclose(torch.fft.rfftn(torch.fft.irfftn(h, s=shape, dim=dims), dim=dims), h, atol=1e-13)


@pytest.mark.parametrize("grid", [GRID_1D, GRID_2D], ids=["1d", "2d"])
def test_res_paper_quadratic_is_frozen_at_zero_and_learned_gets_gradients(grid):
    paper = make(TINY_RES, grid)
    u = torch.randn(3, *grid["shape"], dtype=torch.float64)
    assert float(paper.a.detach()) == 0.0 and float(paper.b.detach()) == 0.0
    paper.step(u).square().sum().backward()
    assert paper.a_p.grad is not None and float(paper.a_p.grad) == 0.0 and float(paper.b_p.grad) == 0.0
    assert paper.mlp.out.weight.grad.abs().max() > 0 and paper.operators.theta.grad.abs().max() > 0

    learned = make({**TINY_RES, "quadratic": "learned", "init_a": 0.7, "init_b": 0.2}, grid)
    # raw_a, raw_b start as float32 values of inverse_softplus(init)
    assert math.isclose(float(learned.a.detach()), 0.7, rel_tol=1e-6)
    assert math.isclose(float(learned.b.detach()), 0.2, rel_tol=1e-6)
    learned.step(u).square().sum().backward()
    assert abs(float(learned.raw_a.grad)) > 0 and abs(float(learned.raw_b.grad)) > 0


@pytest.mark.parametrize("grid", [GRID_1D, GRID_2D], ids=["1d", "2d"])
def test_res_step_is_the_fourier_multiplier_formula(grid):
    model = make({**TINY_RES, "quadratic": "learned", "init": "ours", "init_a": 0.5, "init_b": 0.3}, grid)
    with torch.no_grad():
        model.operators.psi.normal_(0.0, 0.5)  # a non-zero W
    shape, dt = tuple(grid["shape"]), 0.02
    u = torch.randn(2, *shape, dtype=torch.float64)
    dims = tuple(range(-len(shape), 0))
    u_hat = torch.fft.rfftn(u, dim=dims)
    m, phi = model.operators.symbols()
    s = torch.complex(m, phi).detach()
    with torch.no_grad():
        k2 = model.grid.k2_half
        lin = (model.a + model.b * k2).detach()
        # the MLP on [Re u_hat, Im u_hat] flattened, by hand
        flat = u_hat.reshape(2, -1)
        out = model.mlp(torch.cat([flat.real, flat.imag], -1))
        n = flat.shape[1]
        res = hermitian_part(torch.complex(out[:, :n], out[:, n:]).reshape(u_hat.shape), shape)
        euler = u - dt * torch.fft.irfftn(s * (lin * u_hat + res), s=shape, dim=dims)
        sbdf1 = torch.fft.irfftn((u_hat - dt * s * res) / (1 + dt * s * lin), s=shape, dim=dims)
        assert torch.allclose(model.step(u, dt=dt), euler, atol=1e-12)
        assert torch.allclose(model.step(u, dt=dt, stepper="sbdf1"), sbdf1, atol=1e-12)
    # k^2 are the data's physical wavenumbers (2 pi / L integers)
    k_last = 2 * math.pi / grid["length"][-1] * np.arange(shape[-1] // 2 + 1)
    assert np.allclose(model.grid.k2_half.numpy()[(0,) * (len(shape) - 1)], k_last**2)


def test_res_initial_operators():
    grid = {"shape": [256], "length": [2 * math.pi], "dt": 1e-3}
    paper = make({"name": "res_onsagernet", "hidden": 4}, grid)
    theta, psi = paper.operators.theta.detach(), paper.operators.psi.detach()
    assert 0.08 < float(theta.std()) < 0.12 and 0.008 < float(psi.std()) < 0.012  # 129 draws each
    ours = make({"name": "res_onsagernet", "hidden": 4, "init": "ours"}, grid)
    torch.manual_seed(0)
    spec = SpecOnsNet(**config_for_data({"name": "speconsnet", "hidden": 4}, grid=grid))
    assert torch.allclose(ours.operators.m_pairs().float(), spec.operators.m_pairs(), rtol=1e-6)
    assert float(ours.operators.psi.detach().abs().max()) == 0.0


# ----------------------------------------------------------------------------------------------------------
# both: interface, evaluation, save/load, training
# ----------------------------------------------------------------------------------------------------------
CASES = [(TINY_ONS, GRID_1D), (TINY_RES, GRID_1D), (TINY_RES, GRID_2D)]
IDS = ["onsagernet", "res_1d", "res_2d"]


@pytest.mark.parametrize(("options", "grid"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_shapes_dtypes_and_no_grad(options, grid, dtype):
    model = make(options, grid, dtype=dtype)
    u = torch.randn(5, *grid["shape"], dtype=dtype)
    out = model.step(u)
    assert out.shape == u.shape and out.dtype == dtype and torch.isfinite(out).all()
    with torch.no_grad():
        again = model.step(u)
        traj = model.rollout(u, 3)
    assert not again.requires_grad and torch.equal(again, out.detach())
    assert traj.shape == (5, 4, *grid["shape"]) and torch.equal(traj[:, 1], again)
    with pytest.raises(ValueError, match="shape"):
        model.step(torch.randn(5, 3, dtype=dtype))


@pytest.mark.parametrize(("options", "grid"), CASES, ids=IDS)
def test_save_load_gives_a_bit_identical_step(tmp_path, options, grid):
    model = make(options, grid, dtype=torch.float32, seed=1)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "model.json").write_text(json.dumps(model.config))
    u = torch.randn(3, *grid["shape"])
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    rebuilt = make(options, grid, dtype=torch.float32, seed=2)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(loaded.step(u), model.step(u)) and torch.equal(rebuilt.step(u), model.step(u))


def decay_windows(shape, *, n=6, length=6, dt=0.01, seed=0):
    """Windows of u_t = 0.5 Lap u - u, exact in Fourier space, from smooth random fields (float64)."""
    gen = torch.Generator().manual_seed(seed)
    dims = tuple(range(-len(shape), 0))
    u0 = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    axes = [torch.fft.fftfreq(m, d=1.0 / m, dtype=torch.float64) for m in shape]
    axes[-1] = torch.fft.rfftfreq(shape[-1], d=1.0 / shape[-1], dtype=torch.float64)
    k2 = sum(k**2 for k in torch.meshgrid(*axes, indexing="ij"))
    u0_hat = torch.fft.rfftn(u0, dim=dims) * torch.exp(-0.3 * k2)  # smooth
    frames = [torch.fft.irfftn(u0_hat * torch.exp(-(0.5 * k2 + 1.0) * t * dt), s=shape, dim=dims)
              for t in range(length)]
    return torch.stack(frames, dim=1)


@pytest.mark.parametrize(("options", "grid"), CASES, ids=IDS)
def test_adam_lowers_the_rollout_loss(options, grid):
    model = make(options, grid)
    windows = decay_windows(tuple(grid["shape"]), dt=grid["dt"])
    before = float(rollout_loss(model, windows, rollout_steps=2).detach())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)  # measured: loss x 0.45-0.62 after 10 steps
    for _ in range(10):
        optimizer.zero_grad()
        rollout_loss(model, windows, rollout_steps=2).backward()
        optimizer.step()
    after = float(rollout_loss(model, windows, rollout_steps=2).detach())
    assert after < 0.9 * before


def fields_data(shape, *, n_samples=10, n_time=8, dt=0.01):
    """A tiny fields data set in the workflow's layout (``u`` with dims sample, time, [y,] x)."""
    u = decay_windows(tuple(shape), n=n_samples, length=n_time, dt=dt).numpy()
    coords = {"time": np.arange(n_time) * dt}
    dims = ("y", "x") if len(shape) == 2 else ("x",)
    for dim, m in zip(dims, shape):
        coords[dim] = np.arange(m) * 2 * np.pi / m
    return xr.Dataset({"u": (("sample", "time", *dims), u)}, coords=coords)


@pytest.mark.parametrize(("options", "grid"), CASES, ids=IDS)
def test_fit_trains_and_reloads(tmp_path, options, grid):
    data = fields_data(grid["shape"])
    train = TrainConfig(window=4, rollout_steps=2, batch_size=4, max_epochs=4, valid_every=2, lr=1e-3,
                        dtype="float32", device="cpu", seed=0, split_seed=0)
    result = fit(data, model_config=options, train=train, out_dir=tmp_path, progress=False)
    assert result.epochs == 4 and math.isfinite(result.best_valid_loss)
    model = load_model(tmp_path)
    assert isinstance(model, {"onsagernet": OnsagerNet, "res_onsagernet": ResOnsagerNet}[options["name"]])
    assert model.config["shape"] == list(grid["shape"]) and model.config["hidden"] == options["hidden"]
    with torch.no_grad():
        traj = model.rollout(torch.tensor(data.u.values[:2, 0], dtype=torch.float32), 5)
    assert traj.dtype == torch.float32 and torch.isfinite(traj).all()
