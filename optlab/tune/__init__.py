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
