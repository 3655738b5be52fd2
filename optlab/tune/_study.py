"""The study of a search: where it is stored, the lock its workers share, the settings it keeps.

:func:`optlab.tune.search.search` resolves its `storage` argument to an Optuna
storage and a lock file (:func:`resolve_storage`), creates or loads the study
under that lock (:func:`file_lock`) and records on a new study the space,
strategy, direction and seed it was searched with, or checks them against an
existing one (:func:`check_study`), so that a resumed or concurrent worker cannot
continue a study with another space.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator
from typing import Any

from optlab.optim.space import SearchSpace
from optlab.tune import _optuna

optuna = _optuna.deferred()  # this module imports without Optuna (search itself needs it)

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


def resolve_storage(storage: Any) -> tuple[Any, pathlib.Path | None]:
  """Optuna storage (or URL) for `storage`, and the lock file that serialises trial creation."""
  if storage is None or isinstance(storage, optuna.storages.BaseStorage):
    return storage, None
  if isinstance(storage, str) and "://" in storage:
    if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
      path = pathlib.Path(storage[len("sqlite:///"):])
      _check_directory(path, storage)
      return storage, path.with_name(path.name + ".optlab.lock")
    return storage, None
  if not isinstance(storage, (str, os.PathLike)):
    raise TypeError(f"search: storage must be None, a path, an Optuna URL or an Optuna storage, "
                    f"got {type(storage).__name__}")
  path = pathlib.Path(storage).expanduser().absolute()
  suffix = path.suffix.lower()
  if suffix not in SQLITE_SUFFIXES + JOURNAL_SUFFIXES:
    raise ValueError(f"search: storage path {str(storage)!r} must end in "
                     f"{'/'.join(SQLITE_SUFFIXES)} (SQLite) or {'/'.join(JOURNAL_SUFFIXES)} "
                     "(Optuna journal file), or be a URL such as 'sqlite:///study.db'")
  _check_directory(path, storage)
  lock = path.with_name(path.name + ".optlab.lock")
  if suffix in SQLITE_SUFFIXES:
    return f"sqlite:///{path}", lock
  from optuna.storages.journal import JournalFileBackend

  return optuna.storages.JournalStorage(JournalFileBackend(str(path))), lock


def _check_directory(path: pathlib.Path, storage: Any) -> None:
  directory = path.parent
  if not directory.is_dir():
    raise ValueError(f"search: storage {str(storage)!r}: the directory {str(directory)!r} does "
                     "not exist; create it first")
  if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
    raise ValueError(f"search: storage {str(storage)!r} is not writable")


def fingerprint(space: SearchSpace) -> str:
  """The space as the study records it: one ``name: dimension`` entry per dimension."""
  return "; ".join(f"{name}: {space[name]!r}" for name in space)


def check_study(study, space, strategy, direction, seed, grid_points) -> int:
  """Records this search's settings on a new study, or checks them against an existing one.

  Returns the study's first seed (the grid order and Sobol scrambling use it).
  """
  attrs = study.user_attrs
  existing = study.direction.name.lower()
  if existing != direction:
    raise ValueError(f"search: study {study.study_name!r} exists with direction {existing!r}; "
                     f"this search asks for {direction!r}. Use another study_name.")
  if "optlab_space" not in attrs:
    study.set_user_attr("optlab_space", fingerprint(space))
    study.set_user_attr("optlab_strategy", strategy)
    study.set_user_attr("optlab_direction", direction)
    study.set_user_attr("optlab_seed", int(seed))
    if strategy == "grid":
      study.set_user_attr("optlab_grid_points", repr(grid_points))
    attrs = study.user_attrs
  if attrs["optlab_space"] != fingerprint(space):
    raise ValueError(f"search: study {study.study_name!r} was searched over a different space;\n"
                     f"  stored:    {attrs['optlab_space']}\n  requested: {fingerprint(space)}\n"
                     "Use another study_name (or storage) for a different space.")
  stored_grid = attrs.get("optlab_grid_points")
  if strategy == "grid" and stored_grid is not None and stored_grid != repr(grid_points):
    raise ValueError(f"search: study {study.study_name!r} is a grid with grid_points="
                     f"{stored_grid}; this search asks for grid_points={grid_points!r}")
  return int(attrs.get("optlab_seed", seed))


@contextlib.contextmanager
def file_lock(path: pathlib.Path | None) -> Iterator[None]:
  """Holds an exclusive lock on `path` (nothing when None or without fcntl)."""
  try:
    import fcntl
  except ImportError:  # Windows: no lock, trials may overshoot with concurrent workers.
    fcntl = None
  if path is None or fcntl is None:
    yield
    return
  with open(path, "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)
