"""Training: configuration, split, loss construction, recovery of an exactly representable model, outputs,
byte-identical reruns, resume after a stop and after a real kill, the non-finite guard."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mesodyn.models import build_model, config_for_data
from mesodyn.training import (
    TrainConfig,
    adam,
    TrainingDivergedError,
    fit,
    grid_from_data,
    load_model,
    resolve_device,
    rollout_loss,
    split_trajectories,
)

TESTS_DIR = Path(__file__).resolve().parent
TRUE_NU, TRUE_GAMMA = 0.5, 1.0


# ----------------------------------------------------------------------------------------------------------
# a stand-in model with the interface of mesodyn.onsager (config, step), exact for linear decay-diffusion
# ----------------------------------------------------------------------------------------------------------
class ExactDiffusion(nn.Module):
    """u_t = nu Lap u - gamma u, stepped exactly in Fourier space; nu, gamma learned (log-parametrized)."""

    def __init__(self, *, shape, length, dt, nu0=1.0, gamma0=0.3, blowup_after=None, name="exact_diffusion"):
        super().__init__()
        self.shape, self.length, self.dt = tuple(shape), tuple(length), float(dt)
        self.nu0, self.gamma0, self.blowup_after = nu0, gamma0, blowup_after
        self.log_nu = nn.Parameter(torch.tensor(math.log(nu0), dtype=torch.float64))
        self.log_gamma = nn.Parameter(torch.tensor(math.log(gamma0), dtype=torch.float64))
        axes = [torch.fft.fftfreq(n, d=L / n, dtype=torch.float64) * 2 * math.pi for n, L in zip(self.shape, self.length)]
        axes[-1] = torch.fft.rfftfreq(self.shape[-1], d=self.length[-1] / self.shape[-1], dtype=torch.float64) * 2 * math.pi
        grids = torch.meshgrid(*axes, indexing="ij")
        self.register_buffer("k2", sum(g**2 for g in grids))
        self.calls = 0

    @property
    def config(self):
        return {"name": "exact_diffusion", "shape": list(self.shape), "length": list(self.length),
                "dt": self.dt, "nu0": self.nu0, "gamma0": self.gamma0, "blowup_after": self.blowup_after}

    def step(self, u, dt=None):
        self.calls += 1
        if os.environ.get("MESODYN_TOY_DELAY"):  # lets the kill test interrupt a run that is still going
            time.sleep(float(os.environ["MESODYN_TOY_DELAY"]))
        dims = tuple(range(-len(self.shape), 0))
        rate = torch.exp(self.log_nu) * self.k2 + torch.exp(self.log_gamma)
        out = torch.fft.irfftn(torch.fft.rfftn(u, dim=dims) * torch.exp(-rate * (dt or self.dt)),
                               s=self.shape, dim=dims)
        if self.blowup_after is not None and self.calls > self.blowup_after:
            out = out * math.inf
        return out


def build_toy(config):
    config = dict(config)
    config.pop("name")
    return ExactDiffusion(**config)


def diffusion_data(n_samples=20, n_time=21, nx=32, dt=0.01, seed=0, ny=None):
    """Exact solutions of u_t = nu u_xx - gamma u from random smooth fields (1-D, or 2-D with ny)."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx) * 2 * np.pi / nx
    time_ = np.arange(n_time) * dt
    if ny is None:
        k = np.arange(1, 6)
        amp, phase = rng.uniform(0, 1, (n_samples, 5)), rng.uniform(0, 2 * np.pi, (n_samples, 5))
        decay = np.exp(-(TRUE_NU * k**2 + TRUE_GAMMA) * time_[:, None])  # (time, mode)
        u = np.einsum("sm,tm,smx->stx", amp, decay, np.sin(k[None, :, None] * x + phase[:, :, None]))
        return xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": time_, "x": x})
    y = np.arange(ny) * 2 * np.pi / ny
    kx, ky = np.array([1, 2, 0, 3]), np.array([0, 1, 2, -1])
    amp, phase = rng.uniform(0, 1, (n_samples, 4)), rng.uniform(0, 2 * np.pi, (n_samples, 4))
    decay = np.exp(-(TRUE_NU * (kx**2 + ky**2) + TRUE_GAMMA) * time_[:, None])
    arg = kx[None, :, None, None] * x[None, None, None, :] + ky[None, :, None, None] * y[None, None, :, None]
    u = np.einsum("sm,tm,smyx->styx", amp, decay, np.sin(arg + phase[:, :, None, None]))
    return xr.Dataset({"u": (("sample", "time", "y", "x"), u)}, coords={"time": time_, "y": y, "x": x})


TOY_TRAIN = dict(window=5, rollout_steps=2, batch_size=4, lr=0.05, lr_patience=5, max_epochs=40,
                 valid_every=10, early_stopping=3, dtype="float64", device="cpu", seed=3, split_seed=1)


def toy_fit(out_dir, *, progress=False, data=None, model=None, **overrides):
    train = TrainConfig(**{**TOY_TRAIN, **overrides})
    return fit(data if data is not None else diffusion_data(), model_config=model or {"name": "exact_diffusion"},
               train=train, out_dir=out_dir, progress=progress, builder=build_toy)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def same_checkpoint(path_a, path_b):
    """Two last.pt files hold equal states (the pickle's bytes may differ in how strings are shared)."""
    a, b = (torch.load(p, weights_only=True) for p in (path_a, path_b))
    flat_a, flat_b = torch.utils._pytree.tree_flatten(a), torch.utils._pytree.tree_flatten(b)
    assert flat_a[1] == flat_b[1]
    for x, y in zip(flat_a[0], flat_b[0]):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y)
        elif isinstance(x, float) and math.isnan(x):
            assert math.isnan(y)
        else:
            assert x == y
    return True


def same(history_a, history_b):
    """Histories equal value by value (NaN, between validations, equal to NaN)."""
    return json.dumps(history_a) == json.dumps(history_b)


def _run_toy_fit_for_kill_test(out_dir: str, max_epochs: int) -> None:  # entry point of the subprocess
    toy_fit(out_dir, max_epochs=max_epochs, early_stopping=100)


# ----------------------------------------------------------------------------------------------------------
# configuration, split, grid
# ----------------------------------------------------------------------------------------------------------
def test_train_config_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.window, c.rollout_steps, c.batch_size, c.lr) == (11, 3, 32, 1e-3)
    assert (c.lr_factor, c.lr_patience, c.max_epochs, c.valid_every, c.early_stopping) == (0.5, 300, 10_000, 100, 5)
    assert (c.seed, c.split, c.device, c.dtype) == (42, (0.7, 0.2, 0.1), "auto", "float32")
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("key, value", [
    ("window", 1), ("rollout_steps", 11), ("batch_size", 0), ("lr", -1.0), ("lr", float("nan")),
    ("lr_factor", 1.0), ("max_epochs", 50), ("batches_per_epoch", 0), ("early_stopping", 0), ("split", (0.5, 0.6, -0.1)),
    ("split", (1.0, 0.0, 0.0)), ("device", "tpu"), ("dtype", "float16"), ("seed", -1), ("window", 2.5),
])
def test_train_config_rejects_bad_values_naming_the_parameter(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value})


def test_train_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown training setting 'epochs'"):
        TrainConfig.from_dict({"epochs": 3})


def test_split_has_the_papers_sizes_and_depends_on_the_seed_only():
    s = split_trajectories(1000, fractions=(0.7, 0.2, 0.1), seed=42)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [700, 200, 100]
    assert s == split_trajectories(1000, fractions=(0.7, 0.2, 0.1), seed=42)
    assert s != split_trajectories(1000, fractions=(0.7, 0.2, 0.1), seed=43)
    with pytest.raises(ValueError, match="too few"):
        split_trajectories(1, seed=0)
    # 1 - 0.8 - 0.2 is -5.6e-17 in floating point: an empty test part, not an error (found by hypothesis in CI)
    s = split_trajectories(3, fractions=(0.8, 0.2, 1 - 0.8 - 0.2), seed=0)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [2, 1, 0]
    with pytest.raises(ValueError, match="non-negative"):
        split_trajectories(10, fractions=(0.8, 0.3, -0.1), seed=0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 400), f_train=st.floats(0.3, 0.8), f_valid=st.floats(0.1, 0.2), seed=st.integers(0, 2**31))
def test_split_is_a_partition(n, f_train, f_valid, seed):
    fractions = (f_train, f_valid, 1 - f_train - f_valid)
    try:
        s = split_trajectories(n, fractions=fractions, seed=seed)
    except ValueError:
        assert round(n * f_train) < 1 or round(n * (f_train + f_valid)) - round(n * f_train) < 1
        return
    joined = s["train"] + s["valid"] + s["test"]
    assert sorted(joined) == list(range(n))
    assert abs(len(s["train"]) - n * f_train) <= 1


def test_grid_comes_from_the_coordinates():
    g1 = grid_from_data(diffusion_data(n_samples=2, nx=48, dt=2e-3))
    assert g1["shape"] == [48] and g1["length"] == pytest.approx([2 * np.pi], rel=1e-14)
    assert g1["dt"] == pytest.approx(2e-3, rel=1e-12)
    g2 = grid_from_data(diffusion_data(n_samples=2, nx=16, ny=12))
    assert g2["shape"] == [12, 16] and g2["length"] == pytest.approx([2 * np.pi] * 2, rel=1e-14)
    bad = diffusion_data(n_samples=2)
    bad = bad.assign_coords(time=bad.time.values ** 1.5)
    with pytest.raises(ValueError, match="time"):
        grid_from_data(bad)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")


# ----------------------------------------------------------------------------------------------------------
# the loss
# ----------------------------------------------------------------------------------------------------------
class Scale(nn.Module):
    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta, dtype=torch.float64))

    def step(self, u):
        return self.theta * u


def test_rollout_loss_targets_are_aligned_and_steps_averaged():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 7, 5))
    loss = rollout_loss(Scale(1.0), torch.tensor(w), rollout_steps=3).detach()  # identity model
    n = 7 - 3
    expected = np.mean([np.mean((w[:, :n] - w[:, k : k + n]) ** 2) for k in (1, 2, 3)])
    assert float(loss) == pytest.approx(expected, rel=1e-13)


def test_rollout_loss_detaches_the_state_between_steps():
    # one state u0, K = 2, model u -> theta u: with the detach the gradient of
    # L = [(t u0 - u1)^2 + (t sg(t u0) - u2)^2] / 2 is (t u0 - u1) u0 + (t^2 u0 - u2) t u0
    # (without it the second term would be doubled).
    u0, u1, u2, theta = 1.3, 0.7, 0.2, 0.9
    model = Scale(theta)
    loss = rollout_loss(model, torch.tensor([[u0, u1, u2]], dtype=torch.float64), rollout_steps=2)
    loss.backward()
    expected = (theta * u0 - u1) * u0 + (theta**2 * u0 - u2) * theta * u0
    assert float(model.theta.grad) == pytest.approx(expected, rel=1e-13)


def test_rollout_loss_vanishes_for_the_exact_model():
    data = diffusion_data(n_samples=3)
    grid = grid_from_data(data)
    model = ExactDiffusion(**grid, nu0=TRUE_NU, gamma0=TRUE_GAMMA).double()
    windows = torch.tensor(data.u.values[:, :9])
    assert float(rollout_loss(model, windows, rollout_steps=4).detach()) < 1e-28


# ----------------------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ny", [None, 12])
def test_fit_recovers_an_exactly_representable_model(tmp_path, ny):
    data = diffusion_data(nx=16, ny=ny) if ny else diffusion_data()
    result = toy_fit(tmp_path, data=data, max_epochs=150, early_stopping=20)
    model = load_model(tmp_path, builder=build_toy)
    assert math.exp(model.log_nu.item()) == pytest.approx(TRUE_NU, rel=2e-3)
    assert math.exp(model.log_gamma.item()) == pytest.approx(TRUE_GAMMA, rel=2e-3)
    assert result.best_valid_loss < 1e-6 * result.history[0]["train_loss"]
    assert model.config["shape"] == ([12, 16] if ny else [32])


def test_fit_writes_the_documented_outputs(tmp_path):
    result = toy_fit(tmp_path)
    for name in ("weights.pt", "last.pt", "model.json", "history.csv", "split.json", "summary.json"):
        assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    weights = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert set(weights) == {"log_nu", "log_gamma", "k2"}
    torch.load(tmp_path / "last.pt", weights_only=True)  # the full checkpoint is weights-only loadable too
    config = json.loads((tmp_path / "model.json").read_text())
    assert config["shape"] == [32] and config["dt"] == pytest.approx(0.01, rel=1e-12)
    split = json.loads((tmp_path / "split.json").read_text())
    assert {k: split[k] for k in ("train", "valid", "test")} == split_trajectories(20, fractions=(0.7, 0.2, 0.1), seed=1)
    assert split == {**result.split, "seed": 1, "fractions": [0.7, 0.2, 0.1], "n_samples": 20}
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,valid_loss,lr" and len(lines) == 1 + result.epochs
    valid = [float(line.split(",")[2]) for line in lines[1:]]
    assert [i + 1 for i, v in enumerate(valid) if not math.isnan(v)] == [10, 20, 30, 40]
    assert min(v for v in valid if not math.isnan(v)) == result.best_valid_loss
    # the saved weights are those of the best validation, and the rebuilt model reproduces them
    model = load_model(tmp_path, builder=build_toy)
    assert model.log_nu.dtype == torch.float64 and not model.training
    u = torch.tensor(diffusion_data(n_samples=1).u.values[0, :3])
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    reference = build_toy(config).double()
    reference.load_state_dict(ckpt["best_state"])
    assert torch.equal(model.step(u), reference.step(u))


def test_same_config_gives_byte_identical_outputs(tmp_path):
    toy_fit(tmp_path / "a")
    toy_fit(tmp_path / "b")
    for name in ("weights.pt", "last.pt", "model.json", "history.csv", "split.json", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_train_part_trains_on_disjoint_parts_with_the_same_valid_and_test(tmp_path):
    whole = toy_fit(tmp_path / "whole", max_epochs=10, valid_every=10)
    halves = [toy_fit(tmp_path / f"half{i}", max_epochs=10, valid_every=10, train_part=(i, 2)) for i in (0, 1)]
    a, b = (set(h.split["train"]) for h in halves)
    assert not a & b and a | b == set(whole.split["train"]) and abs(len(a) - len(b)) <= 1
    for h in halves:
        assert (h.split["valid"], h.split["test"]) == (whole.split["valid"], whole.split["test"])
    assert halves[0].history[0]["train_loss"] != halves[1].history[0]["train_loss"]
    record = json.loads((tmp_path / "half1" / "split.json").read_text())
    assert record["train_part"] == [1, 2] and record["train"] == sorted(b)
    assert "train_part" not in json.loads((tmp_path / "whole" / "split.json").read_text())
    assert "train_part" not in TrainConfig().to_dict()  # the fingerprint of a fit on all trajectories is unchanged
    assert TrainConfig.from_dict({"train_part": [1, 3]}).train_part == (1, 3)


@pytest.mark.parametrize("part", [(2, 2), (-1, 2), (0, 0), (0.5, 2), (0, 2, 3), (True, 2)])
def test_train_part_is_checked(part):
    with pytest.raises(ValueError, match="train_part"):
        TrainConfig(train_part=part)


def test_seed_changes_the_run(tmp_path):
    a = toy_fit(tmp_path / "a", seed=1)
    b = toy_fit(tmp_path / "b", seed=2)
    assert a.history[0]["train_loss"] != b.history[0]["train_loss"]
    assert a.split == b.split  # the split is fixed by split_seed, shared by all training seeds


def test_an_epoch_is_a_pass_over_the_training_trajectories_or_capped(tmp_path):
    calls = []

    def counting_builder(config):
        model = build_toy(config)
        step = model.step
        model.step = lambda u, dt=None: (calls.append(u.shape[0]), step(u, dt))[1]
        return model

    train = TrainConfig(**{**TOY_TRAIN, "max_epochs": 10, "valid_every": 10})
    fit(diffusion_data(), model_config={"name": "exact_diffusion"}, train=train, out_dir=tmp_path / "a",
        progress=False, builder=counting_builder)
    # 14 training trajectories, batch 4: 3 batches of 4 windows x (5 - 2) starting states, 2 steps each;
    # then one validation of the 4 validation trajectories
    assert calls == [12] * (10 * 3 * 2) + [12] * 2
    calls.clear()
    capped = TrainConfig(**{**TOY_TRAIN, "max_epochs": 10, "valid_every": 10, "batches_per_epoch": 1})
    fit(diffusion_data(), model_config={"name": "exact_diffusion"}, train=capped, out_dir=tmp_path / "b",
        progress=False, builder=counting_builder)
    assert calls == [12] * (10 * 1 * 2) + [12] * 2


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    straight = toy_fit(tmp_path / "straight", max_epochs=40)
    first = toy_fit(tmp_path / "resumed", max_epochs=20)
    assert first.epochs == 20 and first.stop_reason == "max_epochs"
    resumed = toy_fit(tmp_path / "resumed", max_epochs=40)
    assert resumed.resumed_from == 20
    assert same(resumed.history, straight.history)
    for name in ("weights.pt", "history.csv", "summary.json"):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name
    assert same_checkpoint(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt")
    again = toy_fit(tmp_path / "resumed", max_epochs=40)  # a finished run is not trained again
    assert again.resumed_from == 40 and same(again.history, straight.history)
    shorter = toy_fit(tmp_path / "resumed", max_epochs=30)  # a smaller budget cannot reuse a longer run
    assert shorter.resumed_from is None and shorter.epochs == 30
    assert same(shorter.history, straight.history[:30])


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    max_epochs = 150
    straight = toy_fit(tmp_path / "straight", max_epochs=max_epochs, early_stopping=100)
    out = tmp_path / "killed"
    code = (f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); import test_training as t; "
            f"t._run_toy_fit_for_kill_test({str(out)!r}, {max_epochs})")
    env = {**os.environ, "MESODYN_TOY_DELAY": "0.003", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = toy_fit(out, max_epochs=max_epochs, early_stopping=100)
    assert resumed.resumed_from is not None and 10 <= resumed.resumed_from < max_epochs
    assert same(resumed.history, straight.history)
    for name in ("weights.pt", "history.csv", "summary.json"):
        assert (tmp_path / "straight" / name).read_bytes() == (out / name).read_bytes(), name
    assert same_checkpoint(tmp_path / "straight" / "last.pt", out / "last.pt")


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    toy_fit(tmp_path / "shared", lr=0.02, max_epochs=20)
    with pytest.warns(RuntimeWarning, match="from scratch"):
        reused = toy_fit(tmp_path / "shared", max_epochs=20)
    fresh = toy_fit(tmp_path / "fresh", max_epochs=20)
    assert reused.resumed_from is None and same(reused.history, fresh.history)
    assert (tmp_path / "shared" / "weights.pt").read_bytes() == (tmp_path / "fresh" / "weights.pt").read_bytes()


def test_non_finite_loss_stops_and_keeps_the_last_finite_checkpoint(tmp_path):
    # 14 training trajectories, batch 4: 3 batches x 2 steps per epoch, plus 2 calls per validation
    # -> the model returns inf from call 70 on, during epoch 12 (after the checkpoint at epoch 10).
    with pytest.warns(RuntimeWarning, match="non-finite training loss at epoch 12"):
        result = toy_fit(tmp_path, model={"name": "exact_diffusion", "blowup_after": 70})
    assert result.stop_reason.startswith("non-finite") and result.epochs == 10 and result.best_epoch == 10
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 10 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    weights = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rerun sees the stopped run and does not train into the inf again
        again = toy_fit(tmp_path, model={"name": "exact_diffusion", "blowup_after": 70})
    assert again.stop_reason == result.stop_reason


def test_divergence_before_any_validation_is_an_error(tmp_path):
    with pytest.raises(TrainingDivergedError, match="before any validation"):
        toy_fit(tmp_path, model={"name": "exact_diffusion", "blowup_after": 5})


def test_model_config_grid_must_agree_with_the_data(tmp_path):
    with pytest.raises(ValueError, match="'shape'.*contradicts the data"):
        toy_fit(tmp_path, model={"name": "exact_diffusion", "shape": [64]})


# ----------------------------------------------------------------------------------------------------------
# with the real model (mesodyn.onsager) on the authors' reference data
# ----------------------------------------------------------------------------------------------------------
def test_fit_speconsnet_on_reference_allen_cahn_learns(tmp_path, reference):
    onsager = pytest.importorskip("mesodyn.onsager")
    data = reference("allen_cahn")  # 8 trajectories: 6/1/1
    train = dict(batch_size=6, max_epochs=30, valid_every=10, early_stopping=5, lr=3e-3, seed=0, split_seed=0,
                 dtype="float32", device="cpu")
    result = fit(data, model_config={"name": "speconsnet", "hidden": 16}, train=TrainConfig(**train),
                 out_dir=tmp_path, progress=False)
    assert result.split == split_trajectories(8, fractions=(0.7, 0.2, 0.1), seed=0)
    model = load_model(tmp_path)
    assert isinstance(model, onsager.SpecOnsNet) and model.config["dt"] == 1e-3 and model.config["shape"] == [256]
    torch.manual_seed(0)
    untrained = build_model(model.config)
    u = torch.tensor(data.u.values[result.split["valid"]][:, 50:61], dtype=torch.float32)
    trained_loss = float(rollout_loss(model, u, rollout_steps=3).detach())
    untrained_loss = float(rollout_loss(untrained, u, rollout_steps=3).detach())
    assert trained_loss < 0.8 * untrained_loss  # 30 optimizer steps: a clear but partial improvement
    valid = [row["valid_loss"] for row in result.history if not math.isnan(row["valid_loss"])]
    assert len(valid) == 3 and valid[0] > valid[1] > valid[2] == result.best_valid_loss


def test_fit_speconsnet_runs_on_the_2d_reference(tmp_path, reference):
    pytest.importorskip("mesodyn.onsager")
    data = reference("allen_cahn_2d").isel(time=slice(0, 12))  # 2 trajectories: 1 train, 1 validation
    train = TrainConfig(window=5, rollout_steps=2, batch_size=8, max_epochs=4, valid_every=2, split=(0.5, 0.5, 0.0),
                        device="cpu")
    result = fit(data, model_config={"name": "speconsnet", "hidden": 8, "nonlocal_modes": 4}, train=train,
                 out_dir=tmp_path, progress=False)
    assert result.epochs == 4 and math.isfinite(result.best_valid_loss)
    assert load_model(tmp_path).config["shape"] == [128, 128]


def test_fit_losses_are_bitwise_those_of_the_plain_step(tmp_path):
    """50 optimizer steps of ``fit`` (tiny SpecOnsNet with the interpolant F', float32) against a plain loop of the
    documented recipe (same seed, same window draws, Adam, the K-step loss): the losses agree bit for bit, so the
    loop's own work (the non-finite guard, validation, checkpoints, the schedule at a constant rate) never changes
    the arithmetic of a step."""
    from mesodyn.fields import dataset_name

    data = diffusion_data(n_samples=12, nx=32)
    model = {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 4, "local_derivative": "interpolant"}
    train = TrainConfig(window=5, rollout_steps=2, batch_size=4, batches_per_epoch=1, lr=1e-2, max_epochs=50,
                        valid_every=25, early_stopping=5, lr_patience=1000, seed=7, split_seed=1, device="cpu")
    result = fit(data, model_config=model, train=train, out_dir=tmp_path, progress=False)

    config = config_for_data(model, grid=grid_from_data(data), dataset=dataset_name(data), attrs=data.attrs)
    torch.manual_seed(train.seed)
    net = build_model(config)
    net, losses = _plain_loop(data, config, train, adam)
    assert [row["train_loss"] for row in result.history] == losses
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 torch.load(tmp_path / "last.pt", weights_only=True)["model"].values()))


def _plain_loop(data, config, train, optimizer_for):
    """The documented recipe as a plain loop: the seed's weights and window draws, the K-step loss, the optimizer."""
    from mesodyn.models import cast_module
    from mesodyn.training.data import gather_windows

    torch.manual_seed(train.seed)
    net = build_model(config)
    cast_module(net, device=torch.device("cpu"), dtype=torch.float32)
    optimizer = optimizer_for(net.parameters(), train.lr)
    u = torch.as_tensor(data["u"].values, dtype=torch.float32)
    train_idx = torch.as_tensor(split_trajectories(u.shape[0], fractions=train.split, seed=train.split_seed)["train"])
    generator = torch.Generator().manual_seed(train.seed)
    losses = []
    for _ in range(train.max_epochs):
        order = torch.randperm(train_idx.numel(), generator=generator)
        starts = torch.randint(0, u.shape[1] - train.window + 1, (train.batch_size,), generator=generator)
        windows = gather_windows(u, train_idx[order[:train.batch_size]], starts, train.window)
        optimizer.zero_grad(set_to_none=True)
        loss = rollout_loss(net, windows, rollout_steps=train.rollout_steps)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return net, losses


@pytest.mark.parametrize("stepper", ["euler", "etdrk2"])  # the default and speconsnet_avf's training stepper
def test_compiled_kernels_and_fused_adam_keep_the_losses_of_the_aten_step(stepper, monkeypatch):
    """50 steps of the loop's step (compiled CPU kernels for the table nodes and V_nl's gradient, fused Adam)
    against the same steps with ATen operators and PyTorch's default Adam: the same arithmetic up to rounding, so
    the losses agree to 3e-4 relative (measured: 9e-6 with Euler, 4e-5 with ETDRK2, whose tiny model at this rate
    amplifies round-off most)."""
    import mesodyn.onsager.energy as energy
    from mesodyn.fields import dataset_name

    data = diffusion_data(n_samples=12, nx=32)
    model = {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 4, "local_derivative": "interpolant",
             "stepper": stepper}
    train = TrainConfig(window=5, rollout_steps=2, batch_size=4, batches_per_epoch=1, lr=1e-2, max_epochs=50,
                        valid_every=25, early_stopping=5, lr_patience=1000, seed=7, split_seed=1, device="cpu")
    config = config_for_data(model, grid=grid_from_data(data), dataset=dataset_name(data), attrs=data.attrs)
    _, ours = _plain_loop(data, config, train, adam)
    monkeypatch.setattr(energy, "on_nodes", lambda weights, tangent: None)
    monkeypatch.setattr(energy, "_compiled_nonlocal", lambda c, weights: False)
    _, aten = _plain_loop(data, config, train, lambda params, lr: torch.optim.Adam(params, lr=lr))
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, aten))
    assert worst <= 3e-4, worst
    assert ours[-1] < 0.5 * ours[0]  # (it trains)


def test_the_non_finite_guard_sees_nan_and_inf_in_any_gradient():
    from mesodyn.training.loop import _all_finite

    finite = [torch.ones(3), torch.full((2, 2), 3e38), torch.ones(2, dtype=torch.float64), None]
    assert _all_finite(finite) and _all_finite([])
    for bad in (math.nan, math.inf, -math.inf):
        assert not _all_finite([*finite, torch.tensor([0.0, bad])])
        # (a dtype NumPy does not take goes the ATen way)
        assert _all_finite([*finite, torch.ones(2, dtype=torch.bfloat16)])
        assert not _all_finite([*finite, torch.tensor([0.0, bad], dtype=torch.bfloat16)])


def test_speconsnet_trains_with_train_stepper_and_validates_with_its_stepper(tmp_path, monkeypatch):
    """``train_stepper`` is the training loss's step; validation (model.eval()) rolls out with ``stepper``."""
    from mesodyn.onsager import steppers

    used = {True: set(), False: set()}  # training mode -> steppers called
    original = steppers.step

    def spy(model, u, dt, stepper):
        used[model.training].add(stepper)
        return original(model, u, dt, stepper)

    monkeypatch.setattr("mesodyn.onsager.model._step", spy)
    model = {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 2, "stepper": "avf", "substeps": 2,
             "train_stepper": "etdrk2", "train_substeps": 1}
    train = TrainConfig(**{**TOY_TRAIN, "max_epochs": 4, "valid_every": 2})
    result = fit(diffusion_data(n_samples=8, nx=16), model_config=model, train=train, out_dir=tmp_path)
    assert used == {True: {"etdrk2"}, False: {"avf"}}
    assert math.isfinite(result.best_valid_loss)
    saved = json.loads((tmp_path / "model.json").read_text())
    assert (saved["stepper"], saved["train_stepper"], saved["substeps"]) == ("avf", "etdrk2", 2)
