"""The command line: ``mdcrl-train <hydra overrides> [--multirun]`` (also ``python run_training.py``,
the seed's entry point). Hydra lives here and in configs/ only: the core takes typed settings."""

import hydra
from omegaconf import DictConfig

from mdcrl.resolvers import CONFIG_DIR, register_resolvers

register_resolvers()  # at import: parallel sweep workers resolve hydra.sweep.subdir with it


# An absolute path: the configs ship inside the package, found wherever mdcrl is installed.
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    # imported here so that --cfg/--help stay fast
    from mdcrl.errors import exit_on_expected_error
    from mdcrl.train import run

    exit_on_expected_error(run, cfg)  # a refused setting or file: one line, exit status 2


if __name__ == "__main__":
    main()
