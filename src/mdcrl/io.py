"""Small file helpers: every result file is written atomically (temp file + rename), so a run that
dies mid-write never leaves a truncated metrics.json behind."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from mdcrl.errors import UnsafeFileError

# The largest JSON or YAML file mdcrl writes is a few kB (metadata.json, run.json, metrics.json).
MAX_TEXT_BYTES = 16 << 20


def file_mode() -> int:
    """The mode a plain open() gives a new file under the current umask (mkstemp's 0600 would make
    results unreadable to the user's group, unlike every other file they create)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text))


def write_atomic(path: Path, write, binary: bool = False) -> None:
    """Call write(file) on a temporary file beside path, then rename it to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def regular_file(path: Path, max_bytes: int | None = None) -> Path:
    """``path``, after checking that it is (or links to) a regular file of at most ``max_bytes``: a
    link to /dev/zero or a FIFO would make a reader hang. Raises FileNotFoundError when it is missing
    and UnsafeFileError (an OSError) otherwise."""
    path = Path(path)
    info = os.stat(path)  # follows links; FileNotFoundError when missing, ELOOP for a link loop
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError(f"{path} is not a regular file (a link to a device, a FIFO, a directory?); mdcrl reads files only.")
    if max_bytes is not None and info.st_size > max_bytes:
        raise UnsafeFileError(f"{path} is {info.st_size:,} bytes, far more than such a file holds ({max_bytes:,} at most).")
    return path


def read_text(path: Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    with open(regular_file(path, max_bytes)) as f:
        return f.read()


def read_json(path: Path):
    """A JSON file mdcrl wrote (checked as regular_file). Raises ValueError for malformed JSON, also
    for one nested too deeply to parse (Python's parser would raise RecursionError)."""
    text = read_text(path)
    try:
        return json.loads(text)
    except RecursionError as err:
        raise ValueError(f"{path} is nested too deeply to be a file mdcrl wrote") from err


def sha256_file(path: Path) -> str:
    """Checksum of a data file, to tell an intact cache or encoding from a corrupt one."""
    regular_file(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
