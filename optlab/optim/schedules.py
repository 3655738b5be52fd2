"""Learning-rate schedules that optax lacks, and every schedule looked up by name.

A schedule is an ``optax.Schedule``: a function of the 0-based step count that
returns the value to use at that step. optlab's schedules

* are pure ``jax.numpy`` functions of the step, so they work under ``jax.jit`` and
  ``jax.vmap`` and inside ``optax.inject_hyperparams``;
* accept Python ints and integer (or float) arrays of any shape, and return float32
  arrays of the same shape;
* treat a negative step as step 0;
* check their arguments when built, raising a ``ValueError`` (or a ``TypeError`` for
  a step count that is not an integer) that names the argument.

Schedules:

* :func:`warmup_stable_decay_schedule` (WSD): linear warmup, a long constant
  plateau, and a short decay at the end (Hu et al. 2024; Hägele et al. 2024).
* :func:`cyclical_schedule`: triangular cyclical learning rates (Smith 2017), with
  the formulas of ``torch.optim.lr_scheduler.CyclicLR``.
* :func:`inverse_sqrt_schedule`: α/√t (Kingma & Ba 2015), with the Transformer's
  linear warmup (Vaswani et al. 2017).

:func:`get_schedule` builds any of these or any optax schedule from its name, and
:func:`schedule_names` lists the names.
"""

from __future__ import annotations

import difflib
import inspect
import math
import operator
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _validation as v

__all__ = [
    "cyclical_schedule",
    "get_schedule",
    "inverse_sqrt_schedule",
    "schedule_names",
    "warmup_stable_decay_schedule",
]

DecayShape = Literal["linear", "cosine", "1-sqrt", "1-square", "exponential"]
DECAY_SHAPES = ("linear", "cosine", "1-sqrt", "1-square", "exponential")
CyclicalMode = Literal["triangular", "triangular2", "exp_range"]
CYCLICAL_MODES = ("triangular", "triangular2", "exp_range")


def _check_steps(where: str, name: str, value: Any, *, minimum: int = 0) -> int:
  """Returns `value` as a Python int, raising unless it is an integer ≥ `minimum`."""
  if isinstance(value, bool):
    raise TypeError(f"{where}: {name} must be an integer number of steps, got {value!r}")
  try:
    steps = operator.index(value)
  except TypeError:
    raise TypeError(
        f"{where}: {name} must be an integer number of steps, got {value!r} "
        f"({type(value).__name__}); pass int(...)"
    ) from None
  if steps < minimum:
    raise ValueError(f"{where}: {name} must be an integer ≥ {minimum}, got {steps}")
  return steps


def _step(step: Any) -> jax.Array:
  """The step as an array, negative steps clipped to 0 (integer dtypes are kept)."""
  step = jnp.asarray(step)
  return jnp.maximum(step, jnp.zeros((), step.dtype))


def _f32(x: Any) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def warmup_stable_decay_schedule(
    peak_value: float,
    total_steps: int,
    warmup_steps: int = 0,
    decay_steps: int | None = None,
    init_value: float = 0.0,
    end_value: float = 0.0,
    decay_shape: DecayShape = "1-sqrt",
    decay_fraction: float = 0.2,
) -> optax.Schedule:
  r"""Warmup-stable-decay (WSD, "trapezoidal"): warm up, hold the peak, decay at the end.

  With W = ``warmup_steps``, T = ``total_steps``, D = ``decay_steps`` and the decay
  starting at S = T − D, the value at step t is::

      t < W:        init + (peak − init) · t / W                   (linear warmup)
      W ≤ t < S:    peak                                           (stable)
      S ≤ t < T:    end + (peak − end) · w((t − S) / D)            (decay)
      t ≥ T:        end

  where the decay shape w(x), x ∈ [0, 1], falls from w(0) = 1 to w(1) = 0:

  ==================  =============================================================
  ``"linear"``        w(x) = 1 − x
  ``"cosine"``        w(x) = (1 + cos πx) / 2
  ``"1-sqrt"``        w(x) = 1 − √x  (Hägele et al.'s best cooldown; the default)
  ``"1-square"``      w(x) = 1 − x²
  ``"exponential"``   value = peak · (end / peak)^x  (geometric; needs end, peak > 0)
  ==================  =============================================================

  Conventions: the value reaches ``peak_value`` at step W and ``end_value`` at step T
  (as ``optax.warmup_cosine_decay_schedule`` does), so a run of T updates, steps
  0 … T − 1, ends one step short of ``end_value``. When ``decay_steps`` is None it is
  ``round(decay_fraction · total_steps)``; the default fraction 0.2 is the cooldown
  length with which Hägele et al. (2024) match a cosine schedule, MiniCPM
  (Hu et al. 2024) used about 0.1. MiniCPM's own decay, an exponential with a
  fixed half-life, does not reach a chosen end value; ``"exponential"`` here is the
  geometric interpolation from peak to end instead.

  Args:
    peak_value: the plateau value (≥ 0).
    total_steps: T, the step at which the decay ends (≥ 1).
    warmup_steps: W, the length of the linear warmup (0 ≤ W ≤ T).
    decay_steps: D, the length of the final decay (W + D ≤ T), or None for
      ``round(decay_fraction · total_steps)``.
    init_value: the value at step 0 when ``warmup_steps > 0`` (≥ 0).
    end_value: the value at and after step T (≥ 0; > 0 for ``"exponential"``).
    decay_shape: one of ``"linear"``, ``"cosine"``, ``"1-sqrt"``, ``"1-square"``,
      ``"exponential"``.
    decay_fraction: the fraction of ``total_steps`` spent decaying when
      ``decay_steps`` is None (in [0, 1]).

  Returns:
    An ``optax.Schedule`` returning float32 values.

  Example:
    >>> from optlab.optim.schedules import warmup_stable_decay_schedule
    >>> schedule = warmup_stable_decay_schedule(
    ...     1.0, total_steps=100, warmup_steps=10, decay_steps=20, decay_shape="linear")
    >>> [float(schedule(t)) for t in (0, 5, 10, 50, 80, 90, 100)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]

  References:
    Hu et al., 2024, "MiniCPM: Unveiling the Potential of Small Language Models with
    Scalable Training Strategies", https://arxiv.org/abs/2404.06395.
    Hägele et al., 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations", https://arxiv.org/abs/2405.18392.
  """
  where = "warmup_stable_decay_schedule"
  v.check_non_negative(where, "peak_value", peak_value)
  v.check_non_negative(where, "init_value", init_value)
  v.check_non_negative(where, "end_value", end_value)
  v.check_choice(where, "decay_shape", decay_shape, DECAY_SHAPES)
  v.check_range(where, "decay_fraction", decay_fraction, 0.0, 1.0)
  total_steps = _check_steps(where, "total_steps", total_steps, minimum=1)
  warmup_steps = _check_steps(where, "warmup_steps", warmup_steps)
  if warmup_steps > total_steps:
    raise ValueError(
        f"{where}: warmup_steps must be ≤ total_steps = {total_steps}, got {warmup_steps}"
    )
  if decay_steps is None:
    decay_steps = round(decay_fraction * total_steps)
    origin = f" (decay_fraction={decay_fraction!r} of total_steps)"
  else:
    decay_steps = _check_steps(where, "decay_steps", decay_steps)
    origin = ""
  if warmup_steps + decay_steps > total_steps:
    raise ValueError(
        f"{where}: warmup_steps + decay_steps must be ≤ total_steps = {total_steps}, got "
        f"warmup_steps={warmup_steps} + decay_steps={decay_steps}{origin}"
    )
  if decay_shape == "exponential":
    v.check_positive(f"{where} (decay_shape='exponential')", "end_value", end_value)
    v.check_positive(f"{where} (decay_shape='exponential')", "peak_value", peak_value)

  decay_start = total_steps - decay_steps

  def decay(x: jax.Array) -> jax.Array:
    peak, end = _f32(peak_value), _f32(end_value)
    if decay_shape == "exponential":
      return peak * (end / peak) ** x
    if decay_shape == "linear":
      w = 1.0 - x
    elif decay_shape == "cosine":
      w = 0.5 * (1.0 + jnp.cos(jnp.pi * x))
    elif decay_shape == "1-sqrt":
      w = 1.0 - jnp.sqrt(x)
    else:  # "1-square"
      w = 1.0 - x * x
    return end + (peak - end) * w

  def schedule(step: Any) -> jax.Array:
    t = _step(step)
    value = jnp.full(t.shape, peak_value, jnp.float32)
    if decay_steps > 0:
      x = jnp.clip(t - decay_start, 0, decay_steps).astype(jnp.float32) / decay_steps
      value = jnp.where(t >= decay_start, decay(x), value)
    if warmup_steps > 0:
      x = jnp.clip(t, 0, warmup_steps).astype(jnp.float32) / warmup_steps
      warm = _f32(init_value) + (_f32(peak_value) - _f32(init_value)) * x
      value = jnp.where(t < warmup_steps, warm, value)
    return jnp.where(t >= total_steps, _f32(end_value), value).astype(jnp.float32)

  return schedule


def cyclical_schedule(
    base_value: float,
    max_value: float,
    step_size: int,
    mode: CyclicalMode = "triangular",
    gamma: float = 1.0,
    step_size_down: int | None = None,
) -> optax.Schedule:
  r"""Cyclical values (CLR): triangular waves between ``base_value`` and ``max_value``.

  Smith's (2017) triangular policy, with s = ``step_size`` and t the step::

      cycle = ⌊1 + t / (2s)⌋
      x     = |t / s − 2·cycle + 1|
      value = base + (max − base) · max(0, 1 − x) · scale

  where ``scale`` is 1 (``"triangular"``), 1 / 2^(cycle − 1) (``"triangular2"``,
  the amplitude halves every cycle), or γ^t (``"exp_range"``). The value is
  ``base_value`` at step 0 and rises to ``max_value`` at step s.

  With ``step_size_down`` set, the wave rises over ``step_size`` steps and falls
  over ``step_size_down``, as in ``torch.optim.lr_scheduler.CyclicLR(base_lr,
  max_lr, step_size_up, step_size_down, mode, gamma)``, whose value after t calls
  of ``scheduler.step()`` this schedule returns at step t (the cycle position is
  computed in integers, so it does not drift over long runs).

  Args:
    base_value: the lower end of the cycle (≥ 0).
    max_value: the upper end of the cycle before scaling (≥ 0).
    step_size: steps from the bottom of a cycle to its top (≥ 1); Smith suggests
      2–10 epochs' worth of steps.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: the per-step decay of the amplitude in ``"exp_range"`` mode, in (0, 1].
    step_size_down: steps from the top back to the bottom (≥ 1); None for
      ``step_size`` (a symmetric triangle, as in the paper).

  Returns:
    An ``optax.Schedule`` returning float32 values.

  Example:
    >>> from optlab.optim.schedules import cyclical_schedule
    >>> schedule = cyclical_schedule(0.1, 0.5, step_size=4, mode="triangular2")
    >>> [round(float(schedule(t)), 4) for t in (0, 2, 4, 8, 12, 16)]
    [0.1, 0.3, 0.5, 0.1, 0.3, 0.1]

  References:
    Smith, 2017, "Cyclical Learning Rates for Training Neural Networks", WACV,
    https://arxiv.org/abs/1506.01186.
  """
  where = "cyclical_schedule"
  v.check_non_negative(where, "base_value", base_value)
  v.check_non_negative(where, "max_value", max_value)
  v.check_choice(where, "mode", mode, CYCLICAL_MODES)
  v.check_range(where, "gamma", gamma, 0.0, 1.0, low_inclusive=False)
  up = _check_steps(where, "step_size", step_size, minimum=1)
  down = up if step_size_down is None else _check_steps(
      where, "step_size_down", step_size_down, minimum=1)
  period = up + down

  def schedule(step: Any) -> jax.Array:
    t = _step(step)
    cycle_index = t // period  # cycle − 1
    position = t - cycle_index * period  # in [0, period)
    rising = position.astype(jnp.float32) / up
    falling = (period - position).astype(jnp.float32) / down
    height = jnp.where(position <= up, rising, falling)
    if mode == "triangular":
      scale = jnp.ones((), jnp.float32)
    elif mode == "triangular2":
      scale = jnp.exp2(-cycle_index.astype(jnp.float32))
    else:  # "exp_range"
      scale = _f32(gamma) ** t.astype(jnp.float32)
    base = _f32(base_value)
    value = base + (_f32(max_value) - base) * height * scale
    return value.astype(jnp.float32)

  return schedule


def inverse_sqrt_schedule(
    init_value: float,
    warmup_steps: int = 0,
    offset: float = 1,
) -> optax.Schedule:
  r"""Inverse-square-root decay α/√t, after an optional linear warmup.

  With α = ``init_value``, t = step + ``offset`` (``offset=1`` makes t the 1-based
  step of the Adam paper) and t_w = ``warmup_steps`` + ``offset``::

      value(step) = α / √t                            (warmup_steps = 0)
      value(step) = α · min(1 / √t, t / t_w^{3/2})    (warmup_steps > 0)

  With warmup the value rises linearly in t to α/√t_w at step = ``warmup_steps``
  and decays as α/√t afterwards, continuously. With ``offset=0`` this is the
  Transformer schedule of Vaswani et al. (2017, Eq. 3) with α = d_model^{−1/2} and
  step_num = step; with the defaults, step 0 gives α/√1 and step 3 gives α/√4.

  Args:
    init_value: α (≥ 0), the value at step 0 when there is no warmup and
      ``offset=1``.
    warmup_steps: the length of the linear warmup (≥ 0).
    offset: added to the step before the square root (≥ 0; > 0 when
      ``warmup_steps`` is 0, since 1/√0 is infinite).

  Returns:
    An ``optax.Schedule`` returning float32 values.

  Example:
    >>> from optlab.optim.schedules import inverse_sqrt_schedule
    >>> schedule = inverse_sqrt_schedule(1.0)
    >>> [float(schedule(t)) for t in (0, 3, 8, 99)]
    [1.0, 0.5, 0.3333333432674408, 0.10000000149011612]

  References:
    Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization", ICLR, Sec. 6.1,
    https://arxiv.org/abs/1412.6980.
    Vaswani et al., 2017, "Attention Is All You Need", NeurIPS, Sec. 5.3,
    https://arxiv.org/abs/1706.03762.
  """
  where = "inverse_sqrt_schedule"
  v.check_non_negative(where, "init_value", init_value)
  warmup_steps = _check_steps(where, "warmup_steps", warmup_steps)
  if warmup_steps == 0:
    v.check_range(f"{where} (warmup_steps=0)", "offset", offset, 0.0, math.inf,
                  low_inclusive=False)
  else:
    v.check_non_negative(where, "offset", offset)
  t_warm = warmup_steps + offset

  def schedule(step: Any) -> jax.Array:
    t = _step(step).astype(jnp.float32) + _f32(offset)
    value = _f32(init_value) / jnp.sqrt(t)
    if warmup_steps > 0:
      ramp = _f32(init_value) * t / _f32(t_warm) ** 1.5
      value = jnp.minimum(value, ramp)
    return value.astype(jnp.float32)

  return schedule


# Canonical name -> (factory, extra names). The function's own name is always accepted,
# and so is the canonical name with "_schedule" appended.
_REGISTRY: dict[str, tuple[Callable[..., optax.Schedule], tuple[str, ...]]] = {
    "constant": (optax.schedules.constant_schedule, ()),
    "linear": (optax.schedules.linear_schedule, ()),
    "polynomial": (optax.schedules.polynomial_schedule, ()),
    "cosine_decay": (optax.schedules.cosine_decay_schedule, ("cosine",)),
    "exponential_decay": (optax.schedules.exponential_decay, ()),
    "piecewise_constant": (optax.schedules.piecewise_constant_schedule, ()),
    "piecewise_interpolate": (optax.schedules.piecewise_interpolate_schedule, ()),
    "cosine_onecycle": (optax.schedules.cosine_onecycle_schedule, ()),
    "linear_onecycle": (optax.schedules.linear_onecycle_schedule, ()),
    "warmup_constant": (optax.schedules.warmup_constant_schedule, ()),
    "warmup_cosine_decay": (optax.schedules.warmup_cosine_decay_schedule, ()),
    "warmup_exponential_decay": (optax.schedules.warmup_exponential_decay_schedule, ()),
    "sgdr": (optax.schedules.sgdr_schedule, ()),
    "join": (optax.schedules.join_schedules, ()),
    "wsd": (warmup_stable_decay_schedule, ("warmup_stable_decay",)),
    "cyclical": (cyclical_schedule, ("cyclic", "clr")),
    "inverse_sqrt": (inverse_sqrt_schedule, ("rsqrt",)),
}


def _aliases() -> dict[str, str]:
  aliases = {}
  for name, (factory, extra) in _REGISTRY.items():
    for alias in (name, f"{name}_schedule", factory.__name__, *extra):
      aliases[alias] = name
  return aliases


_ALIASES = _aliases()


def schedule_names() -> list[str]:
  """The canonical names :func:`get_schedule` accepts, sorted.

  Each also answers to its function's name (``"cosine_decay_schedule"``,
  ``"warmup_stable_decay_schedule"``) and to the name with ``"_schedule"`` appended.
  """
  return sorted(_REGISTRY)


def _qualified_name(factory: Callable[..., Any]) -> str:
  if factory.__module__.startswith("optax"):
    return f"optax.schedules.{factory.__name__}"
  return f"{factory.__module__}.{factory.__name__}"


def _describe_signature(factory: Callable[..., Any]) -> str:
  parts = []
  for parameter in inspect.signature(factory).parameters.values():
    if parameter.default is inspect.Parameter.empty:
      parts.append(parameter.name)
    else:
      parts.append(f"{parameter.name}={parameter.default!r}")
  return ", ".join(parts)


def get_schedule(name: str, /, **kwargs: Any) -> optax.Schedule:
  """Builds a schedule from its name and keyword arguments.

  Every optax schedule is here under its short name (``"cosine_decay"``) and its
  function name (``"cosine_decay_schedule"``), and so are optlab's own: ``"wsd"``,
  ``"cyclical"`` and ``"inverse_sqrt"``. Names are case-insensitive and ``-`` reads
  as ``_``. optax's schedules are returned as optax builds them (``"constant"``
  returns its value unchanged, for instance); optlab's return float32 arrays.

  Args:
    name: a name from :func:`schedule_names`, or a function name such as
      ``"warmup_cosine_decay_schedule"``.
    **kwargs: the arguments of that schedule's factory.

  Returns:
    An ``optax.Schedule``.

  Raises:
    ValueError: for an unknown name; the message suggests the closest names.
    TypeError: for arguments the schedule does not accept, or required ones that
      are missing; the message lists the arguments it accepts. Also for a step
      count that is not an integer.
    ValueError: for a negative step count, a non-positive ``transition_steps`` or
      ``decay_steps``, or a ``warmup_cosine_decay`` whose ``decay_steps`` (which
      includes the warmup) is not longer than ``warmup_steps``.

  Example:
    >>> import optax
    >>> from optlab.optim.schedules import get_schedule
    >>> schedule = get_schedule("warmup_cosine_decay", init_value=0.0, peak_value=1e-3,
    ...                         warmup_steps=100, decay_steps=1000)
    >>> optimizer = optax.adamw(schedule)
  """
  if not isinstance(name, str):
    raise TypeError(f"get_schedule: name must be a string, got {type(name).__name__}")
  key = name.strip().lower().replace("-", "_")
  if key not in _ALIASES:
    close = difflib.get_close_matches(key, list(_ALIASES), n=5, cutoff=0.6)
    suggestions = list(dict.fromkeys(_ALIASES[c] for c in close))
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise ValueError(
        f"get_schedule: unknown schedule {name!r}.{hint} "
        f"Known schedules: {', '.join(schedule_names())}."
    )
  canonical = _ALIASES[key]
  factory = _REGISTRY[canonical][0]
  signature = inspect.signature(factory)
  try:
    signature.bind(**kwargs)
  except TypeError as error:
    accepted = set(signature.parameters)
    unknown = sorted(set(kwargs) - accepted)
    missing = [
        p.name for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty and p.name not in kwargs
    ]
    problems = []
    if unknown:
      problems.append(f"unexpected argument(s) {', '.join(unknown)}")
    if missing:
      problems.append(f"missing required argument(s) {', '.join(missing)}")
    problem = "; ".join(problems) if problems else str(error)
    raise TypeError(
        f"get_schedule: schedule {canonical!r} ({_qualified_name(factory)}): "
        f"{problem}. It accepts: {_describe_signature(factory)}."
    ) from None
  if factory.__module__.startswith("optax"):
    _check_optax_steps(canonical, kwargs)
  return factory(**kwargs)


# Step-count arguments of optax's schedules and the least value each accepts. optax
# itself turns a non-positive `transition_steps` into a constant schedule (with only a
# log message) and accepts negative boundaries; asked for by name, these are errors.
_OPTAX_STEP_MINIMUM = {
    "transition_steps": 1,
    "decay_steps": 1,
    "warmup_steps": 0,
    "transition_begin": 0,
}


def _check_optax_steps(canonical: str, kwargs: dict[str, Any]) -> None:
  """Checks the step counts of an optax schedule built by name (see `get_schedule`)."""
  where = f"get_schedule({canonical!r})"
  steps = {
      arg: _check_steps(where, arg, kwargs[arg], minimum=minimum)
      for arg, minimum in _OPTAX_STEP_MINIMUM.items() if arg in kwargs
  }
  if canonical == "warmup_cosine_decay" and "decay_steps" in steps:
    warmup = steps.get("warmup_steps", 0)
    if steps["decay_steps"] <= warmup:
      raise ValueError(
          f"{where}: decay_steps counts the warmup too (the total length of the schedule), "
          f"so it must be > warmup_steps = {warmup}, got decay_steps={steps['decay_steps']}"
      )
  if "boundaries_and_scales" in kwargs and kwargs["boundaries_and_scales"] is not None:
    for boundary in kwargs["boundaries_and_scales"]:
      _check_steps(where, "boundaries_and_scales (a boundary)", boundary)
  if canonical == "join" and "boundaries" in kwargs:
    boundaries = [_check_steps(where, "boundaries (a boundary)", b) for b in kwargs["boundaries"]]
    if boundaries != sorted(boundaries):
      raise ValueError(
          f"{where}: boundaries must be non-decreasing step counts, got {boundaries}"
      )
