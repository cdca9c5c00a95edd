"""Command-line interface: every workflow step is usable without Snakemake.

Examples
--------
``mesodyn simulate fput --config config/config.yaml --out results/data/fput.nc --micro results/micro/fput.nc``
``mesodyn solve kdv --set data.kdv.n_samples=8 --out kdv8.nc``
``mesodyn fit results/data/kdv.nc --model fno --out runs/kdv_fno --set fit.train.max_epochs=50``
``mesodyn evaluate runs/kdv_fno results/data/kdv.nc --out kdv_fno.nc``
``mesodyn table results/metrics/*/*/*.nc --out results/tables``
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mesodyn.config import ConfigError
from mesodyn.registry import DATASETS, is_chain

__all__ = ["main"]

CHAINS = tuple(name for name in DATASETS if is_chain(name))
PDES = tuple(name for name in DATASETS if not is_chain(name))
DEFAULT_CONFIG = Path("config") / "config.yaml"
CONFIG_HELP = ("workflow config file (YAML); default: config/config.yaml of the current folder if there is one (as "
               "snakemake reads it), else the built-in defaults, the paper's settings")


def _parser() -> argparse.ArgumentParser:
    from mesodyn import __version__

    parser = argparse.ArgumentParser(prog="mesodyn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate a microscopic chain data set and coarse-grain it")
    sim.add_argument("dataset", choices=CHAINS)
    sim.add_argument("--config", default=None, help=CONFIG_HELP)
    sim.add_argument("--out", required=True, help="fields file to write (netCDF)")
    sim.add_argument("--micro", default=None, help="microscopic trajectories file to write (netCDF)")
    sim.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set data.fput.n_samples=8 (repeatable)")
    solve = sub.add_parser("solve", help="solve a continuum PDE data set with our pseudo-spectral solvers")
    solve.add_argument("dataset", choices=PDES)
    solve.add_argument("--config", default=None, help=CONFIG_HELP)
    solve.add_argument("--out", required=True, help="fields file to write (netCDF)")
    solve.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    solve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set data.kdv.scheme=etdrk4 (repeatable)")
    fit = sub.add_parser("fit", help="train one model on one fields file (any registered model)")
    fit.add_argument("data", help="fields file (netCDF) written by simulate or solve")
    fit.add_argument("--model", required=True,
                     help="a run name of the config's fit.models, or a registered model name (speconsnet, fno, ...)")
    fit.add_argument("--out", required=True, help="run folder to write (weights.pt, model.json, history.csv, ...)")
    fit.add_argument("--config", default=None, help=CONFIG_HELP)
    fit.add_argument("--seed", type=int, default=None, help="training seed (default: the first of fit.seeds)")
    fit.add_argument("--threads", type=int, default=None, help="threads (default: fit.threads)")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set fit.train.max_epochs=50 or "
                          "--set fit.models.fno.n_modes=16 (repeatable)")
    ev = sub.add_parser("evaluate", help="roll out a fitted model on the held-out and the paper's trajectories")
    ev.add_argument("run", help="run folder written by fit (model.json, weights.pt, split.json)")
    ev.add_argument("data", help="the fields file the model was fitted on")
    ev.add_argument("--out", required=True, help="metrics file to write (netCDF)")
    ev.add_argument("--label", default=None, help="model label in tables (default: the model's name)")
    ev.add_argument("--batch-size", type=int, default=32, help="trajectories per rollout batch")
    ev.add_argument("--threads", type=int, default=1)
    table = sub.add_parser("table", help="the paper's table (steps 1-5) from metrics files, as CSV, Markdown, LaTeX")
    table.add_argument("metrics", nargs="+", help="metrics files written by evaluate")
    table.add_argument("--out", required=True, help="folder for rel_rmse_first5.csv/.md/.tex")
    table.add_argument("--steps", type=int, default=5)
    study = sub.add_parser("study", help="numerical studies (printed as Markdown tables)")
    study.add_argument("topic", choices=["chains"], help="chains: substep convergence and interpolation error")
    study.add_argument("--samples", type=int, default=8)
    return parser


def _study_chains(n_samples: int) -> None:
    from mesodyn.chains import FENEChain, FPUTChain
    from mesodyn.chains.studies import interpolation_error, substep_convergence

    for model in (FPUTChain(), FENEChain()):
        table = substep_convergence(model, n_samples=n_samples)
        print(f"\n{model.name.upper()}: rel. L2 error vs 32x substeps\n")
        print(table.to_markdown(index=False, floatfmt=".3g"))
    for sites in (128, 209):
        print()
        print(interpolation_error(sites).to_markdown(index=False, floatfmt=".3g"))


def config_path(given: str | None) -> Path | None:
    """The config file a command reads: ``given``; else ``config/config.yaml`` of the current folder where it exists
    (the workflow's default, so that the command line and ``snakemake`` agree inside a checkout); else ``None``, the
    built-in defaults (the schema's, which are the paper's settings), so that an installed mesodyn works anywhere."""
    if given is not None:
        return Path(given)
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    logging.getLogger("mesodyn").info("no --config and no %s here: using the built-in defaults", DEFAULT_CONFIG)
    return None


def _override(config: dict, assignments: Sequence[str]) -> dict:
    import yaml

    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}.")
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _scalar(yaml.safe_load(value))
    return config


def _scalar(value):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; on the command line it means the number."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            return value
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "study":
        _study_chains(args.samples)
        return 0
    if args.command in ("evaluate", "table"):
        return _results(args)
    try:
        import yaml

        from mesodyn.config import validate_config

        path = config_path(args.config)
        raw = {}
        if path is not None:
            with open(path) as fh:
                raw = yaml.safe_load(fh) or {}
        config = validate_config(_override(raw, args.set))
    except (ConfigError, OSError) as exc:
        print(f"mesodyn: {exc}", file=sys.stderr)
        return 2
    if args.command == "fit":
        return _fit(args, config)
    from mesodyn.pipeline import log_to, simulate_chain_files, solve_pde_files

    with log_to(None):
        if args.command == "simulate":
            simulate_chain_files(args.dataset, config, fields_path=args.out, micro_path=args.micro,
                                 threads=args.threads)
        elif args.command == "solve":
            solve_pde_files(args.dataset, config, fields_path=args.out, threads=args.threads)
    return 0


def _results(args: argparse.Namespace) -> int:
    """``mesodyn evaluate`` and ``mesodyn table``: file in, file out, no workflow config needed."""
    from mesodyn.pipeline import evaluate_run_files, log_to, table_files

    try:
        with log_to(None):
            if args.command == "evaluate":
                import json
                from pathlib import Path

                from mesodyn.fields import dataset_name

                label = args.label or json.loads((Path(args.run) / "model.json").read_text())["name"]
                evaluate_run_files(args.run, args.data, args.out, label=label,
                                   dataset=dataset_name(args.data) or "unknown",
                                   batch_size=args.batch_size, threads=args.threads)
            else:
                table_files(args.metrics, out_dir=args.out, steps=args.steps)
    except (OSError, ValueError, KeyError) as exc:
        print(f"mesodyn: {str(exc).rstrip('.')}.", file=sys.stderr)
        return 2
    return 0


def _fit(args: argparse.Namespace, config: dict) -> int:
    """``mesodyn fit``: the run's model config and training settings exactly as the workflow's fit rule has them."""
    from mesodyn.fields import FieldsContractError, dataset_name
    from mesodyn.pipeline import fit_files, log_to
    from mesodyn.registry import DATASETS, MODELS
    from mesodyn.training.settings import train_settings

    from mesodyn.config import run_model_config

    runs = config["fit"]["models"]
    if args.model in runs:
        model = run_model_config(runs[args.model])
    elif args.model in MODELS:
        model = {"name": args.model}
    else:
        print(f"mesodyn: --model {args.model!r} is neither a run of fit.models ({', '.join(sorted(runs))}) nor a "
              f"registered model ({', '.join(sorted(MODELS))}).", file=sys.stderr)
        return 2
    try:
        dataset = dataset_name(args.data)  # the attributes only: fit_files reads the fields once
        run_seeds = runs[args.model].get("seeds") if args.model in runs else None
        seed = args.seed if args.seed is not None else (run_seeds or config["fit"]["seeds"])[0]
        train = train_settings(config["fit"], dataset=dataset or "", seed=seed,
                               run=args.model if args.model in runs else None)
        from mesodyn.models import check_model_config

        check_model_config(model, dataset=dataset if dataset in DATASETS else None)
    except (OSError, ValueError, FieldsContractError) as exc:
        print(f"mesodyn: {str(exc).rstrip('.')}.", file=sys.stderr)
        return 2
    with log_to(None):
        fit_files(args.data, model=model, train=train, out_dir=args.out,
                  threads=args.threads or config["fit"]["threads"], progress=config.get("progress", True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
