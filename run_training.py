"""Entry point of the seed README's commands: python run_training.py <hydra overrides> [--multirun].
The same command as the console script mdcrl-train (mdcrl/cli.py)."""

from mdcrl.cli import main

if __name__ == "__main__":
    main()
