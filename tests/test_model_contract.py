"""The contract every registered model keeps (mesodyn.models.base.Model), tested on every model and dimension."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from mesodyn.models import build_model, check_model_config, config_for_data, load_model
from mesodyn.registry import DATASETS, MODELS

# Small widths keep the contract cheap; the architectures' real sizes are tested per model.
TINY = {
    "speconsnet": {"hidden": 4, "nonlocal_modes": 2},
    "speconsnet_true_v": {},
    "classical": {},
    "fno": {"n_modes": 4, "hidden_channels": 4},
    "onsagernet": {"hidden": 8, "rank_m": 2, "rank_w": 2},
    "res_onsagernet": {"hidden": 8},
}
GRIDS = {1: {"shape": [16], "length": [2 * math.pi], "dt": 1e-3},
         2: {"shape": [8, 8], "length": [2 * math.pi, 2 * math.pi], "dt": 1e-3}}


def _dataset_for(name: str, ndim: int) -> str:
    return next(d for d, info in DATASETS.items() if info.ndim == ndim and MODELS[name].applies_to(d))


CASES = [(name, ndim) for name, info in MODELS.items() for ndim in info.dims]


def _config(name: str, ndim: int) -> dict:
    dataset = _dataset_for(name, ndim)
    attrs = {"epsilon": 0.1} if "allen_cahn" in dataset else {"c": 1.0, "alpha": 1.0, "epsilon": 0.05}
    return config_for_data({"name": name, **TINY[name]}, grid=GRIDS[ndim], dataset=dataset, attrs=attrs)


def _field(ndim: int, batch: int = 3, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = GRIDS[ndim]["shape"]
    x = [torch.arange(n, dtype=torch.float64) * 2 * math.pi / n for n in shape]
    mesh = torch.meshgrid(*x, indexing="ij")
    out = []
    for _ in range(batch):
        a, p = torch.rand(2, generator=gen, dtype=torch.float64)
        out.append(0.5 * torch.sin(sum(mesh) + 2 * math.pi * p) * (0.5 + a) + 0.2 * torch.cos(2 * mesh[-1]))
    return torch.stack(out).to(dtype)


@pytest.fixture(params=CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def case(request, torch_one_thread):
    name, ndim = request.param
    torch.manual_seed(0)
    return name, ndim, build_model(_config(name, ndim))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_and_rollout_keep_shape_and_dtype(case, dtype):
    name, ndim, model = case
    model = model.to(dtype)
    u = _field(ndim, dtype=dtype)
    with torch.no_grad():
        v = model.step(u)
        traj = model.rollout(u, 4)
    assert v.shape == u.shape and v.dtype == dtype
    assert traj.shape == (u.shape[0], 5, *u.shape[1:]) and traj.dtype == dtype
    assert torch.equal(traj[:, 0], u)
    assert torch.allclose(traj[:, 1], v, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-6)
    assert bool(torch.isfinite(traj).all())
    assert model.dt == GRIDS[ndim]["dt"] and model.name == name
    assert MODELS[name].trainable == model.trainable


def test_a_model_offers_what_its_registry_entry_declares(case):
    """The diagnostics trust the declared capabilities instead of probing: every declared method exists and works,
    every declared stepper is a stepper its step takes, and nothing undeclared is offered."""
    _, ndim, model = case
    caps = model.capabilities
    u = _field(ndim)
    assert callable(getattr(model, "energy", None)) == caps.energy
    assert callable(getattr(model, "dissipation_rate", None)) == caps.dissipation
    assert (getattr(model, "operators", None) is not None) == caps.operators
    with torch.no_grad():
        if caps.energy:
            energy = model.energy(u)
            assert (energy["total"] if isinstance(energy, dict) else energy).shape == (u.shape[0],)
        if caps.dissipation:
            assert model.dissipation_rate(u).shape == (u.shape[0],)
        accepted = []
        for stepper in ("euler", "sbdf1", "stabilized", "avf"):
            try:
                model.step(u, stepper=stepper)
                accepted.append(stepper)
            except (TypeError, ValueError):
                pass
    assert set(accepted) <= set(caps.steppers)
    assert bool(accepted) == bool(caps.steppers)
    if caps.steppers:
        assert model.stepper in caps.steppers
    assert callable(getattr(model, "quadratic_coefficients", None)) == caps.energy_parts
    if caps.energy_parts:
        a, b = model.quadratic_coefficients()
        assert isinstance(a, float) and isinstance(b, float) and b > 0
        with torch.no_grad():
            assert model.local_density(u).shape == u.shape
            assert set(model.energy(u)) >= {"quadratic", "local", "total"}
    assert (getattr(model, "local_derivative", None) is not None) == bool(caps.local_derivatives)
    for mode in caps.local_derivatives:
        model.local_derivative = mode
        assert model.local_derivative == mode


def test_a_field_of_the_wrong_grid_is_refused(case):
    _, ndim, model = case
    wrong = torch.zeros(2, *[n + 2 for n in GRIDS[ndim]["shape"]])
    with pytest.raises(ValueError, match="shape"):
        model.step(wrong)


def test_config_round_trip(case):
    name, ndim, model = case
    config = model.config
    assert config["name"] == name
    again = json.loads(json.dumps(config))
    assert again == config
    assert build_model(again).config == config


def test_save_then_load_gives_the_same_step_bit_for_bit(case, tmp_path):
    _, ndim, model = case
    (tmp_path / "model.json").write_text(json.dumps(model.config))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    loaded = load_model(tmp_path, dtype=torch.float32)
    model = model.float().eval()
    u = _field(ndim)
    with torch.no_grad():
        assert torch.equal(model.step(u), loaded.step(u))


def test_a_bad_option_is_one_sentence_naming_it(case):
    name, ndim, model = case
    for bad in ({"no_such_option": 1}, {"dt": -1.0}):
        with pytest.raises(ValueError) as info:
            build_model({**model.config, **bad})
        message = str(info.value)
        assert next(iter(bad)) in message and "\n" not in message and message.endswith(".")


def test_a_few_optimizer_steps_lower_the_loss(case):
    name, ndim, model = case
    if not model.trainable:
        assert not any(p.requires_grad for p in model.parameters())
        return
    from mesodyn.training import rollout_loss

    # toy data: decaying, translating waves u(t) = exp(-t) u0(x - t), sampled at the model's dt
    u0 = _field(ndim, batch=4, seed=1)
    frames = []
    for j in range(5):
        t = j * model.dt * 20
        shift = torch.roll(u0, shifts=j, dims=-1)
        frames.append(math.exp(-t) * shift)
    windows = torch.stack(frames, dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = rollout_loss(model, windows, rollout_steps=2)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_applies_where_the_registry_says(name):
    info = MODELS[name]
    for dataset, data in DATASETS.items():
        if info.applies_to(dataset):
            check_model_config({"name": name}, dataset=dataset)
        else:
            with pytest.raises(ValueError, match="does not apply"):
                check_model_config({"name": name}, dataset=dataset)


def test_onsagernet_is_not_asked_for_2d_and_true_v_only_where_the_energy_is_known():
    assert not MODELS["onsagernet"].applies_to("allen_cahn_2d")
    assert {d for d in DATASETS if MODELS["speconsnet_true_v"].applies_to(d)} == {"allen_cahn", "allen_cahn_2d", "kdv"}


def test_checking_a_config_imports_no_torch():
    code = ("import sys; from mesodyn.config import load_config; load_config('config/config.yaml'); "
            "from mesodyn.models import check_model_config; "
            "[check_model_config({'name': n}) for n in ('fno', 'onsagernet', 'classical', 'res_onsagernet')]; "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('mesodyn.baselines') "
            "or m.startswith('mesodyn.onsager')); print(bad); assert not bad, bad")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_source_fingerprint_covers_the_models_own_code_only():
    from mesodyn.training.checkpoint import _import_closure

    spec = {p.name for p in _import_closure({"mesodyn.onsager.model"})}
    assert {"model.py", "energy.py", "operators.py", "steppers.py", "interpolant.py", "base.py"} <= spec
    classical = {str(p) for p in _import_closure({"mesodyn.baselines.classical"})}
    assert not any("fno" in p or "onsagernet" in p for p in classical)
