"""The fit rule: a tiny Snakefile including workflow/rules/fit.smk trains SpecOnsNet on contract data,
reruns nothing when nothing changed, and reruns when a training setting changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from mesodyn.config import validate_config
from mesodyn.fields import read_fields, write_fields
from mesodyn.training import load_model, split_trajectories, train_settings

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow


def contract_fields(n_samples=6, n_time=13, nx=32, dt=1e-3, seed=0):
    """A small fields file that follows the data contract: decaying random sine sums."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx) * 2 * np.pi / nx
    time = np.arange(n_time) * dt
    k = np.stack([rng.choice(np.arange(1, 6), 3, replace=False) for _ in range(n_samples)])
    amp, phase = rng.uniform(0, 1, (n_samples, 3)), rng.uniform(0, 2 * np.pi, (n_samples, 3))
    decay = np.exp(-(k[:, None, :] ** 2) * time[None, :, None])  # (sample, time, mode)
    waves = np.sin(k[:, :, None] * x + phase[:, :, None])  # (sample, mode, x)
    u = np.einsum("sm,stm,smx->stx", amp, decay, waves)
    ds = xr.Dataset(
        {
            "u": (("sample", "time", "x"), u, {"long_name": "field", "units": "1"}),
            "ic_k": (("sample", "mode"), k),
            "ic_amplitude": (("sample", "mode"), amp),
            "ic_phase": (("sample", "mode"), phase),
        },
        coords={"time": ("time", time, {"long_name": "time", "units": "1"}),
                "x": ("x", x, {"long_name": "position", "units": "1"})},
    )
    return ds


def _snakemake(work, *args):
    env = {**os.environ, "MESODYN_GIT_COMMIT": "pinned-for-test"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=work,
                          capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout + proc.stderr


def test_fit_rule_trains_resumable_runs_and_tracks_its_settings(tmp_path):
    pytest.importorskip("mesodyn.onsager", reason="the fit rule's default model lives in mesodyn.onsager")
    write_fields(contract_fields(), tmp_path / "results" / "data" / "toy.nc", params={"model": "toy"})
    config = validate_config({
        "progress": False,
        "fit": {
            "models": {"euler": {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 2}},
            "seeds": [3],
            "threads": 1,
            "train": {"window": 6, "rollout_steps": 2, "batch_size": 2, "max_epochs": 4, "valid_every": 2,
                      "device": "cpu", "split": [0.5, 0.34, 0.16]},
        },
    })
    config["datasets"] = ["toy"]  # the rule takes any data set name; the schema lists the workflow's own
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        f'include: "{ROOT / "workflow" / "rules" / "fit.smk"}"\n\n\n'
        "rule all:\n    input:\n        expand(\"results/models/{dataset}/{model}/seed{seed}/weights.pt\", "
        "dataset=config[\"datasets\"], model=config[\"fit\"][\"models\"], seed=config[\"fit\"][\"seeds\"]),\n"
    )
    _snakemake(tmp_path)
    run = tmp_path / "results" / "models" / "toy" / "euler" / "seed3"
    for name in ("weights.pt", "model.json", "history.csv", "split.json", "last.pt"):
        assert (run / name).is_file(), name
    torch.load(run / "weights.pt", weights_only=True)
    model = load_model(run)
    assert model.config["shape"] == [32] and model.config["dt"] == 1e-3 and model.config["hidden"] == 8
    split = json.loads((run / "split.json").read_text())
    assert {k: split[k] for k in ("train", "valid", "test")} == split_trajectories(6, fractions=(0.5, 0.34, 0.16), seed=42)
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 4
    assert (tmp_path / "logs" / "fit" / "toy" / "euler" / "seed3.log").stat().st_size > 0
    assert read_fields(tmp_path / "results" / "data" / "toy.nc").sizes["sample"] == 6

    assert "Nothing to be done" in _snakemake(tmp_path, "-n")
    config["fit"]["train"]["max_epochs"] = 6  # a changed setting reruns the job (params are tracked)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = _snakemake(tmp_path, "-n")
    assert "rule fit" in out and "params" in out.lower()


def test_fit_rule_is_snakefmt_clean():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    if not snakefmt.exists():
        pytest.skip("snakefmt is not installed next to this Python")
    proc = subprocess.run([str(snakefmt), "--check", str(ROOT / "workflow" / "rules" / "fit.smk")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_schema_defaults_give_the_papers_training_for_every_data_set():
    from mesodyn.training import TrainConfig

    fit = validate_config({})["fit"]
    for dataset in ("fput", "fene", "kdv", "allen_cahn", "allen_cahn_2d"):
        train = TrainConfig.from_dict(train_settings(fit, dataset=dataset, seed=42))
        assert train.rollout_steps == (5 if dataset == "fput" else 3)
        assert train.batch_size == (8 if dataset == "allen_cahn_2d" else 32)
        assert (train.window, train.max_epochs, train.lr, train.batches_per_epoch) == (11, 10_000, 1e-3, None)
    fit["train"]["window"] = 5  # the default FPUT override K = 5 no longer fits: caught while building the DAG
    with pytest.raises(ValueError, match="rollout_steps"):
        train_settings(fit, dataset="fput", seed=0)
