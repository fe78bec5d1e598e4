"""The command line: ``mdcrl-train <hydra overrides> [--multirun]`` (also ``python run_training.py``,
the seed's entry point). Hydra lives here and in configs/ only: the core takes typed settings."""

import logging
import os
import sys
import threading
import time

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


# The launcher's process id, for the parallel sweep's workers (inherited through the environment).
LAUNCHER_PID = "MDCRL_LAUNCHER_PID"
_watching = False


def exit_with_the_launcher(poll_s: float = 1.0) -> None:
    """In a parallel sweep's worker: end this process soon after the launcher that started it is gone.
    The joblib launcher's workers outlive a launcher stopped with SIGTERM (or SIGKILL): orphaned, they
    went on training into their run directories for many minutes, holding the run locks, so that a
    restarted sweep skipped those runs. Exiting leaves the run unfinished; the next launch of the sweep
    resumes it from its last checkpoint (an unreadable one is set aside), as after a kill -9. A run
    not started by a sweep's worker (a single run, the submitit launcher's jobs) is left alone."""
    global _watching
    launcher = int(os.environ.get(LAUNCHER_PID) or 0)
    if _watching or not launcher or launcher == os.getpid() or os.getppid() != launcher:
        return

    def watch():
        while os.getppid() == launcher:
            time.sleep(poll_s)
        logging.getLogger(__name__).warning(
            "the sweep's launcher (process %d) has ended: this worker (process %d) stops; run the sweep again to resume its run.",
            launcher,
            os.getpid(),
        )
        logging.shutdown()
        os._exit(143)  # as after SIGTERM: the lock goes with the process, the run resumes next time

    threading.Thread(target=watch, name="mdcrl-launcher-watch", daemon=True).start()
    _watching = True


# An absolute path: the configs ship inside the package, found wherever mdcrl is installed.
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> None:
    # imported here so that --cfg/--help stay fast
    from mdcrl.errors import exit_on_expected_error
    from mdcrl.train import run

    exit_with_the_launcher()
    exit_on_expected_error(run, cfg)  # a refused setting or file: one line, exit status 2


def main() -> None:
    message = misnamed_setting(sys.argv[1:])
    if message:
        print(message, file=sys.stderr)
        sys.exit(2)
    os.environ[LAUNCHER_PID] = str(os.getpid())
    hydra_main()


if __name__ == "__main__":
    main()
