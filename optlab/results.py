"""Append-only JSONL results with provenance, written atomically.

Every experiment appends one JSON object per run (a *record*) to a ``.jsonl`` file:
its config, hyperparameters, seed and metrics, next to the versions and the machine
that produced them (AlgoPerf / init2winit convention). Figures and tables are drawn
from these files only, never by retraining.

Writes are atomic: the old lines and the new ones go to a temporary file in the same
directory, which is flushed, fsync-ed and then renamed over the original with
``os.replace``. A crash at any point leaves either the old file or the new one, never
a torn line; a temporary file that a killed writer leaves behind is deleted by the
next append. Readers skip a line that is nonetheless corrupted (edited by hand, or
written by another tool) with a warning naming the file and the line, and keep the rest.

Example:
  >>> import tempfile, pathlib
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl"
  >>> append_records(path, [{"method": "gd", "loss": np.float32(0.5)}])
  >>> read_records(path)
  [{'method': 'gd', 'loss': 0.5}]
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import errno
import glob
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

try:  # POSIX advisory locks serialize concurrent appenders; elsewhere, writes stay atomic.
  import fcntl
except ImportError:  # pragma: no cover - Windows
  fcntl = None

PathLike = str | os.PathLike

# Distributions whose versions every record carries (None when not installed).
TRACKED_PACKAGES = ("optlab", "jax", "jaxlib", "optax", "flax", "chex", "numpy", "scipy")


def to_jsonable(value: Any) -> Any:
  """Converts `value` to plain JSON types: dict, list, str, int, float, bool, None.

  NumPy and JAX scalars become Python numbers, arrays become nested lists, tuples
  and sets become lists, dataclasses become dicts, paths and enums their values.
  Non-finite floats (NaN, ±inf) become None, since strict JSON has no spelling for
  them; a record that needs to tell them apart should say so in another field.

  Raises:
    TypeError: for a value with no JSON form, naming its type.
  """
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, int):
    return int(value)  # plain int, also for int subclasses such as IntEnum
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, enum.Enum):
    return to_jsonable(value.value)
  if isinstance(value, Mapping):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, set, frozenset)):
    items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
    return [to_jsonable(v) for v in items]
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return to_jsonable(dataclasses.asdict(value))
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
      return to_jsonable(array.tolist())
    if array.dtype.kind == "U":
      return array.tolist()
    raise TypeError(f"to_jsonable: cannot store an array of dtype {array.dtype} in JSON")
  raise TypeError(f"to_jsonable: cannot store a value of type {type(value).__name__} in JSON")


@contextlib.contextmanager
def _locked(directory: pathlib.Path) -> Iterator[bool]:
  """Holds an exclusive advisory lock on `directory` while appending, so that two
  processes appending to one file do not lose each other's records. Locking the
  directory leaves no lock file behind; where it cannot be locked (no fcntl, or a
  file system without flock), appends are still atomic, just not serialized.
  Yields whether the lock is held."""
  fd = None
  if fcntl is not None:
    try:
      fd = os.open(directory, os.O_RDONLY)
      fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
      if fd is not None:
        os.close(fd)
      fd = None
  try:
    yield fd is not None
  finally:
    if fd is not None:
      fcntl.flock(fd, fcntl.LOCK_UN)
      os.close(fd)


def append_records(path: PathLike, records: Iterable[Mapping[str, Any]]) -> None:
  """Appends `records` to the JSONL file `path`, one JSON object per line, atomically.

  The existing lines are read, and old + new lines are written to a temporary file
  in the same directory, fsync-ed and moved over `path` with ``os.replace`` (atomic
  on POSIX and Windows). Parent directories are created. Values are converted with
  :func:`to_jsonable` before anything is written, so a record that cannot be stored
  leaves the file untouched.

  Args:
    path: the ``.jsonl`` file.
    records: mappings with string keys.

  Raises:
    TypeError: a record is not a mapping, or holds a value with no JSON form.
  """
  path = pathlib.Path(path)
  lines = []
  for i, record in enumerate(records):
    if not isinstance(record, Mapping):
      raise TypeError(f"append_records: record {i} must be a mapping, got {type(record).__name__}")
    lines.append(json.dumps(to_jsonable(record), allow_nan=False, ensure_ascii=False) + "\n")
  path.parent.mkdir(parents=True, exist_ok=True)
  with _locked(path.parent) as locked:
    if locked:  # no other append is under way: a temporary file left now is a killed writer's
      _remove_stale_temporaries(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
      old += b"\n"  # a torn last line (written by someone else) stays on its own line
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp's is 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
      with os.fdopen(fd, "wb") as f:
        f.write(old)
        f.write("".join(lines).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
      os.chmod(tmp, mode)
      os.replace(tmp, path)
    except BaseException:
      with contextlib.suppress(OSError):
        os.unlink(tmp)
      raise
  _fsync_directory(path.parent)


def _remove_stale_temporaries(path: pathlib.Path) -> None:
  """Deletes the temporary files (``.<name>.XXXXXXXX.tmp``) of appends that were killed."""
  pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
  for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
    if pattern.fullmatch(leftover.name):
      with contextlib.suppress(OSError):
        leftover.unlink()


def read_records(path: PathLike) -> list[dict[str, Any]]:
  """Reads every record of the JSONL file `path`, in order.

  Blank lines are ignored. A line that is not a JSON object is skipped with a
  ``UserWarning`` naming the file and its 1-based line number; the other records
  are returned.

  Raises:
    FileNotFoundError: `path` does not exist.
  """
  path = pathlib.Path(path)
  records = []
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        warnings.warn(f"{path}:{number}: skipping corrupted record ({error})", stacklevel=2)
        continue
      if not isinstance(record, dict):
        warnings.warn(
          f"{path}:{number}: skipping corrupted record (a JSON {type(record).__name__}, "
          "not an object)",
          stacklevel=2,
        )
        continue
      records.append(record)
  return records


def provenance() -> dict[str, Any]:
  """Where and with what a result was produced.

  Returns:
    A dict with ``versions`` (optlab, jax, jaxlib, optax, flax, chex, numpy, scipy;
    None for a missing one), ``python``, ``platform``, ``machine``, ``cpu_count``,
    ``hostname``, ``jax_backend``, ``device_kind``, ``device_count``, ``timestamp``
    (UTC, ISO 8601), ``git_commit`` and ``git_dirty`` (None outside a git checkout),
    and ``argv``.
  """
  info: dict[str, Any] = {
    "versions": {name: _version(name) for name in TRACKED_PACKAGES},
    "python": sys.version.split()[0],
    "platform": platform.platform(),
    "machine": platform.machine(),
    "processor": platform.processor() or None,
    "cpu_count": os.cpu_count(),
    "hostname": socket.gethostname(),
    "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "argv": list(sys.argv),
  }
  try:
    import jax

    devices = jax.devices()
    info.update(
      jax_backend=jax.default_backend(),
      device_kind=devices[0].device_kind,
      device_count=len(devices),
    )
  except Exception as error:  # provenance must never fail a run
    info.update(jax_backend=None, device_kind=None, device_count=None, jax_error=repr(error))
  info.update(_git_state())
  return info


def _version(name: str) -> str | None:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    if name == "optlab":  # a source checkout that is not installed
      try:
        import optlab

        return optlab.__version__
      except ImportError:
        return None
    return None


def _git_state() -> dict[str, Any]:
  """The commit of the checkout holding optlab, and whether it has local changes."""
  root = pathlib.Path(__file__).resolve().parents[1]

  def git(*args: str) -> str | None:
    try:
      done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=False
      )
    except (OSError, subprocess.SubprocessError):
      return None
    return done.stdout.strip() if done.returncode == 0 else None

  commit = git("rev-parse", "HEAD")
  status = git("status", "--porcelain") if commit else None  # untracked code counts too
  return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _fsync_directory(directory: pathlib.Path) -> None:
  """Makes the rename durable (POSIX); a no-op where directories cannot be opened."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def check_writable(directory: str | os.PathLike, *, what: str = "results",
                   min_free_bytes: int = 1 << 20) -> pathlib.Path:
  """Raises a clear ``OSError`` now, rather than after the run, if `directory` is unusable.

  Creates the directory (as the run would), writes, fsyncs and deletes a small probe
  file in it, and checks that at least `min_free_bytes` are free on its disk.

  Args:
    directory: where the run will write.
    what: what it will write there (for the message), e.g. ``"results (--results)"``.
    min_free_bytes: the least free space accepted (default 1 MiB).

  Returns:
    The directory.

  Raises:
    OSError: naming the directory: it cannot be created or written, or its disk is full.

  Example:
    >>> import tempfile
    >>> check_writable(tempfile.mkdtemp()).is_dir()
    True
  """
  directory = pathlib.Path(directory)
  probe = directory / f".optlab-write-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
  try:
    directory.mkdir(parents=True, exist_ok=True)
    with open(probe, "wb") as f:
      f.write(b"\0" * 4096)
      f.flush()
      os.fsync(f.fileno())
    probe.unlink()
    free = shutil.disk_usage(directory).free
  except OSError as error:
    with contextlib.suppress(OSError):
      probe.unlink(missing_ok=True)
    raise OSError(error.errno, f"cannot write {what} to {directory}: "
                  f"{error.strerror or error}; nothing was run") from error
  if free < min_free_bytes:
    raise OSError(errno.ENOSPC, f"cannot write {what} to {directory}: only {free:,} bytes "
                  f"free on its disk (at least {min_free_bytes:,} needed); nothing was run")
  return directory
