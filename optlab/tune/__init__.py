"""optlab.tune: hyperparameter search, vectorized sweeps, cross-validation, time-to-target.

Every tuner reads one search-space description (:class:`SearchSpace` of
``optlab.optim.space``), the same one the optimizer registry gives per optimizer.

Search (:func:`search` and its results) stands on Optuna, an optional extra
(``pip install 'optlab[search]'``): its names are imported on first use, so the
sweeps, cross-validation and time-to-target work without it, and using search
without it raises an ``ImportError`` that says what to install.
"""

import importlib

from optlab.optim.space import (
    Choice,
    Conditional,
    Dimension,
    IntUniform,
    LogUniform,
    SearchSpace,
    Uniform,
)
from optlab.tune.cv import (
    CVResult,
    SelectionResult,
    cross_validate,
    make_folds,
    plot_validation_curve,
    select,
)
from optlab.tune.sweep import SweepResult, sweep
from optlab.tune.targets import (
    Profile,
    TimeToTarget,
    format_table,
    performance_profile,
    plot_performance_profiles,
    rank_table,
    steps_to_target,
    time_to_target,
)

__all__ = [
    "PRUNERS",
    "STRATEGIES",
    "CVResult",
    "Choice",
    "Conditional",
    "Dimension",
    "IntUniform",
    "LogUniform",
    "Profile",
    "PruningCallback",
    "SearchResult",
    "SearchSpace",
    "SelectionResult",
    "SweepResult",
    "TimeToTarget",
    "Trial",
    "Uniform",
    "cross_validate",
    "format_table",
    "make_folds",
    "performance_profile",
    "plot_performance_profiles",
    "plot_search",
    "plot_validation_curve",
    "rank_table",
    "search",
    "select",
    "steps_to_target",
    "sweep",
    "time_to_target",
]

_NEEDS_OPTUNA = {
    "SearchResult": "optlab.tune.report",
    "plot_search": "optlab.tune.report",
    "PRUNERS": "optlab.tune.search",
    "STRATEGIES": "optlab.tune.search",
    "PruningCallback": "optlab.tune.search",
    "Trial": "optlab.tune.search",
    "search": "optlab.tune.search",
}


def __getattr__(name: str):
  """Imports the search names (which need Optuna) on first use (PEP 562)."""
  module = _NEEDS_OPTUNA.get(name)
  if module is None:
    raise AttributeError(f"module 'optlab.tune' has no attribute {name!r}")
  value = getattr(importlib.import_module(module), name)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_NEEDS_OPTUNA))
