"""The run directory: one JSON file per stage, written atomically, in a folder private to the user.

``runs/<task name>/`` by default. A write goes to a temporary file in the same folder and is renamed
over the target (``os.replace`` is atomic on POSIX), so an interrupted run leaves either the old file or
the new one, never half of one. autobs's own state is JSON: nothing here is ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError


def to_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: JSON has no such numbers and strict parsers reject them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def run_dir(task_name: str, out: str | Path | None = None) -> Path:
    """Create (mode 0o700) and return the run directory: ``out`` or ``runs/<task_name>``."""
    path = Path(out) if out is not None else Path("runs") / task_name
    if path.is_symlink():
        raise ConfigError(f"run directory {path} is a symbolic link; autobs does not follow it. Use another --out.")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run directory {path}: {exc.strerror}. Use another --out.") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"run directory {path} is not writable. Use another --out.")
    return path


LOCK_FILE = ".lock"


@contextlib.contextmanager
def locked(path: Path):
    """Hold the run directory for one autobs process: a second one (same or another command) is refused.

    An advisory ``flock`` on ``path/.lock``: the kernel drops it when the holder exits, ``kill -9``
    included, so a dead run never leaves the directory locked.

    Raises:
        ConfigError: another process holds the directory.
    """
    import fcntl

    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ConfigError(f"run directory {path} is in use by another autobs process (pid {holder}). Wait for "
                              "it to finish, or use another --out.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically. ``indent=None`` writes it compact: Python's json
    module serialises with its C encoder only then (with an indent it falls back to pure Python, 4x
    slower; measured on a 659-trial trials.json, 2.4 MB: 133 ms against 35 ms)."""
    return write_text(path, json.dumps(to_json(obj), indent=indent))


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, synced, then renamed over."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}. Use another --out.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or a quota: the old file, if any, is left as it was
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}. The previous version, if any, is unchanged. "
                          "Free some space or use another --out.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: Path) -> dict:
    """A JSON object autobs wrote. A file that does not parse is reported, never silently replaced.

    Raises:
        ConfigError: the file is not a valid JSON object.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}). Move it away or delete it to redo that stage.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object). Move it away or delete it to redo that stage.")
    return data


def read_stage(path: Path, task) -> dict | None:
    """A stage's saved JSON if it exists (None if not), checked to belong to ``task``.

    Every command that reads or writes a stage file goes through this first, so none of them overwrites
    or builds on results of another model.

    Raises:
        ConfigError: the file is damaged, or was written for another task (or an earlier version of this
            task file): autobs never overwrites such a file unasked.
    """
    if not path.exists():
        return None
    saved = read_json(path)
    owner = saved.get("task") if isinstance(saved.get("task"), dict) else {}
    if owner.get("fingerprint") != task.fingerprint:
        raise ConfigError(
            f"{path} holds results for another task ({owner.get('name', '?')}, fingerprint "
            f"{owner.get('fingerprint', '?')}; this one is {task.name}, {task.fingerprint}): the task file changed "
            "or the directory belongs to another model. autobs does not overwrite it. Fix: use another --out, "
            "or `autobs recommend --fresh` to redo every stage in this directory.")
    return saved
