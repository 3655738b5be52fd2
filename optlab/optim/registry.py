"""The optimizer registry: one place to find, build and tune any optimizer.

``get(name, **hyperparams)`` builds a transformation, ``names()`` lists every
registered name (optlab's own and optax's, core and contrib), ``info(name)`` gives
defaults, the search space used for tuning, the hyperparameters tuned by
default, and the paper.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _validation as v
from optlab.optim.space import Dimension

# Hyperparameters whose meaning is the same across optax's optimizers, checked when an
# optax or optax.contrib entry is built (optlab's own factories check all of theirs).
_COMMON_CHECKS = {
    "learning_rate": lambda where, value: value is None or v.check_learning_rate(where, value),
    # Closed at 1: schedule-free's b1 = 1 and decays of 1 are legitimate in optax.
    "b1": lambda where, value: v.check_range(where, "b1", value, 0.0, 1.0),
    "b2": lambda where, value: v.check_range(where, "b2", value, 0.0, 1.0),
    "momentum": lambda where, value: value is None or v.check_range(where, "momentum", value,
                                                                    0.0, 1.0),
    "decay": lambda where, value: v.check_range(where, "decay", value, 0.0, 1.0),
    "eps": lambda where, value: v.check_non_negative(where, "eps", value),
    "weight_decay": lambda where, value: v.check_non_negative(where, "weight_decay", value),
}


@dataclasses.dataclass(frozen=True)
class OptimizerInfo:
  """What the registry knows about one optimizer."""

  name: str
  factory: Callable[..., optax.GradientTransformation]
  defaults: Mapping[str, Any]
  search_space: Mapping[str, Dimension]
  tuned: tuple[str, ...]  # hyperparameters a fair comparison tunes by default
  paper: str
  source: str  # "optlab", "optax" or "optax.contrib"
  summary: str
  # Arguments never injected: masks, and callables that are not schedules.
  static_args: tuple[str, ...] = ()
  extra_args: tuple[str, ...] = ()  # keyword arguments `update` needs besides params (e.g. value)

  @property
  def hyperparameters(self) -> tuple[str, ...]:
    """Every argument the factory accepts."""
    return tuple(inspect.signature(self.factory).parameters)


_REGISTRY: dict[str, OptimizerInfo] = {}
# What `get` built, recently: id -> (transformation, description), so that `describe`
# can tell a training record which optimizer ran. Transformations are tuples (no weak
# references), so the table is bounded instead.
_BUILT: collections.OrderedDict[int, tuple[Any, dict[str, Any]]] = collections.OrderedDict()
_BUILT_LIMIT = 1024


def _normalize(name: str) -> str:
  return name.strip().lower().replace("-", "_")


def register(
    name: str,
    factory: Callable[..., optax.GradientTransformation],
    *,
    defaults: Mapping[str, Any] | None = None,
    search_space: Mapping[str, Dimension] | None = None,
    tuned: tuple[str, ...] = ("learning_rate",),
    paper: str = "",
    source: str = "optlab",
    summary: str = "",
    static_args: tuple[str, ...] = (),
    extra_args: tuple[str, ...] = (),
    overwrite: bool = False,
) -> OptimizerInfo:
  """Adds an optimizer factory to the registry and returns its entry.

  Args:
    name: the registry name (case-insensitive; ``-`` and ``_`` are the same).
    factory: a function of hyperparameters returning a GradientTransformation.
    defaults: hyperparameter values used when ``get`` is not given them; the
      factory's own defaults fill in the rest.
    search_space: a dimension per tunable hyperparameter.
    tuned: the hyperparameters a fair comparison tunes by default (a subset of
      the search space).
    paper: the reference.
    source: who implements it.
    summary: one line for listings.
    static_args: arguments that are never injected as hyperparameters.
    extra_args: keyword arguments the update needs besides the parameters.
    overwrite: replace an existing entry instead of raising.

  Returns:
    The new :class:`OptimizerInfo`.
  """
  key = _normalize(name)
  if key in _REGISTRY and not overwrite:
    raise ValueError(f"register: an optimizer named {name!r} is already registered")
  signature = inspect.signature(factory)
  merged = {
      arg: parameter.default
      for arg, parameter in signature.parameters.items()
      if parameter.default is not inspect.Parameter.empty
  }
  merged.update(defaults or {})
  space = dict(search_space or {})
  for arg in list(merged) + list(space) + list(tuned):
    if arg not in signature.parameters:
      raise ValueError(f"register: {name!r} has no hyperparameter {arg!r}")
  missing = [t for t in tuned if t not in space]
  if missing:
    raise ValueError(f"register: tuned hyperparameters {missing} of {name!r} have no search space")
  entry = OptimizerInfo(
      name=key,
      factory=factory,
      defaults=MappingProxyType(merged),
      search_space=MappingProxyType(space),
      tuned=tuple(tuned),
      paper=paper,
      source=source,
      summary=summary or (inspect.getdoc(factory) or "").split("\n")[0],
      static_args=tuple(static_args),
      extra_args=tuple(extra_args),
  )
  _REGISTRY[key] = entry
  return entry


def _unknown(name: str) -> ValueError:
  close = difflib.get_close_matches(_normalize(name), list(_REGISTRY), n=5, cutoff=0.5)
  hint = f" Did you mean: {', '.join(close)}?" if close else ""
  return ValueError(
      f"unknown optimizer {name!r}.{hint} optlab.optim.names() lists all "
      f"{len(_REGISTRY)} registered optimizers."
  )


def info(name: str) -> OptimizerInfo:
  """The registry entry of `name`; raises ValueError with the closest names if unknown."""
  try:
    return _REGISTRY[_normalize(name)]
  except KeyError:
    raise _unknown(name) from None


def names(source: str | None = None) -> list[str]:
  """Every registered name, optlab's first, or only those of one `source`."""
  order = {"optlab": 0, "optax": 1, "optax.contrib": 2}
  entries = sorted(_REGISTRY.values(), key=lambda e: (order.get(e.source, 3), e.name))
  return [e.name for e in entries if source is None or e.source == source]


def get(
    name: str,
    *,
    inject: bool = False,
    hyperparam_dtype: Any = jnp.float32,
    **hyperparams: Any,
) -> optax.GradientTransformation:
  """Builds the optimizer `name` with the registry's defaults and `hyperparams`.

  Args:
    name: a registered name (see :func:`names`).
    inject: keep every numeric hyperparameter (and the current value of every
      schedule) in the optimizer state, via ``optax.inject_hyperparams``, so they
      can be changed between steps or ``jax.vmap``-ped over.
    hyperparam_dtype: dtype of injected hyperparameters: float32 by default
      whatever the parameters' dtype (in bfloat16, β₂ = 0.999 would round to 1);
      ``jnp.float64`` for float64 studies under ``jax.enable_x64``.
    **hyperparams: overrides of the defaults.

  Returns:
    An ``optax.GradientTransformation`` (``GradientTransformationExtraArgs`` when injected).

  Example:
    >>> import optlab
    >>> tx = optlab.optim.get("adam", learning_rate=3e-4)
    >>> swept = optlab.optim.get("nesterov", inject=True, learning_rate=0.1)
  """
  entry = info(name)
  accepted = entry.hyperparameters
  unknown = [k for k in hyperparams if k not in accepted]
  if unknown:
    suggestions = {k: difflib.get_close_matches(k, accepted, n=1) for k in unknown}
    hints = "; ".join(
        f"{k!r}" + (f" (did you mean {s[0]!r}?)" if s else "") for k, s in suggestions.items()
    )
    raise TypeError(
        f"{entry.name}: unknown hyperparameter {hints}. Accepted: {', '.join(accepted)}"
    )
  kwargs = {**entry.defaults, **hyperparams}
  if entry.source != "optlab":
    for arg, check in _COMMON_CHECKS.items():
      if arg in hyperparams:
        check(entry.name, hyperparams[arg])
  if not inject:
    tx = entry.factory(**kwargs)
  else:
    factory = optax.inject_hyperparams(
        entry.factory, static_args=entry.static_args, hyperparam_dtype=hyperparam_dtype
    )
    tx = factory(**kwargs)
  _BUILT[id(tx)] = (tx, {"name": entry.name, "inject": inject,
                         "hyperparams": {k: _plain(v) for k, v in kwargs.items()}})
  while len(_BUILT) > _BUILT_LIMIT:
    _BUILT.popitem(last=False)
  return tx


def _plain(value: Any) -> Any:
  """A JSON-friendly form of a hyperparameter: numbers and strings as they are."""
  if value is None or isinstance(value, (str, bool, int, float)):
    return value
  if isinstance(value, jax.core.Tracer):  # built inside jit or vmap: no value to record
    return "<traced>"
  if getattr(value, "shape", None) == ():
    return float(value)
  return repr(value)


def describe(tx: Any) -> dict[str, Any] | None:
  """How `tx` was built, when it came from :func:`get`: name, hyperparameters, inject.

  Returns None for a transformation built otherwise (a hand-made chain): pass a
  description of it to ``optlab.train.fit(run_config=...)`` instead.

  Example:
    >>> import optlab
    >>> optlab.optim.describe(optlab.optim.get("sgd", learning_rate=0.1))["hyperparams"]
    {'learning_rate': 0.1, 'momentum': 0.0, 'nesterov': False}
  """
  built = _BUILT.get(id(tx))
  if built is None or built[0] is not tx:
    return None
  return {**built[1], "hyperparams": dict(built[1]["hyperparams"])}
