import sys

from mesodyn.config import ConfigError, validate_config

try:
    config.update(validate_config(config))
except ConfigError as exc:
    sys.stderr.write(f"mesodyn: {exc}\n")
    sys.exit(1)

CHAINS = ("fput", "fene")


def data_targets():
    """The fields files (and, for chains, the microscopic files) of the configured data sets."""
    targets = []
    for name in config["datasets"]:
        targets.append(f"results/data/{name}.nc")
        if name in CHAINS:
            targets.append(f"results/micro/{name}.nc")
    return targets
