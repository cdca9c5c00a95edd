"""The FNO baseline (``fno``): the library's network at the paper's size, the step ``u + dt FNO(u)``, plain
state dicts that load with ``weights_only=True``, and training through :func:`mesodyn.training.fit`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr

pytest.importorskip("neuralop")

from mesodyn.baselines.fno import FNOStep  # noqa: E402
from mesodyn.models import build_model, cast_module, load_model  # noqa: E402
from mesodyn.training import TrainConfig, fit, rollout_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def fno(shape, **options):
    """An ``fno`` model on a periodic grid of ``shape`` (length 2 pi per axis, dt 0.01)."""
    config = {"name": "fno", "shape": list(shape), "length": [2 * math.pi] * len(shape), "dt": 0.01, **options}
    return build_model(config)


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("shape, expected", [((256,), 66.3e3), ((128, 128), 1.29e6)])
def test_parameter_count_is_the_papers(shape, expected):
    torch.manual_seed(0)
    model = fno(shape)  # the paper's n_modes 24, 32 hidden channels, 4 layers
    assert isinstance(model, FNOStep)
    assert abs(n_parameters(model) - expected) <= 0.01 * expected, n_parameters(model)


@pytest.mark.parametrize("shape", [(16,), (8, 12)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_keeps_shape_and_dtype_and_is_the_identity_at_dt_zero(shape, dtype):
    torch.manual_seed(0)
    model = cast_module(fno(shape, n_modes=4, hidden_channels=4), device="cpu", dtype=dtype)
    u = torch.randn(3, *shape, dtype=dtype)
    with torch.no_grad():
        out = model.step(u)
        assert out.shape == u.shape and out.dtype == dtype
        assert torch.isfinite(out).all() and not torch.equal(out, u)
        assert torch.equal(model.step(u, dt=0.0), u)
        # u+ = u + dt FNO(u), linear in dt
        torch.testing.assert_close(model.step(u, dt=0.02) - u, 2 * (out - u), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="u must have shape"):
        model.step(torch.zeros(3, *[n + 1 for n in shape], dtype=dtype))


@pytest.mark.parametrize("cast", ["to", "double", "cast_module"])
def test_casts_keep_the_complex_spectral_weights(cast):
    torch.manual_seed(0)
    model = fno((16,), n_modes=4, hidden_channels=4)
    before = [p.detach().clone() for p in model.parameters() if p.is_complex()]
    assert before  # the library's spectral weights are complex parameters
    u = torch.randn(2, 16)
    with torch.no_grad():
        reference = model.step(u)
    if cast == "to":
        model.to(torch.float64)  # Module.to would cast complex weights to real, dropping the imaginary parts
    elif cast == "double":
        model.double()  # Module.double leaves complex weights in single precision
    else:
        cast_module(model, device="cpu", dtype=torch.float64)
    after = [p.detach() for p in model.parameters() if p.is_complex()]
    assert all(a.dtype == torch.complex128 and torch.equal(a.to(torch.complex64), b) for a, b in zip(after, before))
    with torch.no_grad():
        out = model.step(u.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), reference, rtol=1e-5, atol=1e-6)
    model.to(torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(model.step(u), reference, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saved_weights_load_with_weights_only_and_step_bit_identically(tmp_path, dtype):
    torch.manual_seed(1)
    model = cast_module(fno((8, 8), n_modes=4, hidden_channels=4), device="cpu", dtype=dtype)
    u = torch.randn(2, 8, 8, dtype=dtype)
    with torch.no_grad():
        before = model.step(u)  # fills the library's positional-grid cache before saving
    state = model.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())  # no library metadata in our state dicts
    torch.save(state, tmp_path / "weights.pt")
    (tmp_path / "model.json").write_text(json.dumps(model.config))
    loaded = load_model(tmp_path)  # torch.load(weights_only=True) inside
    assert isinstance(loaded, FNOStep) and next(loaded.parameters()).dtype == dtype
    with torch.no_grad():
        assert torch.equal(loaded.step(u), before)


def test_a_few_adam_steps_lower_the_rollout_loss():
    torch.manual_seed(0)
    n, dt = 16, 0.01
    x = torch.arange(n, dtype=torch.float32) * 2 * math.pi / n
    phase = torch.rand(8, 1, 1) * 2 * math.pi
    times = torch.arange(4, dtype=torch.float32)[None, :, None] * dt
    windows = torch.exp(-times) * torch.sin(x + phase)  # decay u_t = -u: 8 windows of 4 frames
    model = fno((n,), n_modes=4, hidden_channels=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        initial = float(rollout_loss(model, windows, rollout_steps=2))
    for _ in range(20):
        optimizer.zero_grad()
        loss = rollout_loss(model, windows, rollout_steps=2)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = float(rollout_loss(model, windows, rollout_steps=2))
    assert final < 0.5 * initial


def decaying_waves(n_samples=6, n_time=9, nx=16, ny=None, dt=0.01, seed=0):
    """A tiny fields data set: random sine waves decaying as exp(-t) (1-D, or 2-D with ``ny``)."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx) * 2 * np.pi / nx
    time_ = np.arange(n_time) * dt
    phase = rng.uniform(0, 2 * np.pi, n_samples)
    decay = np.exp(-time_)
    if ny is None:
        u = decay[None, :, None] * np.sin(x[None, None, :] + phase[:, None, None])
        return xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": time_, "x": x})
    y = np.arange(ny) * 2 * np.pi / ny
    wave = np.sin(x[None, None, :] + y[None, :, None] + phase[:, None, None])
    u = decay[None, :, None, None] * wave[:, None]
    return xr.Dataset({"u": (("sample", "time", "y", "x"), u)}, coords={"time": time_, "y": y, "x": x})


@pytest.mark.parametrize("ny", [None, 8])
def test_fit_trains_and_writes_a_loadable_fno(tmp_path, ny):
    data = decaying_waves(ny=ny)
    train = TrainConfig(window=4, rollout_steps=2, batch_size=4, max_epochs=4, valid_every=2, lr=1e-2,
                        seed=0, split_seed=0, device="cpu")
    result = fit(data, model_config={"name": "fno", "n_modes": 4, "hidden_channels": 4}, train=train,
                 out_dir=tmp_path, progress=False)
    assert result.epochs == 4 and math.isfinite(result.best_valid_loss)
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_model(tmp_path)
    assert isinstance(model, FNOStep)
    assert model.config["shape"] == list(data.u.shape[2:]) and model.config["n_modes"] == 4
    u = torch.tensor(data.u.values[:, 0], dtype=torch.float32)
    with torch.no_grad():
        assert torch.isfinite(model.rollout(u, 3)).all()
