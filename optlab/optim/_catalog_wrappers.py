"""Registers optlab's wrappers research optimizers (issue 7); imported by optlab.optim.

The wrappers (lookahead, schedule_free, ema, swa) take their base optimizer by
registry name (``base="adam"``, static) with its learning rate as the wrapper's
own, injectable ``learning_rate``; other base hyperparameters go in
``base_hyperparams`` (a dict, static)::

    optlab.optim.get("lookahead", base="adam", learning_rate=1e-3, sync_period=6)
    optlab.optim.get("schedule_free", base="adam", learning_rate=1e-3,
                     base_hyperparams={"b1": 0.0})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optax

from optlab.optim import averaging, lookahead, newton, registry, schedule_free
from optlab.optim.catalog import LEARNING_RATE
from optlab.optim.space import Choice, IntUniform, LogUniform, Uniform

BASE_STATIC = ("base", "base_hyperparams")
SCHEDULE_FREE_PAPER = ("A. Defazio, X. A. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky, "
                       "'The Road Less Scheduled', NeurIPS 2024")
WRAPPER_FUNCTIONS = {"lookahead": "optlab.optim.lookahead.lookahead",
                     "schedule_free": "optlab.optim.schedule_free.schedule_free",
                     "ema": "optlab.optim.averaging.ema", "swa": "optlab.optim.averaging.swa"}
NOCEDAL_WRIGHT = "J. Nocedal, S. J. Wright, 'Numerical Optimization', 2nd ed., Springer 2006"


def build_base(where: str, base: str, learning_rate: Any,
               base_hyperparams: Mapping[str, Any] | None) -> optax.GradientTransformation:
  """The registry optimizer `base` with `learning_rate` (None: its default) and the rest."""
  entry = _base_entry(where, base)  # ValueError with the closest names when unknown
  if base_hyperparams is not None and not isinstance(base_hyperparams, Mapping):
    raise TypeError(f"{where}: base_hyperparams must be a dict of {base!r}'s "
                    f"hyperparameters, got {type(base_hyperparams).__name__}")
  hyperparams = dict(base_hyperparams or {})
  if "learning_rate" in hyperparams:
    raise ValueError(f"{where}: pass the learning rate as learning_rate=, not in "
                     "base_hyperparams")
  if learning_rate is not None:
    if "learning_rate" not in entry.hyperparameters:
      raise ValueError(f"{where}: base {base!r} has no learning_rate; leave learning_rate=None")
    hyperparams["learning_rate"] = learning_rate
  unknown = [k for k in hyperparams if k not in entry.hyperparameters]
  if unknown:
    raise TypeError(f"{where}: base {base!r} has no hyperparameter {', '.join(map(repr, unknown))}"
                    f"; it accepts {', '.join(entry.hyperparameters)}")
  # The entry's factory itself, not registry.get: under inject_hyperparams this runs at
  # every update with traced values, where get's bookkeeping has nothing to record.
  return entry.factory(**{**entry.defaults, **hyperparams})


def _base_entry(where: str, base: Any) -> registry.OptimizerInfo:
  if not isinstance(base, str):
    raise TypeError(f"{where}: base must be a registry name (e.g. 'sgd', 'adam'), got "
                    f"{type(base).__name__}; to wrap a transformation object call "
                    f"{WRAPPER_FUNCTIONS[where]}(transformation, ...)")
  return registry.info(base)  # ValueError with the closest names when unknown


def base_learning_rate(where: str, base: str, learning_rate: Any) -> Any:
  """`learning_rate`, or `base`'s registry default when None."""
  entry = _base_entry(where, base)
  if learning_rate is not None:
    return learning_rate
  default = entry.defaults.get("learning_rate")
  if default is None:
    raise ValueError(f"{where}: base {base!r} has no default learning rate; pass learning_rate=")
  return default


def lookahead_named(
    base: str = "sgd",
    learning_rate: optax.ScalarOrSchedule | None = None,
    sync_period: int = 5,
    slow_step_size: float = 0.5,
    reset_state: bool = False,
    base_hyperparams: Mapping[str, Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
  """Lookahead over a registry optimizer (:func:`optlab.optim.lookahead.lookahead`)."""
  inner = build_base("lookahead", base, learning_rate, base_hyperparams)
  return lookahead.lookahead(inner, sync_period, slow_step_size, reset_state=reset_state)


def schedule_free_named(
    base: str = "sgd",
    learning_rate: float | None = None,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    warmup_steps: int = 0,
    base_hyperparams: Mapping[str, Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
  """Schedule-free over a registry optimizer without momentum (:func:`schedule_free.schedule_free`).

  The base and the averaging weights share the learning rate γ·min(1, (t+1)/T_warmup).
  """
  where = "schedule_free"
  rate = schedule_free.warmup_learning_rate(
      base_learning_rate(where, base, learning_rate), warmup_steps)
  inner = build_base(where, base, rate, base_hyperparams)
  return schedule_free.schedule_free(inner, rate, b1, weight_lr_power)


def ema_named(
    base: str = "sgd",
    learning_rate: optax.ScalarOrSchedule | None = None,
    decay: float = 0.999,
    debias: bool = False,
    base_hyperparams: Mapping[str, Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
  """A registry optimizer with an EMA of its iterates (:func:`averaging.ema`)."""
  inner = build_base("ema", base, learning_rate, base_hyperparams)
  return averaging.ema(inner, decay, debias=debias)


def swa_named(
    base: str = "sgd",
    learning_rate: optax.ScalarOrSchedule | None = None,
    start_step: int = 0,
    every_k: int = 1,
    base_hyperparams: Mapping[str, Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
  """A registry optimizer with the SWA average of its iterates (:func:`averaging.swa`)."""
  inner = build_base("swa", base, learning_rate, base_hyperparams)
  return averaging.swa(inner, start_step, every_k)


registry.register(
    "lookahead",
    lookahead_named,
    search_space={"learning_rate": LEARNING_RATE, "slow_step_size": Uniform(0.3, 0.9),
                  "sync_period": IntUniform(2, 20)},
    static_args=(*BASE_STATIC, "sync_period", "reset_state"),
    paper="M. R. Zhang, J. Lucas, G. Hinton, J. Ba, 'Lookahead Optimizer: k steps forward, "
    "1 step back', NeurIPS 2019",
    summary="Lookahead over any registry optimizer: every k steps, step the slow weights "
    "toward the fast ones.",
)
registry.register(
    "schedule_free",
    schedule_free_named,
    search_space={"learning_rate": LEARNING_RATE, "b1": Uniform(0.5, 0.99),
                  "warmup_steps": IntUniform(0, 1000)},
    static_args=(*BASE_STATIC, "warmup_steps"),
    paper=SCHEDULE_FREE_PAPER,
    summary="Schedule-free averaging (y, z, x sequences) over any registry optimizer "
    "without momentum.",
)
registry.register(
    "schedule_free_sgd",
    schedule_free.schedule_free_sgd,
    search_space={"learning_rate": LogUniform(1e-3, 10.0), "b1": Uniform(0.5, 0.99),
                  "weight_decay": LogUniform(1e-6, 1e-1), "warmup_steps": IntUniform(0, 1000)},
    static_args=("warmup_steps",),
    paper=SCHEDULE_FREE_PAPER,
    summary="Schedule-free SGD (paper's warmup), injectable and dtype-keeping.",
)
registry.register(
    "schedule_free_adamw",
    schedule_free.schedule_free_adamw,
    search_space={"learning_rate": LEARNING_RATE, "b1": Uniform(0.5, 0.99),
                  "b2": Uniform(0.9, 0.9999), "weight_decay": LogUniform(1e-6, 1e-1),
                  "warmup_steps": IntUniform(0, 1000),
                  "bias_correction": Choice(schedule_free.BIAS_CORRECTIONS)},
    tuned=("learning_rate", "weight_decay"),
    static_args=("warmup_steps", "bias_correction"),
    paper=SCHEDULE_FREE_PAPER + ", Algorithm 1",
    summary="Schedule-free AdamW (Algorithm 1, or optax's bias correction).",
)
registry.register(
    "ema",
    ema_named,
    search_space={"learning_rate": LEARNING_RATE, "decay": Uniform(0.9, 0.9999)},
    static_args=(*BASE_STATIC, "debias"),
    paper="B. T. Polyak, A. B. Juditsky, 'Acceleration of stochastic approximation by "
    "averaging', SIAM J. Control Optim., 1992; A. Tarvainen, H. Valpola, 'Mean teachers are "
    "better role models', NeurIPS 2017",
    summary="Any registry optimizer plus an EMA of its iterates "
    "(evaluate with averaging.averaged_params).",
)
registry.register(
    "swa",
    swa_named,
    search_space={"learning_rate": LEARNING_RATE, "every_k": IntUniform(1, 1000, log=True)},
    static_args=(*BASE_STATIC, "start_step", "every_k"),
    paper="P. Izmailov, D. Podoprikhin, T. Garipov, D. Vetrov, A. G. Wilson, 'Averaging "
    "Weights Leads to Wider Optima and Better Generalization', UAI 2018",
    summary="Any registry optimizer plus the SWA average of its iterates "
    "(evaluate with averaging.averaged_params).",
)
registry.register(
    "newton",
    newton.newton,
    search_space={"learning_rate": Uniform(0.1, 1.0), "damping": LogUniform(1e-6, 1.0)},
    tuned=(),
    static_args=("indefinite", "max_backtracking_steps"),
    extra_args=("value_fn",),
    paper=NOCEDAL_WRIGHT + ", Ch. 3",
    summary="Newton's method (dense Hessian) with damping, Hessian modification and "
    "backtracking; small problems.",
)
registry.register(
    "lbfgs",
    newton.lbfgs,
    search_space={"learning_rate": Uniform(0.1, 1.0), "memory_size": IntUniform(3, 30)},
    tuned=(),
    static_args=("memory_size", "scale_init_precond", "max_linesearch_steps", "linesearch"),
    extra_args=("value", "grad", "value_fn"),
    paper="D. C. Liu, J. Nocedal, 'On the limited memory BFGS method for large scale "
    "optimization', Math. Programming, 1989; " + NOCEDAL_WRIGHT + ", Ch. 7",
    summary="L-BFGS with a zoom (strong Wolfe) line search (optax.lbfgs, with optlab's checks).",
)
