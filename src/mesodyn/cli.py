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
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mesodyn.config import ConfigError
from mesodyn.fields import FieldsContractError, dataset_name
from mesodyn.registry import DATASETS, is_chain

__all__ = ["main", "CommandLineError"]

CHAINS = tuple(name for name in DATASETS if is_chain(name))
PDES = tuple(name for name in DATASETS if not is_chain(name))
DEFAULT_CONFIG = Path("config") / "config.yaml"
CONFIG_HELP = ("workflow config file (YAML); default: config/config.yaml of the current folder if there is one (as "
               "snakemake reads it), else the built-in defaults, the paper's settings")


class CommandLineError(ValueError):
    """A mistake in a command's arguments or files, described in one sentence."""


# The user's mistakes: each is one sentence on stderr and exit status 2. Anything else is a bug and keeps its
# traceback.
USER_ERRORS = (ConfigError, FieldsContractError, CommandLineError)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one sentence through the CLI's one error path (not usage plus message)."""

    def error(self, message: str):
        raise CommandLineError(f"{self.prog}: {message}")


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


POSITIVE, NON_NEGATIVE = _count(1), _count(0)


def _parser() -> argparse.ArgumentParser:
    from mesodyn import __version__

    parser = _Parser(prog="mesodyn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate a microscopic chain data set and coarse-grain it")
    sim.add_argument("dataset", choices=CHAINS)
    sim.add_argument("--config", default=None, help=CONFIG_HELP)
    sim.add_argument("--out", required=True, help="fields file to write (netCDF)")
    sim.add_argument("--micro", default=None, help="microscopic trajectories file to write (netCDF)")
    sim.add_argument("--threads", type=POSITIVE, default=None, help="threads (default: all cores)")
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set data.fput.n_samples=8 (repeatable)")
    solve = sub.add_parser("solve", help="solve a continuum PDE data set with our pseudo-spectral solvers")
    solve.add_argument("dataset", choices=PDES)
    solve.add_argument("--config", default=None, help=CONFIG_HELP)
    solve.add_argument("--out", required=True, help="fields file to write (netCDF)")
    solve.add_argument("--threads", type=POSITIVE, default=None, help="threads (default: all cores)")
    solve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set data.kdv.scheme=etdrk4 (repeatable)")
    fit = sub.add_parser("fit", help="train one model on one fields file (any registered model)")
    fit.add_argument("data", help="fields file (netCDF) written by simulate or solve, or of your own (docs/your-data.md)")
    fit.add_argument("--model", required=True,
                     help="a run name of the config's fit.models, or a registered model name (speconsnet, fno, ...)")
    fit.add_argument("--out", required=True, help="run folder to write (weights.pt, model.json, history.csv, ...)")
    fit.add_argument("--config", default=None, help=CONFIG_HELP)
    fit.add_argument("--dataset", default=None,
                     help="the data set the file holds (default: its 'dataset' attribute; checked against it)")
    fit.add_argument("--seed", type=NON_NEGATIVE, default=None, help="training seed (default: the first of fit.seeds)")
    fit.add_argument("--threads", type=POSITIVE, default=None, help="threads (default: fit.threads)")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set fit.train.max_epochs=50 or "
                          "--set fit.models.fno.n_modes=16 (repeatable)")
    ev = sub.add_parser("evaluate", help="roll out a fitted model on the held-out and the paper's trajectories")
    ev.add_argument("run", help="run folder written by fit (model.json, weights.pt, split.json)")
    ev.add_argument("data", help="the fields file the model was fitted on")
    ev.add_argument("--out", required=True, help="metrics file to write (netCDF)")
    ev.add_argument("--dataset", default=None,
                    help="the data set the file holds, as tables name it (default: its 'dataset' attribute)")
    ev.add_argument("--label", default=None, help="model label in tables (default: the model's name)")
    ev.add_argument("--batch-size", type=POSITIVE, default=32, help="trajectories per rollout batch")
    ev.add_argument("--threads", type=POSITIVE, default=1)
    table = sub.add_parser("table", help="the paper's table (steps 1-5) from metrics files, as CSV, Markdown, LaTeX")
    table.add_argument("metrics", nargs="+", help="metrics files written by evaluate")
    table.add_argument("--out", required=True, help="folder for rel_rmse_first5.csv/.md/.tex")
    table.add_argument("--steps", type=POSITIVE, default=5)
    study = sub.add_parser("study", help="numerical studies (printed as Markdown tables)")
    study.add_argument("topic", choices=["chains"], help="chains: substep convergence and interpolation error")
    study.add_argument("--samples", type=POSITIVE, default=8)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's mistake is one sentence on stderr and exit status 2, with nothing written."""
    try:
        args = _parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split()).rstrip(".")
        print(f"mesodyn: {message}.", file=sys.stderr)
        return 2


def _study(args: argparse.Namespace) -> int:
    _study_chains(args.samples)
    return 0


def _config(args: argparse.Namespace, **scope: Any) -> dict:
    """``--config`` with the ``--set`` overrides, validated for what the command uses (``scope``: the keywords of
    :func:`mesodyn.config.validate_config`)."""
    from mesodyn.config import read_config_file, validate_config

    path = config_path(args.config)
    raw = read_config_file(path) if path is not None else {}
    return validate_config(_override(raw, args.set), **scope)


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
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set expects KEY=VALUE with a dotted KEY such as data.kdv.n_samples=8, got {item!r}.")
        try:
            parsed = _scalar(yaml.safe_load(value))
        except yaml.YAMLError:
            raise ConfigError(f"--set {item}: the value {value!r} is not valid YAML.") from None
        node = config
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:  # absent, or a YAML key left empty (`fit:`)
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: config key '{'.'.join(parts[:depth + 1])}' is not a section "
                                  f"(it holds {node!r}).")
        node[parts[-1]] = parsed
    return config


def _scalar(value):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; on the command line it means the number."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            return value
    return value


def _generate(args: argparse.Namespace) -> int:
    """``mesodyn simulate`` and ``mesodyn solve``: the data section of this data set (and the coarse grid)."""
    from mesodyn.pipeline import log_to, simulate_chain_files, solve_pde_files

    config = _config(args, data=[args.dataset], fits=())
    _check_out_file(args.out, "--out")
    if getattr(args, "micro", None):
        _check_out_file(args.micro, "--micro")
    with log_to(None):
        if args.command == "simulate":
            simulate_chain_files(args.dataset, config, fields_path=args.out, micro_path=args.micro,
                                 threads=args.threads)
        else:
            solve_pde_files(args.dataset, config, fields_path=args.out, threads=args.threads)
    return 0


def _check_out_file(path: str, option: str) -> None:
    if Path(path).is_dir():
        raise CommandLineError(f"{option} {path} is a folder; name the file to write.")


def _fit(args: argparse.Namespace) -> int:
    """``mesodyn fit``: the run's model config and training settings exactly as the workflow's fit rule has them,
    checked for this run and this data set only."""
    from mesodyn.pipeline import fit_files, log_to
    from mesodyn.training.settings import train_settings

    dataset = args.dataset or dataset_name(args.data)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CommandLineError(f"--out {args.out} is a file; fit writes a run folder.")
    runs = _config(args, data=(), fits=())["fit"]["models"]
    run = args.model if args.model in runs else None
    model = _fit_model(args.model, runs, dataset=dataset)
    config = _config(args, data=(), fits=[(dataset or "", run)], runs_here=True)
    fit = config["fit"]
    run_seeds = fit["models"][run].get("seeds") if run is not None else None
    seed = args.seed if args.seed is not None else (run_seeds or fit["seeds"])[0]
    train = train_settings(fit, dataset=dataset or "", seed=seed, run=run)
    for line in _overridden(args.set, fit, dataset=dataset or "", run=run):
        print(f"mesodyn: warning: {line}", file=sys.stderr)
    with log_to(None):
        fit_files(args.data, model=model, train=train,
                  out_dir=args.out, threads=args.threads or fit["threads"], progress=config.get("progress", True),
                  dataset=dataset)
    return 0


def _fit_model(name: str, runs: Mapping[str, Any], *, dataset: str | None) -> dict:
    """The model config of ``--model``: a run of ``fit.models`` or a registered model with its defaults."""
    from mesodyn.config import run_model_config
    from mesodyn.models import check_model_config
    from mesodyn.registry import DATASETS, MODELS

    if name in runs:
        return run_model_config(runs[name])
    if name not in MODELS:
        raise CommandLineError(f"--model {name!r} is neither a run of fit.models ({', '.join(sorted(runs))}) nor "
                               f"a registered model ({', '.join(sorted(MODELS))}).")
    model = {"name": name}
    try:
        check_model_config(model, dataset=dataset if dataset in DATASETS else None)
    except (ValueError, TypeError) as exc:
        raise CommandLineError(f"--model {name}: {str(exc).rstrip('.')}.") from None
    return model


def _overridden(assignments: Sequence[str], fit: Mapping[str, Any], *, dataset: str, run: str | None) -> list[str]:
    """A sentence for every ``--set`` of a training setting that a more specific key overrides for this run
    (``fit.train`` < ``fit.datasets.<dataset>`` < ``fit.models.<run>.train``; ``fit.seeds`` <
    ``fit.models.<run>.seeds``)."""
    layers = [("fit.train", fit.get("train", {})),
              (f"fit.datasets.{dataset}", fit.get("datasets", {}).get(dataset, {})),
              (f"fit.models.{run}.train", fit.get("models", {}).get(run, {}).get("train", {}) if run else {})]
    out = []
    for item in assignments:
        key = item.partition("=")[0].strip()
        section, _, name = key.rpartition(".")
        if key == "fit.seeds" and run is not None and "seeds" in fit["models"][run]:
            out.append(f"--set {item} does not apply to run '{run}': fit.models.{run}.seeds = "
                       f"{fit['models'][run]['seeds']} overrides it.")
            continue
        level = [prefix for prefix, _ in layers].index(section) if section in [p for p, _ in layers] else None
        if level is None:
            continue
        for prefix, values in reversed(layers[level + 1:]):  # the most specific one is what the fit uses
            if name in values:
                out.append(f"--set {item} does not apply to this fit: {prefix}.{name} = {values[name]!r} "
                           f"overrides it (set that key instead).")
                break
    return out


def _evaluate(args: argparse.Namespace) -> int:
    """``mesodyn evaluate``: file in, file out, no workflow config needed."""
    from mesodyn.pipeline import evaluate_run_files, log_to

    run_dir = Path(args.run)
    for name in ("model.json", "weights.pt", "split.json"):
        if not (run_dir / name).is_file():
            raise CommandLineError(f"run folder {run_dir} has no {name}; fit writes it (mesodyn fit ... --out "
                                   f"{run_dir}).")
    try:
        label = args.label or json.loads((run_dir / "model.json").read_text())["name"]
    except (ValueError, KeyError, TypeError):
        raise CommandLineError(f"run folder {run_dir}: model.json is not a model config with a 'name'.") from None
    dataset = args.dataset or dataset_name(args.data)
    if dataset is None:
        raise CommandLineError(f"fields file {args.data} names no data set (no 'dataset' attribute); name it with "
                               "--dataset, as the tables will.")
    _check_out_file(args.out, "--out")
    if dataset not in DATASETS:  # a data set of the user's own: evaluated on its held-out split alone
        from mesodyn.registry import register_user_datasets

        register_user_datasets({"data": {dataset: {"path": str(args.data)}}})
    with log_to(None):
        evaluate_run_files(run_dir, args.data, args.out, label=label, dataset=dataset,
                           batch_size=args.batch_size, threads=args.threads)
    return 0


def _table(args: argparse.Namespace) -> int:
    from mesodyn.pipeline import log_to, table_files

    try:
        with log_to(None):
            table_files(args.metrics, out_dir=args.out, steps=args.steps)
    except (OSError, ValueError, KeyError) as exc:  # the metrics files' own checks (tables reads files only)
        raise CommandLineError(str(exc)) from None
    return 0


_COMMANDS = {"simulate": _generate, "solve": _generate, "fit": _fit, "evaluate": _evaluate, "table": _table,
             "study": _study}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
