"""optlab.tune: hyperparameter search, vectorized sweeps, cross-validation, time-to-target.

Every tuner reads one search-space description (:class:`SearchSpace` of
``optlab.optim.space``), the same one the optimizer registry gives per optimizer.
"""

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
from optlab.tune.report import SearchResult, plot_search
from optlab.tune.search import PRUNERS, STRATEGIES, PruningCallback, Trial, search
from optlab.tune.sweep import SweepResult, sweep

__all__ = [
    "PRUNERS",
    "STRATEGIES",
    "CVResult",
    "Choice",
    "Conditional",
    "Dimension",
    "IntUniform",
    "LogUniform",
    "PruningCallback",
    "SearchResult",
    "SearchSpace",
    "SelectionResult",
    "SweepResult",
    "Trial",
    "Uniform",
    "cross_validate",
    "make_folds",
    "plot_search",
    "plot_validation_curve",
    "search",
    "select",
    "sweep",
]
