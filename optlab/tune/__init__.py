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

__all__ = [
    "Choice",
    "Conditional",
    "Dimension",
    "IntUniform",
    "LogUniform",
    "SearchSpace",
    "Uniform",
]
