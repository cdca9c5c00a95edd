"""The training loop: :func:`fit` one model on the trajectories of a fields data set, resumable."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from mesodyn.fields import dataset_name, grid_from_data
from mesodyn.models import build_model, cast_module, config_for_data, with_grid
from mesodyn.training.checkpoint import (
    CHECKPOINT_FORMAT, cpu_state, load_checkpoint, save_checkpoint, source_fingerprint, torch_bytes, write_run_files,
)
from mesodyn._io import atomic_write
from mesodyn.training.data import data_fingerprint, gather_windows, split_trajectories
from mesodyn.training.loss import rollout_loss
from mesodyn.training.settings import TrainConfig, resolve_device

__all__ = ["FitResult", "TrainingDivergedError", "fit", "Builder", "adam"]

logger = logging.getLogger(__name__)

Builder = Callable[[dict[str, Any]], nn.Module]


class TrainingDivergedError(RuntimeError):
    """The training loss became non-finite before any validation gave usable weights."""


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did. ``resumed_from`` is the epoch of the checkpoint it continued from, if any."""

    out_dir: Path
    epochs: int
    best_epoch: int
    best_valid_loss: float
    stop_reason: str
    device: str
    split: dict[str, list[int]]
    history: list[dict[str, float]] = field(repr=False)
    resumed_from: int | None = None


def adam(parameters, lr: float) -> torch.optim.Adam:
    """The optimizer of every fit: Adam (the paper's), in PyTorch's fused form where the parameters allow it
    (floating point, on the CPU or a CUDA device: one pass over each parameter instead of some ten), else the
    default form. The same update rule; the two round differently (measured: training losses within 1e-5
    relative after 100 steps, ``benchmarks/step_options.py``), and the fused form is what the workflow's numbers
    were made with. Adam's update of a 17.6 M-parameter model (Res-OnsagerNet in 2-D) takes 9.8 ms instead of
    57 ms on one thread; SpecOnsNet's 0.10 ms instead of 0.44 ms."""
    parameters = list(parameters)
    fused = bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


def _all_finite(tensors) -> bool:
    """Whether every tensor is finite, decided by one reduction over all of them.

    The largest magnitude of each tensor (an infinity norm: NaN propagates through it) is finite exactly when the
    tensor is; one stacked check replaces a check and a host round trip per parameter (about 0.2 ms of the
    ~10 ms fixed cost of a 1-D SpecOnsNet step, ``benchmarks/step_options.py``). It only decides whether to stop,
    so the training arithmetic is unchanged.
    """
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return True
    if all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors):
        # the same decision from NumPy's views: 28 us instead of 75 us for SpecOnsNet's 18 gradients
        return bool(np.isfinite(np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])).all())
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, math.inf))).all())


class _Run:
    """One training run: the data on the CPU, the model and optimizer on the device, the counters."""

    def __init__(self, data: xr.Dataset, model_config: Mapping[str, Any], train: TrainConfig, out_dir: Path,
                 builder: Builder | None):
        self.train, self.out_dir = train, out_dir
        self.device, self.dtype = resolve_device(train.device), train.torch_dtype
        grid = grid_from_data(data)
        if builder is None:
            config = config_for_data(model_config, grid=grid, dataset=dataset_name(data), attrs=data.attrs)
        else:  # a model outside the registry: only the grid is filled in
            config = with_grid(model_config, grid)
        u_np = np.asarray(data["u"].values)
        self.n_time = u_np.shape[1]
        if self.n_time < train.window:
            raise ValueError(f"window ({train.window}) is longer than the {self.n_time} saved frames.")
        n_samples = u_np.shape[0]
        self.split = split_trajectories(n_samples, fractions=train.split, seed=train.split_seed)
        part = {}
        if train.train_part is not None:
            i, n = train.train_part
            kept = self.split["train"][i::n]
            if not kept:
                raise ValueError(f"train_part {[i, n]} leaves no training trajectory of the "
                                 f"{len(self.split['train'])}.")
            self.split, part = {**self.split, "train": kept}, {"train_part": [i, n]}
        self.split_record = {**self.split, "seed": train.split_seed, "fractions": list(train.split),
                             "n_samples": n_samples, **part}
        torch.manual_seed(train.seed)  # initial weights depend on the seed only, not on what else ran
        self.model = (builder or build_model)(config)
        cast_module(self.model, device=self.device, dtype=self.dtype)
        self.config = dict(getattr(self.model, "config", config))
        self.trainable = bool(getattr(self.model, "trainable", True)) and any(
            p.requires_grad for p in self.model.parameters())
        # A plateau run may be extended by raising max_epochs; a cosine schedule depends on it.
        extendable = ("max_epochs", "device") if train.schedule == "plateau" else ("device",)
        fingerprint_train = {k: v for k, v in train.to_dict().items() if k not in extendable}
        self.fingerprint = {
            "format": CHECKPOINT_FORMAT, "model": json.dumps(self.config, sort_keys=True),
            "train": json.dumps(fingerprint_train, sort_keys=True), "data": data_fingerprint(data),
            "source": source_fingerprint(self.model),
        }
        self.n_parameters = int(sum(p.numel() for p in self.model.parameters()))
        self.u = torch.as_tensor(u_np, dtype=self.dtype)  # kept on the CPU; batches travel to the device
        self.generator = torch.Generator().manual_seed(train.seed)
        self.state: dict[str, Any] = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "best_state": None,
                                      "bad_validations": 0, "history": [], "stop_reason": ""}
        self.resumed_from: int | None = None
        if self.trainable:
            self._setup_optimizer()

    # -- set-up ---------------------------------------------------------------------------------------------
    def _setup_optimizer(self) -> None:
        train = self.train
        self.optimizer = adam(self.model.parameters(), train.lr)
        if train.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda epoch: train.lr_factor_at(epoch))
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=train.lr_factor, patience=train.lr_patience, min_lr=train.min_lr)
        self.train_idx = torch.as_tensor(self.split["train"])
        self.valid_idx = torch.as_tensor(self.split["valid"]).repeat_interleave(train.valid_windows)
        valid_gen = torch.Generator().manual_seed(train.split_seed)
        self.valid_starts = torch.randint(0, self.n_time - train.window + 1, (self.valid_idx.numel(),),
                                          generator=valid_gen)
        n_train = self.train_idx.numel()
        self.per_batch = min(train.batch_size, n_train)
        self.n_batches = max(1, n_train // train.batch_size)
        if train.batches_per_epoch is not None:
            self.n_batches = min(self.n_batches, train.batches_per_epoch)

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    def usable_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to continue from, or ``None`` to start from scratch."""
        ckpt = load_checkpoint(self.last_path) if self.last_path.exists() else None
        if ckpt is not None and ckpt.get("fingerprint") != self.fingerprint:
            warnings.warn(f"{self.last_path} was made with another config, data or code; training from scratch.",
                          RuntimeWarning, stacklevel=3)
            return None
        if ckpt is not None and ckpt["epoch"] > self.train.max_epochs:
            return None  # trained past the new budget: a run cannot go back, so start again
        return ckpt

    def restore(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.generator.set_state(ckpt["rng"]["data"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        for key in ("epoch", "best_loss", "best_epoch", "best_state", "bad_validations", "history"):
            self.state[key] = ckpt[key]
        self.state["stop_reason"] = ""
        self.resumed_from = int(ckpt["epoch"])

    # -- state ----------------------------------------------------------------------------------------------
    def checkpoint(self, stop_reason: str) -> dict[str, Any]:
        trainable = self.trainable
        return {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, "model_config": self.config,
            "train": self.train.to_dict(), "split": self.split_record, "n_parameters": self.n_parameters,
            "model": cpu_state(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()) if trainable else {},
            "scheduler": self.scheduler.state_dict() if trainable else {},
            "rng": {
                "data": self.generator.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            **{k: self.state[k] for k in ("epoch", "best_loss", "best_epoch", "best_state", "bad_validations",
                                           "history")},
            "stop_reason": stop_reason,
        }

    def result(self, ckpt: Mapping[str, Any]) -> FitResult:
        return FitResult(
            out_dir=self.out_dir, epochs=int(ckpt["epoch"]), best_epoch=int(ckpt["best_epoch"]),
            best_valid_loss=float(ckpt["best_loss"]), stop_reason=str(ckpt["stop_reason"]), device=str(self.device),
            split={k: list(v) for k, v in ckpt["split"].items() if k in ("train", "valid", "test")},
            history=[dict(row) for row in ckpt["history"]], resumed_from=self.resumed_from,
        )

    # -- work -----------------------------------------------------------------------------------------------
    def validate(self) -> float:
        """Mean loss over the fixed validation windows."""
        self.model.eval()
        total, count, size = 0.0, 0, self.train.batch_size
        for start in range(0, self.valid_idx.numel(), size):
            windows = gather_windows(self.u, self.valid_idx[start:start + size],
                                     self.valid_starts[start:start + size], self.train.window).to(self.device)
            # Gradients stay enabled: a model may take dV/du by autograd inside its step.
            loss = rollout_loss(self.model, windows, rollout_steps=self.train.rollout_steps).detach()
            total += float(loss) * windows.shape[0]
            count += windows.shape[0]
        self.model.train()
        return total / count

    def train_epoch(self) -> float | str:
        """One epoch of optimizer steps; the mean training loss, or the name of what became non-finite."""
        train, n_train = self.train, self.train_idx.numel()
        order = torch.randperm(n_train, generator=self.generator)
        starts = torch.randint(0, self.n_time - train.window + 1, (self.n_batches * self.per_batch,),
                               generator=self.generator)
        epoch_loss = 0.0
        for b in range(self.n_batches):
            pick = slice(b * self.per_batch, (b + 1) * self.per_batch)
            windows = gather_windows(self.u, self.train_idx[order[pick]], starts[pick], train.window).to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = rollout_loss(self.model, windows, rollout_steps=train.rollout_steps)
            if not torch.isfinite(loss):
                return "training loss"
            loss.backward()
            if not _all_finite(p.grad for p in self.model.parameters()):
                return "gradient"
            self.optimizer.step()
            epoch_loss += float(loss.detach())
        return epoch_loss / self.n_batches

    def diverged(self, epoch: int, what: str) -> FitResult:
        """Stop after a non-finite loss or gradient, keeping the best weights and the last finite checkpoint."""
        if self.state["best_state"] is None or not self.last_path.exists():
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch} ({what}) before any validation; no usable weights "
                "(lower lr, or check the model's stability at the data's dt)."
            )
        last = load_checkpoint(self.last_path)
        message = (f"non-finite {what} at epoch {epoch}; training stopped, keeping the best weights "
                   f"(epoch {last['best_epoch']}) and the last finite checkpoint (epoch {last['epoch']})")
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        last["stop_reason"] = message
        atomic_write(self.last_path, torch_bytes(last))
        write_run_files(self.out_dir, last)
        return self.result(last)

    def end_of_epoch(self, epoch: int, epoch_loss: float, lr: float) -> tuple[str, bool] | FitResult:
        """Schedule, validate and record epoch ``epoch``; returns ``(stop_reason, validated)``."""
        if self.train.schedule == "cosine":
            self.scheduler.step()
        else:
            self.scheduler.step(epoch_loss)
        row = {"epoch": epoch, "train_loss": epoch_loss, "valid_loss": math.nan, "lr": lr}
        self.state["epoch"] = epoch
        validation = epoch % self.train.valid_every == 0
        if validation:
            valid_loss = self.validate()
            if not math.isfinite(valid_loss):
                return self.diverged(epoch, "validation loss")
            row["valid_loss"] = valid_loss
            if valid_loss < self.state["best_loss"]:
                self.state.update(best_loss=valid_loss, best_epoch=epoch, bad_validations=0,
                                  best_state=cpu_state(self.model.state_dict()))
            else:
                self.state["bad_validations"] += 1
        self.state["history"].append(row)
        stop_reason = ""
        if self.state["bad_validations"] >= self.train.early_stopping:
            stop_reason = "early_stopping"
        elif epoch == self.train.max_epochs:
            stop_reason = "max_epochs"
        if validation or stop_reason:
            save_checkpoint(self.out_dir, self.checkpoint(stop_reason))
        return stop_reason, validation

    def loop(self, progress: bool) -> FitResult:
        from tqdm.auto import tqdm

        name = self.config.get("name", type(self.model).__name__)
        bar = tqdm(total=self.train.max_epochs, initial=self.state["epoch"], disable=not progress, unit="epoch",
                   desc=f"fit {name}", mininterval=1.0, dynamic_ncols=True)
        self.model.train()
        stop_reason = ""
        try:
            for epoch in range(self.state["epoch"] + 1, self.train.max_epochs + 1):
                lr = self.optimizer.param_groups[0]["lr"]
                epoch_loss = self.train_epoch()
                if isinstance(epoch_loss, str):
                    return self.diverged(epoch, epoch_loss)
                outcome = self.end_of_epoch(epoch, epoch_loss, lr)
                if isinstance(outcome, FitResult):
                    return outcome
                stop_reason, validated = outcome
                bar.update(1)
                if progress and (validated or epoch % 10 == 0):
                    bar.set_postfix(loss=f"{epoch_loss:.3e}", best=f"{self.state['best_loss']:.3e}", lr=f"{lr:.1e}")
                if stop_reason:
                    break
        finally:
            bar.close()
        logger.info("stopped after epoch %d (%s); best validation loss %.6e at epoch %d",
                    self.state["epoch"], stop_reason, self.state["best_loss"], self.state["best_epoch"])
        return self.result(self.checkpoint(stop_reason))

    def write_untrained(self) -> FitResult:
        """A model without trainable parameters: its files are written as they are, with no history."""
        self.state.update(best_state=cpu_state(self.model.state_dict()), best_loss=math.nan)
        ckpt = self.checkpoint("not trainable")
        write_run_files(self.out_dir, ckpt)
        logger.info("%s has no trainable parameters: written without training", self.config.get("name"))
        return self.result(ckpt)


def fit(data: xr.Dataset, *, model_config: Mapping[str, Any], train: TrainConfig, out_dir: str | os.PathLike,
        progress: bool = True, builder: Builder | None = None) -> FitResult:
    """Train a one-step model on the trajectories of ``data`` and write it to ``out_dir``.

    Parameters
    ----------
    data : xarray.Dataset
        A fields data set (``u`` with dims ``(sample, time, x)`` or ``(sample, time, y, x)``).
    model_config : mapping
        The model's config (``name`` picks a registered model, :mod:`mesodyn.registry`); the grid keys and
        the data-dependent keys are filled in from the data (:func:`mesodyn.models.config_for_data`).
    train : TrainConfig
        Training settings.
    out_dir : path
        Receives ``weights.pt`` (best weights, a plain state dict), ``last.pt`` (full checkpoint for resume),
        ``model.json`` (config to rebuild the model), ``history.csv`` (one row per epoch; ``valid_loss`` is
        NaN between validations), ``split.json`` and ``summary.json``; every file is written atomically. A model
        without trainable parameters (``classical``) gets the same files with an empty history and no
        ``last.pt``.
    progress : bool
        Show a progress bar.
    builder : callable, optional
        ``config -> nn.Module`` with a ``step(u)`` method and a ``config`` attribute, for a model outside the
        registry (only the grid keys are filled in); default :func:`mesodyn.models.build_model`.

    Raises
    ------
    TrainingDivergedError
        If the loss becomes non-finite before the first validation. Later, a non-finite loss or gradient
        stops training with a warning; the best weights and the last finite checkpoint are kept.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(data, model_config, train, out_dir, builder)
    if not run.trainable:
        return run.write_untrained()
    ckpt = run.usable_checkpoint()
    if ckpt is not None and (ckpt["stop_reason"] or ckpt["epoch"] == train.max_epochs):
        if ckpt["stop_reason"] != "max_epochs" or ckpt["epoch"] == train.max_epochs:
            write_run_files(out_dir, ckpt)  # finished: nothing to train, the files are rewritten identically
            run.resumed_from = int(ckpt["epoch"])
            return run.result(ckpt)
    if ckpt is not None:
        run.restore(ckpt)
    logger.info(
        "fit %s (%d parameters) on %s/%s: %d/%d/%d train/valid/test trajectories, %d steps per epoch, %s",
        run.config.get("name", type(run.model).__name__), run.n_parameters, run.device, train.dtype,
        len(run.split["train"]), len(run.split["valid"]), len(run.split["test"]), run.n_batches,
        f"resuming after epoch {run.resumed_from}" if run.resumed_from is not None else "from scratch",
    )
    return run.loop(progress)
