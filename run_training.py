"""Entry point of the seed README's commands: python run_training.py <hydra overrides> [--multirun]."""

import hydra
from omegaconf import DictConfig

from mdcrl.resolvers import register_resolvers

register_resolvers()  # at import: parallel sweep workers resolve hydra.sweep.subdir with it


@hydra.main(version_base="1.3", config_path="src/mdcrl/configs", config_name="train")
def main(cfg: DictConfig) -> None:
    # imported here so that --cfg/--help stay fast
    from mdcrl.errors import exit_on_expected_error
    from mdcrl.train import run

    exit_on_expected_error(run, cfg)  # a refused setting or file: one line, exit status 2


if __name__ == "__main__":
    main()
