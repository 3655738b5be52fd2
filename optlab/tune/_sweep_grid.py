"""The grid of a sweep: its configurations, which of them are vmapped, and the optimizer.

:func:`optlab.tune.sweep.sweep` takes a grid (``{name: values}``) or a list of
configurations; numeric hyperparameters become vmapped (injected) axes, anything
else (a string, a schedule, a registry's static argument) compiles one program per
value. :class:`_Optimizer` builds the injected optimizer from a registry name or a
factory and runs its range checks once per configuration (inside the vmapped
program the values are traced, where those checks cannot see them).
"""

from __future__ import annotations

import inspect
import itertools
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import optax


def _is_number(value: Any) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)) or (
      isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0
      and np.issubdtype(np.asarray(value).dtype, np.number))


class _Optimizer:
  """Builds the injected optimizer from a registry name or a factory, checking arguments."""

  def __init__(self, optimizer: str | Callable[..., optax.GradientTransformation],
               fixed: Mapping[str, Any], names: Sequence[str]):
    from optlab import optim

    if isinstance(optimizer, str):
      entry = optim.info(optimizer)
      self.label, self.accepted = entry.name, tuple(entry.hyperparameters)
      self.static_args, any_kwargs = tuple(entry.static_args), False
      self._build = lambda **kw: optim.get(optimizer, inject=True, **kw)
      self._check = lambda **kw: optim.get(optimizer, **kw)
    elif callable(optimizer):
      signature = inspect.signature(optimizer)
      self.label = getattr(optimizer, "__name__", repr(optimizer))
      self.accepted = tuple(p for p, v in signature.parameters.items()
                            if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD))
      any_kwargs = any(v.kind is v.VAR_KEYWORD for v in signature.parameters.values())
      self.static_args = ()
      self._build = lambda **kw: optax.inject_hyperparams(optimizer)(**kw)
      self._check = optimizer
    else:
      raise TypeError(f"sweep: optimizer must be a registry name or a factory of "
                      f"hyperparameters, got {type(optimizer).__name__}")
    for where, keys in (("hyperparams", names), ("fixed", list(fixed))):
      unknown = [k for k in keys if k not in self.accepted]
      if unknown and not any_kwargs:
        raise TypeError(f"sweep: {where} {unknown} are not hyperparameters of optimizer "
                        f"{self.label!r}; it accepts: {', '.join(self.accepted)}")
    both = sorted(set(names) & set(fixed))
    if both:
      raise ValueError(f"sweep: {both} are both swept (hyperparams) and fixed; give each once")
    self.fixed = dict(fixed)

  def build(self, values: Mapping[str, Any]) -> optax.GradientTransformation:
    return self._build(**self.fixed, **values)

  def check(self, index: int, values: Mapping[str, Any]) -> None:
    """Builds configuration `values` once without injection, so its range checks run.

    Injected values are traced arrays inside the vmapped program, where the
    optimizer's checks cannot see them: a negative learning rate would train.
    """
    try:
      self._check(**self.fixed, **values)
    except (ValueError, TypeError) as error:
      raise type(error)(f"sweep: configuration {index} {dict(values)}: {error}") from None


def _grid_names(hyperparams: Any) -> list[str]:
  if isinstance(hyperparams, Mapping):
    return list(hyperparams)
  if isinstance(hyperparams, Sequence) and not isinstance(hyperparams, (str, bytes)):
    if hyperparams and isinstance(hyperparams[0], Mapping):
      return list(hyperparams[0])
    if not hyperparams:
      raise ValueError("sweep: hyperparams is an empty list of configurations")
  raise TypeError(f"sweep: hyperparams must be a mapping name -> values (a grid) or a list of "
                  f"configuration dicts, got {type(hyperparams).__name__}")


def _grid(hyperparams: Any, static_args: Sequence[str]):
  """(configs, names, vmapped names) after checking the grid or the list of configurations."""
  names = _grid_names(hyperparams)
  if isinstance(hyperparams, Mapping):
    if not hyperparams:
      raise ValueError("sweep: hyperparams is empty; give at least one axis, e.g. "
                       "{'learning_rate': [0.1]}")
    axes = {}
    for name, values in hyperparams.items():
      if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        values = [values]
      values = list(np.asarray(values).tolist() if isinstance(values, np.ndarray) else values)
      if not values:
        raise ValueError(f"sweep: hyperparams[{name!r}] is empty; give at least one value")
      axes[name] = values
    configs = [dict(zip(names, values, strict=True))
               for values in itertools.product(*(axes[k] for k in names))]
  else:
    configs = [dict(c) for c in hyperparams]
    for i, config in enumerate(configs):
      if sorted(config) != sorted(names):
        raise ValueError(f"sweep: configuration {i} has keys {sorted(config)}, configuration 0 "
                         f"has {sorted(names)}; every configuration needs the same keys")
  vmapped = []
  for name in names:
    values = [c[name] for c in configs]
    numeric = [_is_number(v) for v in values]
    if all(numeric) and name not in static_args:
      floating = any(isinstance(v, float) or np.issubdtype(np.asarray(v).dtype, np.floating)
                     for v in values)
      for c in configs:
        c[name] = float(c[name]) if floating else int(c[name])
      vmapped.append(name)
    elif any(numeric) and name not in static_args:
      bad = [v for v, ok in zip(values, numeric, strict=True) if not ok]
      raise TypeError(f"sweep: hyperparams[{name!r}] mixes numbers with non-numeric values "
                      f"{bad!r}; a swept numeric hyperparameter is vmapped and needs real "
                      "numbers only (non-numeric values of a separate axis compile one "
                      "program each)")
  return configs, names, vmapped
