"""The command line: ``mdcrl-train <hydra overrides> [--multirun]`` (also ``python run_training.py``,
the seed's entry point). Hydra lives here and in configs/ only: the core takes typed settings."""

import difflib
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


def composition_error_line(error: Exception) -> str | None:
    """The error line for a command-line key or group option that the configs do not have, naming the
    nearest existing ones; None for any other error. Hydra's own message for a misspelt key suggests
    appending it with +, which the run then refuses or (for trainer.*) fails on with a traceback."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, name = error.missing_cfg_file.rpartition("/")
        near = difflib.get_close_matches(name, error.options, n=1)
        fix = f"did you mean {group}={near[0]}? " if near else ""
        return f"error: {group}={name} is not an option of {group}; {fix}the options: {', '.join(error.options)}."
    cause = error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in struct" in str(cause):
        full_key = cause.full_key
        known = list(cause.parent_node.keys()) if cause.parent_node is not None else []
        near = difflib.get_close_matches(str(cause.key), [str(k) for k in known], n=1)
        where, _, _ = full_key.rpartition(".")
        if near:
            fix = f"did you mean {where + '.' if where else ''}{near[0]}?"
        else:
            fix = f"the settings there: {', '.join(map(str, known))}."
        return (
            f"error: {full_key} is not a setting; {fix} (python run_training.py --cfg job prints every "
            f"setting; +{full_key}=<value> adds a key the configs do not have)"
        )
    return None


def run_hydra_main() -> None:
    """hydra_main, with a misspelt key or group option refused in one line (exit status 2). Hydra
    prints its errors itself unless HYDRA_FULL_ERROR is set; set here, they reach this function,
    which prints Hydra's compact message for every other composition error, as Hydra would."""
    from hydra.errors import CompactHydraException

    if os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0"):  # the user asked for Hydra's traces
        hydra_main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except CompactHydraException as error:
        message = composition_error_line(error)
        if message:
            print(message, file=sys.stderr)
            sys.exit(2)
        print(error, file=sys.stderr)
        if error.__cause__ is not None:
            print(error.__cause__, file=sys.stderr)
        sys.exit(1)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


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
    run_hydra_main()


if __name__ == "__main__":
    main()
