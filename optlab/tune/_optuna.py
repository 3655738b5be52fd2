"""Optuna, the optional dependency of search: imported with a message that says how to get it."""

from __future__ import annotations

from types import ModuleType
from typing import Any

INSTALL = "pip install 'optlab[search]'  (or: pip install optuna)"


def require(what: str = "optlab's hyperparameter search (optlab.tune.search)") -> ModuleType:
  """Returns the ``optuna`` module, or raises ``ImportError`` saying `what` needs it and the fix."""
  try:
    import optuna
  except ImportError as error:
    raise ImportError(f"{what} needs Optuna, an optional dependency of optlab that is not "
                      f"installed: {INSTALL}") from error
  return optuna


class _Deferred:
  """Stands for the ``optuna`` module: imports it (or raises :func:`require`'s error) when used."""

  def __init__(self, what: str):
    self._what = what
    self._module: ModuleType | None = None

  def __getattr__(self, name: str) -> Any:
    if self._module is None:
      self._module = require(self._what)
    return getattr(self._module, name)

  def __repr__(self) -> str:
    return "<optuna, imported on first use>"


def deferred(what: str = "optlab's hyperparameter search (optlab.tune.search)") -> Any:
  """``optuna``, imported when one of its attributes is first read.

  For search's private helper modules: they import without Optuna (as every
  optlab module must) as long as they read no attribute at import time.
  """
  return _Deferred(what)
