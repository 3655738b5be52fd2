"""Optuna, the optional dependency of search: imported with a message that says how to get it."""

from __future__ import annotations

from types import ModuleType

INSTALL = "pip install 'optlab[search]'  (or: pip install optuna)"


def require(what: str = "optlab's hyperparameter search (optlab.tune.search)") -> ModuleType:
  """Returns the ``optuna`` module, or raises ``ImportError`` saying `what` needs it and the fix."""
  try:
    import optuna
  except ImportError as error:
    raise ImportError(f"{what} needs Optuna, an optional dependency of optlab that is not "
                      f"installed: {INSTALL}") from error
  return optuna
