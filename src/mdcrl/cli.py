"""The command line: ``mdcrl-train <hydra overrides> [--multirun]`` (also ``python run_training.py``,
the seed's entry point). Hydra lives here and in configs/ only: the core takes typed settings."""

import sys

import hydra
from omegaconf import DictConfig

from mdcrl.resolvers import CONFIG_DIR, register_resolvers

register_resolvers()  # at import: parallel sweep workers resolve hydra.sweep.subdir with it

# The estimator's (Python) names of settings whose command-line keys are the seed's: a command line
# that uses the Python name is refused in one line naming the key, before Hydra's "not in struct".
PYTHON_NAMES = {
    "model.z_dim_stable": "model.z_dim_invariant",
    "datamodule.z_dim_stable_true": "datamodule.z_dim_invariant_true",
    "datamodule.dataset.z_dim_stable": "datamodule.dataset.z_dim_invariant",
    "datamodule.stable": "datamodule.stable_latent_columns",
}


def misnamed_setting(arguments: list[str]) -> str | None:
    """The error line for the first override that uses a Python name, or None."""
    for argument in arguments:
        key = argument.split("=", 1)[0].lstrip("+~")
        if key in PYTHON_NAMES:
            return (
                f"error: {key} is the estimator's (Python) name; on the command line the setting is "
                f"{PYTHON_NAMES[key]}=<value> (docs/tutorial_own_data.md, 'Names')."
            )
    return None


# An absolute path: the configs ship inside the package, found wherever mdcrl is installed.
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> None:
    # imported here so that --cfg/--help stay fast
    from mdcrl.errors import exit_on_expected_error
    from mdcrl.train import run

    exit_on_expected_error(run, cfg)  # a refused setting or file: one line, exit status 2


def main() -> None:
    message = misnamed_setting(sys.argv[1:])
    if message:
        print(message, file=sys.stderr)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
