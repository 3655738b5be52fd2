"""Resumable studies: each finished unit of work is saved at once, so a killed run goes on.

A study's runner computes several independent *units* (one heatmap per method, one
workload, ...) and appends its records to a results file at the end. With
:class:`Progress`, each unit's result is also written, as soon as it is done, to a
side file next to the results (``<results>.<study>.inprogress.jsonl``, appended
atomically with :func:`optlab.results.append_records`). When the runner is started
again with the same study, configuration and seed, the side file is resumed: the run
keeps its ``run_id``, the finished units are read back instead of recomputed (a line
says how many), and only the others run. :meth:`Progress.finish` appends the final
records to the results file and removes the side file. A side file left by a
different configuration is an error that says to pass ``--restart`` (which discards
it), so that two configurations are never mixed in one run.

Units must be independent: a unit's numbers may not depend on which other units ran
before it in the same process. Units are read back exactly as they were computed:
floats (NaN and ±inf too), NumPy arrays and scalars (with their dtype), tuples and
dicts with non-string keys survive the round trip; any other value is stored as
:func:`optlab.results.to_jsonable` stores it in the results file. What
:meth:`Progress.add` returns is what a resumed run gets, so both see the same values.

Example:
  >>> import tempfile, pathlib
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl"
  >>> progress = Progress.open(path, "demo", {"epochs": 3}, seed=0)
  >>> progress.unit("a", lambda: {"loss": 0.5})
  {'loss': 0.5}
  >>> progress.path.name
  'runs.jsonl.demo.inprogress.jsonl'
  >>> again = Progress.open(path, "demo", {"epochs": 3}, seed=0)  # doctest: +ELLIPSIS
  demo: resuming run ... (1 unit already done: a)
  >>> again.run_id == progress.run_id and again.unit("a", lambda: 1 / 0) == {"loss": 0.5}
  True
  >>> again.finish([{"run_id": again.run_id, "loss": 0.5}])
  >>> progress.path.exists()
  False
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import errno
import hashlib
import json
import math
import os
import pathlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from optlab import results

try:  # an advisory lock keeps two processes from running one study into one file at once
  import fcntl
except ImportError:  # pragma: no cover - Windows
  fcntl = None

T = TypeVar("T")
FORMAT = 1
SUFFIX = ".inprogress.jsonl"
_TAG = "__optlab__"  # marks an encoded value in a unit line
_LOCKS: dict[str, Any] = {}  # side file -> its lock, held by this process


@atexit.register
def _release_locks() -> None:
  """At exit (an exception, Ctrl-C): unlocks and removes the lock files; the side files stay."""
  while _LOCKS:
    handle = _LOCKS.popitem()[1]
    handle.close()
    with contextlib.suppress(OSError):
      os.unlink(handle.name)


class ProgressMismatchError(ValueError):
  """A side file of an unfinished run with another configuration or seed is in the way."""


def side_path(results_path: str | os.PathLike, study: str) -> pathlib.Path:
  """``<results>.<study>.inprogress.jsonl``: where `study`'s unfinished run is kept."""
  results_path = pathlib.Path(results_path)
  return results_path.with_name(f"{results_path.name}.{study}{SUFFIX}")


def _config_table(config: Any) -> Any:
  """A config as a table of field -> value (a NamedTuple, a dataclass or a mapping)."""
  if hasattr(config, "_asdict"):
    return dict(config._asdict())
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
  if isinstance(config, Mapping):
    return dict(config)
  raise TypeError(f"Progress.open: config must be a NamedTuple, a dataclass or a mapping, got "
                  f"{type(config).__name__}")


def fingerprint(study: str, config: Any, seed: int) -> str:
  """A hash of (study, config, seed): what must match for a side file to be resumed."""
  table = results.to_jsonable({"study": study, "config": _config_table(config), "seed": seed})
  text = json.dumps(table, sort_keys=True, ensure_ascii=False)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------------
# A JSON form of a unit's result that reads back as the same Python values.


def _float_text(x: float) -> Any:
  return x if math.isfinite(x) else repr(float(x))  # 'nan', 'inf', '-inf'


def encode(value: Any) -> Any:
  """`value` in plain JSON types, losslessly for floats, NumPy values, tuples and dicts.

  Non-finite floats, arrays, NumPy scalars, tuples and dicts whose keys are not all
  strings become ``{"__optlab__": kind, ...}`` tables that :func:`decode` turns back;
  anything else goes through :func:`optlab.results.to_jsonable` (as in the results file).

  Raises:
    TypeError: a value with no JSON form.
  """
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, np.generic) and value.dtype.kind in "biuf":
    return {_TAG: "scalar", "dtype": value.dtype.str, "value": encode(value.item())}
  if isinstance(value, int):
    return int(value)
  if isinstance(value, float):
    return value if math.isfinite(value) else {_TAG: "float", "value": repr(float(value))}
  if isinstance(value, Mapping):
    if all(isinstance(k, str) for k in value) and _TAG not in value:
      return {k: encode(v) for k, v in value.items()}
    return {_TAG: "dict", "items": [[encode(k), encode(v)] for k, v in value.items()]}
  if isinstance(value, list):
    return [encode(v) for v in value]
  if isinstance(value, tuple) and not hasattr(value, "_fields"):
    return {_TAG: "tuple", "items": [encode(v) for v in value]}
  if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(
      value, (tuple, set, frozenset))):
    array = np.asarray(value)
    if array.dtype.kind in "biufU":
      flat = array.ravel().tolist()
      data = [_float_text(x) for x in flat] if array.dtype.kind == "f" else flat
      return {_TAG: "array", "dtype": array.dtype.str, "shape": list(array.shape), "data": data}
  return encode(results.to_jsonable(value))  # NamedTuples, sets, dataclasses, paths, enums


def decode(value: Any) -> Any:
  """The inverse of :func:`encode`."""
  if isinstance(value, list):
    return [decode(v) for v in value]
  if not isinstance(value, dict):
    return value
  kind = value.get(_TAG)
  if kind is None:
    return {k: decode(v) for k, v in value.items()}
  if kind == "float":
    return float(value["value"])
  if kind == "scalar":
    return np.dtype(value["dtype"]).type(decode(value["value"]))
  if kind == "array":
    dtype = np.dtype(value["dtype"])
    data = [float(x) for x in value["data"]] if dtype.kind == "f" else value["data"]
    return np.asarray(data, dtype=dtype).reshape(value["shape"])
  if kind == "tuple":
    return tuple(decode(v) for v in value["items"])
  if kind == "dict":
    return {decode(k): decode(v) for k, v in value["items"]}
  raise ValueError(f"decode: unknown encoded kind {kind!r}")


# ----------------------------------------------------------------------------------
# Progress of one run.


def _lock(path: pathlib.Path) -> Any:
  """Locks ``.<side file>.lock`` for this process (a second process is refused)."""
  if fcntl is None:
    return None
  previous = _LOCKS.pop(str(path), None)
  if previous is not None:  # an earlier run of this process (ended by an exception)
    previous.close()
  lock_path = path.with_name(f".{path.name}.lock")
  handle = open(lock_path, "a")  # held until finish() or the end of the process
  try:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as error:
    handle.close()
    if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
      raise RuntimeError(f"{path}: another process is running this study into the same "
                         "results file; wait for it to end, or pass another --results") from None
    return None  # a file system without flock: no lock, as in optlab.results
  _LOCKS[str(path)] = handle
  return handle


def _differences(saved: Any, now: Any) -> str:
  if not isinstance(saved, dict) or not isinstance(now, dict):
    return ""
  keys = [k for k in dict.fromkeys([*saved, *now]) if saved.get(k) != now.get(k)]
  shown = [f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in keys[:5]]
  more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
  return f" ({'; '.join(shown)}{more})" if shown else ""


class Progress:
  """The finished units of one run of a study, saved as they finish.

  Use :meth:`open`, then for every unit either ``progress.unit(key, compute, *args)``
  (computes it unless it is already done) or ``if key not in progress:
  progress.add(key, compute(...))`` followed by ``progress[key]``; then
  ``progress.finish(records)``. Without a results path nothing is saved.
  """

  def __init__(self, results_path: pathlib.Path | None, study: str, table: dict,
               seed: int, digest: str, run_id: str, done: dict[str, Any]):
    self.results_path = results_path
    self.study = study
    self.path = None if results_path is None else side_path(results_path, study)
    self.run_id = run_id
    self.recovered: tuple[str, ...] = tuple(done)
    self._table, self._seed, self._digest = table, seed, digest
    self._done = dict(done)
    self._started = bool(done)  # whether the side file has its header
    self._finished = False
    self._lock_handle = _LOCKS.get(str(self.path)) if self.path is not None else None

  @classmethod
  def open(cls, results_path: str | os.PathLike | None, study: str, config: Any, seed: int,
           *, restart: bool = False) -> Progress:
    """The progress of `study` into `results_path`: resumed if a side file matches.

    Args:
      results_path: the results file (None: nothing is saved, nothing resumed).
      study: the study's name.
      config: its configuration (a NamedTuple, a dataclass or a mapping).
      seed: its first seed.
      restart: discard an unfinished run's side file instead of resuming it.

    Returns:
      A :class:`Progress` whose ``run_id`` is the unfinished run's, or a new one.

    Raises:
      ProgressMismatchError: a side file of the same study with another config or
        seed exists (rerun with those, or pass ``restart=True`` / ``--restart``).
      RuntimeError: another process holds the side file (runs this study now).
    """
    table = _config_table(config)
    digest = fingerprint(study, table, seed)
    if results_path is None:
      return cls(None, study, table, seed, digest, uuid.uuid4().hex[:12], {})
    results_path = pathlib.Path(results_path)
    path = side_path(results_path, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    _lock(path)
    if path.exists() and restart:
      print(f"{study}: --restart: discarding the unfinished run in {path}", flush=True)
      path.unlink()
    lines = []
    if path.exists():
      lines = [r for r in results.read_records(path) if r.get("kind") in ("header", "unit")]
      if not lines:
        path.unlink()  # nothing readable in it: as good as absent
    if not lines:
      return cls(results_path, study, table, seed, digest, uuid.uuid4().hex[:12], {})
    header = next((r for r in lines if r["kind"] == "header"), {})
    if {r.get("fingerprint") for r in lines} != {digest}:
      saved = {**header.get("config", {}), "seed": header.get("seed")} if header else None
      now = {**results.to_jsonable(table), "seed": seed}
      raise ProgressMismatchError(
          f"{path} holds an unfinished {study} run (run_id {lines[0].get('run_id')}) with "
          f"another configuration or seed{_differences(saved, now)}. Rerun with that "
          "configuration to resume it, or pass --restart to discard it.")
    run_id = lines[0]["run_id"]
    if results_path.exists() and any(
        r.get("study") == study and r.get("run_id") == run_id
        for r in results.read_records(results_path)):
      print(f"{study}: run {run_id} is already in {results_path}; removing its leftover "
            f"{path.name}", flush=True)
      path.unlink()
      return cls(results_path, study, table, seed, digest, uuid.uuid4().hex[:12], {})
    done, seconds = {}, 0.0
    for r in lines:
      if r["kind"] == "unit" and r.get("key") not in done:
        done[r["key"]] = decode(r["value"])
        seconds += r.get("seconds") or 0.0
    progress = cls(results_path, study, table, seed, digest, run_id, done)
    n = len(done)
    print(f"{study}: resuming run {run_id} from {path} ({n} unit{'s' * (n != 1)} already done"
          f"{f', {seconds:.0f} s of work kept' if seconds >= 1 else ''}: {', '.join(done)})",
          flush=True)
    progress._started = True
    return progress

  def __contains__(self, key: str) -> bool:
    return key in self._done

  def __getitem__(self, key: str) -> Any:
    """The result of unit `key` (recovered, or added by this process)."""
    return self._done[key]

  def __len__(self) -> int:
    return len(self._done)

  def add(self, key: str, value: T, *, seconds: float | None = None) -> T:
    """Saves unit `key`'s result `value` now; returns it as a resumed run would read it.

    Raises:
      TypeError: `key` is not a string, or `value` has no JSON form.
      ValueError: `key` is already done, or the run is finished.
    """
    if not isinstance(key, str):
      raise TypeError(f"Progress.add: key must be a string, got {type(key).__name__}")
    if self._finished:
      raise ValueError(f"Progress.add: run {self.run_id} is already finished")
    if key in self._done:
      raise ValueError(f"Progress.add: unit {key!r} is already done")
    encoded = encode(value)
    if self.path is not None:
      line = {"kind": "unit", "run_id": self.run_id, "fingerprint": self._digest, "key": key,
              "seconds": seconds, "value": encoded}
      lines = [line] if self._started else [self._header(), line]
      results.append_records(self.path, lines)
      self._started = True
    self._done[key] = decode(encoded)
    return self._done[key]

  def unit(self, key: str, compute: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Unit `key`'s result: recovered if done, else ``compute(*args, **kwargs)``, saved."""
    if key in self._done:
      return self._done[key]
    start = time.perf_counter()
    value = compute(*args, **kwargs)
    return self.add(key, value, seconds=time.perf_counter() - start)

  def finish(self, records: list[Mapping[str, Any]]) -> None:
    """Appends the run's final `records` to the results file; removes the side file."""
    self._finished = True
    if self.results_path is None:
      return
    if records:
      results.append_records(self.results_path, records)
    if self.path.exists():
      self.path.unlink()
    if self._lock_handle is not None and _LOCKS.get(str(self.path)) is self._lock_handle:
      lock_path = pathlib.Path(self._lock_handle.name)
      self.close()
      lock_path.unlink(missing_ok=True)

  def close(self) -> None:
    """Lets another process take this run over (keeps what is saved); ``finish`` does it too."""
    if self.path is None:
      return
    handle = _LOCKS.get(str(self.path))
    if handle is not None and self._lock_handle is handle:
      _LOCKS.pop(str(self.path))
      handle.close()

  def _header(self) -> dict[str, Any]:
    return {"kind": "header", "format": FORMAT, "study": self.study, "run_id": self.run_id,
            "fingerprint": self._digest, "seed": self._seed,
            "config": results.to_jsonable(self._table),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "pid": os.getpid()}
