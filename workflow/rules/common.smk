import os
import sys
from pathlib import Path

# mesodyn is imported from this source tree, also inside --sdm conda environments (which do not install it)
SRC = str(Path(workflow.basedir).parent / "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from mesodyn.config import ConfigError, fit_runs, validate_config
from mesodyn.registry import DATASETS, USER_DATASETS, is_chain, ndim

try:
    config.update(validate_config(config))
except ConfigError as exc:
    sys.stderr.write(f"mesodyn: {exc}\n")
    sys.exit(1)

# wildcard constraints of the data rules: the registry's chains are simulated, its other data sets solved
CHAIN_DATASETS = "|".join(name for name in DATASETS if is_chain(name))
PDE_DATASETS = "|".join(name for name in DATASETS if not is_chain(name))
# the user's own data sets (data.<name>.path), joined to the registry by validate_config: checked and copied
USER_DATASET_NAMES = "|".join(USER_DATASETS)


def data_targets():
    """The fields files (and, for chains, the microscopic files) of the configured data sets."""
    targets = []
    for name in config["datasets"]:
        targets.append(f"results/data/{name}.nc")
        if is_chain(name):
            targets.append(f"results/micro/{name}.nc")
    return targets


def model_targets():
    """One trained model per (data set, run, seed) of the config (fit.datasets.<name>.models picks the runs)."""
    return [
        f"results/models/{dataset}/{run}/seed{seed}/weights.pt"
        for dataset, run, seed in fit_runs(config)
    ]


def metric_targets():
    """One evaluation file per fitted model."""
    return [
        f"results/metrics/{dataset}/{run}/seed{seed}.nc"
        for dataset, run, seed in fit_runs(config)
    ]


def figure_targets():
    """Every figure of the config (PDF, PNG and its numbers) and the table's page (workflow/rules/figures.smk)."""
    from mesodyn.figure_plan import figure_targets as targets

    return targets(config)


def long_horizon_targets():
    """The long-horizon table of every fitted run (workflow/rules/figures.smk), where the config makes one."""
    from mesodyn.figure_plan import long_horizon_targets as targets

    return targets(config)


def ood_targets():
    """The out-of-distribution table (workflow/rules/ood.smk), where the config names variants."""
    from mesodyn.ood import ood_targets as targets

    return targets(config)
