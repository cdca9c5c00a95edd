"""Our 1-D SpecOnsNet training step against the authors' on the same batch, side by side in one process.

The authors' step is that of their public code (MLDS-NUS/Meso-SpecOnsNet, arXiv 2605.16211): ``SpectralOnsagerNet1d``
with the potential of their SpecOnsNet experiments (``CoerciveAutogradPotentialV6``: ``F`` an MLP 1 -> 64 -> 64 -> 64
-> 1 with SiLU and a final sine, ``V_nl`` a complex MLP of the lowest 16 modes; ``F'`` and ``dV_nl`` by autograd with
``create_graph=True``), explicit Euler, and the K-step loss of their Lightning module (K = 3, each step on the
detached previous output, mean of the K mean squared errors), then Adam. Their modules are imported from a checkout
of their repository (``--authors PATH`` or ``MESODYN_AUTHORS_REPO``); nothing of theirs is copied here. Their package
``__init__`` files import packages we do not install (``neuralop``, ``lightning``), so the modules are loaded with
stand-in parent packages; their loss is written out below in plain torch, as in their ``MesoLitModule.model_step``.
Their configuration compiles the model (``compile: true``, on a GPU); here both steps run eagerly on the CPU.

Ours is the step of :func:`mesodyn.training.fit` with the paper's model at the same sizes (SpecOnsNet, interpolant
``F'``, explicit Euler; ``mesodyn.training.rollout_loss``, Adam). Both steps train their own model on the same windows
(32 windows of 11 frames, 256 points, float32), interleaved step by step, one thread. By default the windows are the
smooth synthetic ones of ``bench_models.py`` and our model is freshly initialized; with ``--fit DIR --data FILE`` our
model is a trained fit (its ``F'`` decides how many bins its table needs; FENE's is the steepest) and both steps
read windows of that data set (the authors' step costs the same whatever its weights and data).

Run ``python benchmarks/authors_step.py --authors PATH [--batch 32] [--steps 40] [--fit DIR --data FILE]
[--out NAME]``; writes ``benchmarks/results/<NAME>.md`` (default ``authors_step``).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from bench_models import GRIDS, windows, write_report  # the sizes and data of the cost table (same folder)
from mesodyn.models import build_model, config_for_data
from mesodyn.training import adam, rollout_loss



def authors_model(root: Path) -> torch.nn.Module:
    """Their SpecOnsNet (experiment ``kdv/s_onsagernet``: potential ``v7``, Euler) built from their modules."""
    for name in ("src", "src.models", "src.models.components", "src.models.components.dynamics"):
        package = types.ModuleType(name)  # stand-ins: their __init__ files import neuralop and lightning
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    sys.path.insert(0, str(root))
    mlp = importlib.import_module("src.models.components.utils.mlp").Mlp
    dynamics = importlib.import_module("src.models.components.dynamics.spectral_onsagernet")
    potential = importlib.import_module(
        "src.models.components.dynamics.spectral_onsagernet.potential.coercive_autograd_v6")
    layers = dict(hidden_dims=[64, 64, 64], out_dim=1, act_name="silu", final_act_name="sine", final_bias=False)
    energy = potential.CoerciveAutogradPotentialV6(Lx=2 * math.pi, Nx=256, F_module=mlp(in_dim=1, **layers),
                                                   v_module=mlp(in_dim=16, complex=True, **layers), v_truncate=16)
    return dynamics.SpectralOnsagerNet1d(learn_M=True, learn_W=True, potential=energy, method="euler")


def authors_loss(model: torch.nn.Module, seq: torch.Tensor, *, k_steps: int = 3, dt: float = 1e-3) -> torch.Tensor:
    """Their K-step loss (``MesoLitModule.model_step`` with intermediate losses, no regularization weight)."""
    x = seq[:, :-k_steps]
    loss = 0.0
    for k in range(k_steps):
        b, length = x.shape[:2]
        x = model.forward_step(x.detach().reshape(b * length, *x.shape[2:]), dt=dt).reshape(x.shape)
        target = seq[:, k + 1: seq.shape[1] - k_steps + k + 1]
        loss = loss + torch.nn.functional.mse_loss(x, target) / k_steps
    return loss


def data_windows(path: Path, count: int = 256) -> torch.Tensor:
    """``count`` windows of 11 frames from the first 200 trajectories of a data set (seeded draws)."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        fields = torch.as_tensor(ds["u"].values[:200], dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, fields.shape[0], (count,), generator=gen)
    first = torch.randint(0, fields.shape[1] - 10, (count,), generator=gen)
    return torch.stack([fields[n, s:s + 11] for n, s in zip(idx.tolist(), first.tolist())])


def make_steps(root: Path, batch: int, fit: Path | None = None, data: Path | None = None):
    pool = windows(1, 64) if data is None else data_windows(data)
    draws = torch.Generator().manual_seed(0)
    picks = [torch.randint(0, pool.shape[0], (batch,), generator=draws) for _ in range(1000)]

    torch.manual_seed(0)
    theirs = authors_model(root)
    if fit is None:
        config = config_for_data({"name": "speconsnet", "local_derivative": "interpolant"}, grid=GRIDS[1],
                                 dataset="kdv", attrs={})
        torch.manual_seed(0)
        ours = build_model(config).float()
    else:
        from mesodyn.models import load_model

        ours = load_model(fit).float()
        ours.train()

    def stepper(model, loss_fn, channel: bool, lr: float = 1e-3):
        # each side's own optimizer: the authors' code uses PyTorch's default Adam, our loop mesodyn.training.adam
        optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if channel else adam(model.parameters(), lr))
        count = iter(picks)

        def step() -> float:
            seq = pool[next(count)]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, seq.unsqueeze(2) if channel else seq)  # theirs: (batch, L, channel, x)
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        return step

    return {"authors": stepper(theirs, authors_loss, True),
            # a trained fit keeps its weights (and with them its table's bins): a learning rate of 1e-9
            "mesodyn": stepper(ours, lambda m, s: rollout_loss(m, s, rollout_steps=3), False,
                               1e-3 if fit is None else 1e-9)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", default=os.environ.get("MESODYN_AUTHORS_REPO"),
                        help="a checkout of MLDS-NUS/Meso-SpecOnsNet (or set MESODYN_AUTHORS_REPO)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--fit", type=Path, help="a trained SpecOnsNet folder (results/models/<data>/speconsnet/seed42)")
    parser.add_argument("--data", type=Path, help="the data set of --fit (results/data/<data>.nc)")
    parser.add_argument("--out", default="authors_step")
    args = parser.parse_args(argv)
    if (args.fit is None) != (args.data is None):
        parser.error("--fit and --data go together")
    if not args.authors or not (Path(args.authors) / "src" / "models").is_dir():
        parser.error("--authors must name a checkout of MLDS-NUS/Meso-SpecOnsNet (its src/models is missing)")
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    steps = make_steps(Path(args.authors), args.batch, args.fit, args.data)
    times = {name: [] for name in steps}
    for i in range(args.steps + 2):
        for name, step in steps.items():
            start = time.perf_counter()
            loss = step()
            if not math.isfinite(loss):
                raise SystemExit(f"{name}: non-finite loss at step {i}")
            if i >= 2:  # two warm-up steps
                times[name].append(time.perf_counter() - start)
    ours, theirs = times["mesodyn"], times["authors"]
    lines = [
        f"# Our training step against the authors' (1-D, batch {args.batch}, 1 thread)",
        "",
        f"`python benchmarks/authors_step.py --authors PATH --batch {args.batch} --steps {args.steps}"
        + (f" --fit {args.fit} --data {args.data}" if args.fit else "") + "`; torch "
        f"{torch.__version__}, float32, K = 3, windows of 11 frames, 256 points; steps 3..{args.steps + 2} of each, "
        f"interleaved step by step in one process (load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end). The authors' step: their SpectralOnsagerNet1d with "
        "CoerciveAutogradPotentialV6 (experiment kdv/s_onsagernet), Euler, their K-step loss, Adam, eager. "
        + ("Windows: the synthetic ones of bench_models.py; our model freshly initialized." if args.fit is None
           else f"Windows of {args.data.name}; our model the trained fit {args.fit}."),
        "",
        "| step | ms (min) | ms (median) |",
        "|---|---|---|",
        f"| authors' code | {min(theirs) * 1e3:.1f} | {statistics.median(theirs) * 1e3:.1f} |",
        f"| mesodyn | {min(ours) * 1e3:.2f} | {statistics.median(ours) * 1e3:.2f} |",
        "",
        f"Ratio authors / mesodyn: {min(theirs) / min(ours):.1f}x (minima), "
        f"{statistics.median(theirs) / statistics.median(ours):.1f}x (medians).",
    ]
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
