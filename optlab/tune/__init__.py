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
from optlab.tune.report import SearchResult, plot_search
from optlab.tune.search import PRUNERS, STRATEGIES, PruningCallback, Trial, search

__all__ = [
    "PRUNERS",
    "STRATEGIES",
    "Choice",
    "Conditional",
    "Dimension",
    "IntUniform",
    "LogUniform",
    "PruningCallback",
    "SearchResult",
    "SearchSpace",
    "Trial",
    "Uniform",
    "plot_search",
    "search",
]
