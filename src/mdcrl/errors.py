"""Expected failures: bad settings, bad data, bad files. Each message names the setting or file and
the fix, so the command line prints it as one line (``error: ...``) instead of a traceback.

Set MDCRL_FULL_ERROR=1 to see the traceback anyway (as HYDRA_FULL_ERROR does for Hydra's errors).
Any other exception is a bug, or something we did not foresee, and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

FULL_ERROR_ENV = "MDCRL_FULL_ERROR"


class MdcrlError(Exception):
    """An expected failure whose message says what is wrong and what to do."""


class ConfigError(MdcrlError, ValueError):
    """A setting that cannot work; the message names the override to change."""


class DataInputError(MdcrlError, ValueError):
    """User data that cannot be trained on; the message names the problem and the fix."""


class EncodedDataError(MdcrlError, ValueError):
    """A run_path that does not hold a complete, intact stage-1 encoding of the expected dataset."""


class BallsDataError(MdcrlError, ValueError):
    """A balls dataset cache that is missing, corrupt or made with other settings."""


class MnistDataError(MdcrlError, ValueError):
    """A digit source (datamodule.dataset.path) or coloured-digits cache that is missing, malformed or corrupt."""


class SavedModelError(MdcrlError, ValueError):
    """A saved estimator directory that is incomplete, corrupt or tampered with."""


class UnsafeFileError(MdcrlError, OSError):
    """A path mdcrl would read that is not a regular file (a link to a device, a FIFO) or is far too
    large for what it should hold: reading it could hang or exhaust memory. An OSError, so that
    code that treats an unreadable file as missing does so here too."""


class RunInProgressError(MdcrlError, RuntimeError):
    """Another process is writing this run directory (its run.lock); a sweep skips such a run."""


class CheckpointError(MdcrlError, ValueError):
    """A run's checkpoint that cannot be evaluated (non-finite weights)."""


class NonFiniteLossError(MdcrlError, FloatingPointError):
    """Raised by a training step whose loss is NaN or inf; the last good checkpoint is kept."""


def exit_on_expected_error(main, *args, **kwargs):
    """Call ``main``; an MdcrlError (or a refused command-line value) becomes one line on stderr and
    exit status 2, unless MDCRL_FULL_ERROR is set."""
    try:
        return main(*args, **kwargs)
    except MdcrlError as err:
        if os.environ.get(FULL_ERROR_ENV, "") not in ("", "0"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
