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
from optlab.optim.adam_mini import (
    ScaleByAdamMiniState,
    adam_mini,
    blocks_by_path,
    scale_by_adam_mini,
)
from optlab.optim.adamw import adamw, add_decoupled_weight_decay, add_weight_decay
from optlab.optim.amsgrad import ScaleByAmsgradState, amsgrad, scale_by_amsgrad
from optlab.optim.averaging import (
    EmaParamsState,
    SwaParamsState,
    averaged_params,
    ema,
    ema_params,
    swa,
    swa_params,
)
from optlab.optim.cautious import cautious, cautious_adamw, cautious_lion
from optlab.optim.lookahead import LookaheadState, lookahead, lookahead_slow_params
from optlab.optim.mars import ScaleByMarsState, mars, scale_by_mars
from optlab.optim.matrix_axes import flax_attention_matrix_axes
from optlab.optim.momentum import MomentumState, gd, heavy_ball, nesterov, nesterov_iterate, sgd
from optlab.optim.muon import ScaleByMuonState, matrix_mask, muon, orthogonalize, scale_by_muon
from optlab.optim.nadam import ScaleByNadamState, nadam, scale_by_nadam
from optlab.optim.newton import NewtonState, lbfgs, newton
from optlab.optim.packed import Packing, pack, packed
from optlab.optim.radam import ScaleByRadamState, radam, scale_by_radam
from optlab.optim.registry import OptimizerInfo, describe, get, info, names, register
from optlab.optim.rmsprop import ScaleByRmspropState, rmsprop, scale_by_rmsprop
from optlab.optim.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval,
    schedule_free_sgd,
)
from optlab.optim.schedules import (
    cyclical_schedule,
    get_schedule,
    inverse_sqrt_schedule,
    schedule_names,
    warmup_stable_decay_schedule,
)
from optlab.optim.shampoo import ScaleByShampooState, scale_by_shampoo, shampoo
from optlab.optim.soap import ScaleBySoapState, scale_by_soap, soap
from optlab.optim.space import Choice, Conditional, IntUniform, LogUniform, SearchSpace, Uniform

__all__ = [
    "Choice",
    "Conditional",
    "EmaParamsState",
    "IntUniform",
    "LogUniform",
    "LookaheadState",
    "MomentumState",
    "NewtonState",
    "OptimizerInfo",
    "Packing",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamMiniState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "ScaleByLearningRateState",
    "ScaleByMarsState",
    "ScaleByMuonState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRmspropState",
    "ScaleByShampooState",
    "ScaleBySoapState",
    "ScheduleFreeState",
    "SearchSpace",
    "SwaParamsState",
    "Uniform",
    "adadelta",
    "adagrad",
    "adam",
    "adam_mini",
    "adamax",
    "adamw",
    "add_decoupled_weight_decay",
    "add_weight_decay",
    "amsgrad",
    "averaged_params",
    "blocks_by_path",
    "cautious",
    "cautious_adamw",
    "cautious_lion",
    "cyclical_schedule",
    "describe",
    "ema",
    "ema_params",
    "flax_attention_matrix_axes",
    "gd",
    "get",
    "get_schedule",
    "heavy_ball",
    "info",
    "inverse_sqrt_schedule",
    "lbfgs",
    "lookahead",
    "lookahead_slow_params",
    "mars",
    "matrix_mask",
    "muon",
    "nadam",
    "names",
    "nesterov",
    "nesterov_iterate",
    "newton",
    "orthogonalize",
    "pack",
    "packed",
    "radam",
    "register",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adam_mini",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_mars",
    "scale_by_muon",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
    "scale_by_shampoo",
    "scale_by_soap",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval",
    "schedule_free_sgd",
    "schedule_names",
    "schedules",
    "sgd",
    "shampoo",
    "soap",
    "swa",
    "swa_params",
    "warmup_stable_decay_schedule",
]
