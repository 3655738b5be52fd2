"""optlab.optim: optimizers as optax gradient transformations, schedules and the registry.

Every optimizer here is an ``optax.GradientTransformation``: pure, ``jit``- and
``vmap``-safe, composable with ``optax.chain``. Named optimizers follow their
paper by default; the convention of PyTorch or optax is one argument away when
it differs, and each docstring says which is which.
"""

from optlab.optim import (  # noqa: F401  (the catalogs fill the registry)
    _catalog_modern,
    _catalog_preconditioned,
    _catalog_wrappers,
    schedules,
)
from optlab.optim import catalog as _catalog  # noqa: F401
from optlab.optim._common import ScaleByLearningRateState, scale_by_learning_rate
from optlab.optim.adadelta import ScaleByAdadeltaState, adadelta, scale_by_adadelta
from optlab.optim.adagrad import ScaleByAdagradState, adagrad, scale_by_adagrad
from optlab.optim.adam import (
    ScaleByAdamaxState,
    ScaleByAdamState,
    adam,
    adamax,
    scale_by_adam,
    scale_by_adamax,
)
from optlab.optim.adamw import adamw, add_decoupled_weight_decay, add_weight_decay
from optlab.optim.amsgrad import ScaleByAmsgradState, amsgrad, scale_by_amsgrad
from optlab.optim.momentum import MomentumState, gd, heavy_ball, nesterov, nesterov_iterate, sgd
from optlab.optim.nadam import ScaleByNadamState, nadam, scale_by_nadam
from optlab.optim.radam import ScaleByRadamState, radam, scale_by_radam
from optlab.optim.registry import OptimizerInfo, describe, get, info, names, register
from optlab.optim.rmsprop import ScaleByRmspropState, rmsprop, scale_by_rmsprop
from optlab.optim.schedules import (
    cyclical_schedule,
    get_schedule,
    inverse_sqrt_schedule,
    schedule_names,
    warmup_stable_decay_schedule,
)
from optlab.optim.space import Choice, Conditional, IntUniform, LogUniform, SearchSpace, Uniform

__all__ = [
    "Choice",
    "Conditional",
    "IntUniform",
    "LogUniform",
    "MomentumState",
    "OptimizerInfo",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "ScaleByLearningRateState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRmspropState",
    "SearchSpace",
    "Uniform",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decoupled_weight_decay",
    "add_weight_decay",
    "amsgrad",
    "cyclical_schedule",
    "describe",
    "gd",
    "get",
    "get_schedule",
    "heavy_ball",
    "info",
    "inverse_sqrt_schedule",
    "nadam",
    "names",
    "nesterov",
    "nesterov_iterate",
    "radam",
    "register",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
    "schedule_names",
    "schedules",
    "sgd",
    "warmup_stable_decay_schedule",
]
