"""Small file helpers: every result file is written atomically (temp file + rename), so a run that
dies mid-write never leaves a truncated metrics.json behind."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
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
        os.fchmod(fd, _file_mode())
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


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def sha256_file(path: Path) -> str:
    """Checksum of a data file, to tell an intact cache or encoding from a corrupt one."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
