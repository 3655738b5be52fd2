"""optlab.tune: hyperparameter search, vectorized sweeps, cross-validation, time-to-target.

Every tuner reads one search-space description (:class:`SearchSpace` of
``optlab.optim.space``), the same one the optimizer registry gives per optimizer.

Search (:func:`search` and its results) stands on Optuna, an optional extra
(``pip install 'optlab[search]'``): without it the sweeps, cross-validation and
time-to-target still work, and using search raises an ``ImportError`` that says
what to install.
"""

import importlib
import importlib.util

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

if importlib.util.find_spec("optuna") is not None:
  # Imported here, not on first use: the function `search` must shadow the submodule of the
  # same name, which the import system sets on this package whenever the submodule loads.
  from optlab.tune.report import SearchResult, plot_search
  from optlab.tune.search import PRUNERS, STRATEGIES, PruningCallback, Trial, search
else:

  def __getattr__(name: str):
    """Without Optuna, the search names raise an ImportError that says what to install."""
    module = _NEEDS_OPTUNA.get(name)
    if module is None:
      raise AttributeError(f"module 'optlab.tune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)  # raises the ImportError

  def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NEEDS_OPTUNA))
