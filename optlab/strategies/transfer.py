"""Transfer learning: parameters by path, freezing, per-layer learning rates, weight transfer.

Every parameter of a model (or any pytree, e.g. the ``nnx.Param`` state that
``optlab.train.fit`` optimizes) has a *path*: its keys joined by ``/``, as
``jax.tree_util.tree_flatten_with_path`` names them, without flax's trailing
``.value`` — ``"layers/0/kernel"``, ``"head/bias"``. Groups of parameters are
chosen by *patterns*:

* a string is a glob (``fnmatch``: ``*``, ``?``, ``[...]``; ``*`` also crosses ``/``)
  that matches a path, or any leading part of it that ends at a ``/``: ``"head"``
  matches ``"head/kernel"`` and ``"head/bias"``; ``"layers/1"`` matches
  ``"layers/1/kernel"`` but not ``"layers/10/kernel"``;
* a compiled ``re.Pattern``, or a string starting with ``"re:"``, is a regular
  expression that must match the whole path (``re.fullmatch``).

A pattern that matches no parameter is an error that lists the available paths,
so a typo never silently trains what it meant to freeze.

Everything here is an optax transform (built with ``optax.multi_transform``) or
a plain function, so it composes with ``fit``, ``optax.chain`` and the sweeps:
``fit(model, freeze(optax.adam(1e-3), "layers/0"), train)``.

References: Yosinski et al. 2014, "How transferable are features in deep neural
networks?"; Kornblith et al. 2019, "Do Better ImageNet Models Transfer Better?";
Howard & Ruder 2018, "Universal Language Model Fine-tuning" (discriminative,
per-layer learning rates).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from optlab.train.paths import (
    Pattern,
    Patterns,
    as_tree,
    compile_pattern,
    describe_paths,
    flatten_with_paths,
    match_paths,
    no_match_error,
    parameter_paths,
    path_string,
    pattern_list,
    show_pattern,
)

_UNSET: Any = object()  # `default` not given


def label_params(params: Any, rules: Mapping[Pattern, Hashable], *,
                 default: Hashable | None = None, argument: str = "rules") -> Any:
  """A tree like `params` holding each leaf's label: the label of the rule whose pattern matches.

  The labels tree is what ``optax.multi_transform`` takes as ``param_labels``.

  Args:
    params: an ``nnx.Module`` (its ``nnx.Param`` state), an ``nnx.State`` or any pytree.
    rules: ``{pattern: label}``; every pattern must match at least one leaf.
    default: the label of leaves no pattern matches; None: every leaf must be matched.
    argument: the argument name errors report.

  Returns:
    A pytree with the structure of `params` and the labels as leaves.

  Raises:
    ValueError: a pattern matches nothing; a leaf is matched by patterns with different
      labels (ambiguous); a leaf is matched by none and `default` is None.

  Example:
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> params = nnx.state(MLP(4, [8], 3, rngs=nnx.Rngs(0)), nnx.Param)
    >>> labels = label_params(params, {"head": "head"}, default="backbone")
    >>> sorted(set(jax.tree.leaves(labels)))
    ['backbone', 'head']
  """
  if not isinstance(rules, Mapping):
    raise TypeError(f"{argument}: expected a mapping {{pattern: label}}, got "
                    f"{type(rules).__name__}")
  compiled = [(pattern, compile_pattern(pattern, argument), label)
              for pattern, label in rules.items()]
  tree = as_tree(params)
  paths, _ = flatten_with_paths(tree)
  chosen: dict[str, tuple[Pattern, Hashable]] = {}
  for pattern, matches, label in compiled:
    found = [path for path in paths if matches(path)]
    if not found:
      raise no_match_error(argument, pattern, paths)
    for path in found:
      if path in chosen and chosen[path][1] != label:
        other, other_label = chosen[path]
        raise ValueError(f"{argument}: ambiguous: parameter {path!r} is matched by "
                         f"{show_pattern(other)} (label {other_label!r}) and by "
                         f"{show_pattern(pattern)} (label {label!r}); make the patterns disjoint")
      chosen.setdefault(path, (pattern, label))
  if default is None:
    missing = [path for path in paths if path not in chosen]
    if missing:
      raise ValueError(f"{argument}: no pattern matches {describe_paths(missing)}, and no default "
                       "was given; add patterns or a default")
  labels = iter([chosen[path][1] if path in chosen else default for path in paths])
  return jax.tree_util.tree_map(lambda _: next(labels), tree)


# -- optimizers ---------------------------------------------------------------------------------


def _check_tx(tx: Any, argument: str = "tx") -> None:
  if not (hasattr(tx, "init") and hasattr(tx, "update")):
    raise TypeError(f"{argument}: expected an optax.GradientTransformation, got "
                    f"{type(tx).__name__}")


def _partition(tx: optax.GradientTransformation, patterns: list[Pattern], argument: str,
               frozen_matched: bool) -> optax.GradientTransformation:
  rules = dict.fromkeys(patterns, "frozen" if frozen_matched else "trainable")
  default = "trainable" if frozen_matched else "frozen"
  return optax.multi_transform(
      {"trainable": tx, "frozen": optax.set_to_zero()},
      lambda params: label_params(params, rules, default=default, argument=argument),
  )


def freeze(tx: optax.GradientTransformation, patterns: Patterns) -> optax.GradientTransformation:
  """`tx` on every parameter except those `patterns` match, which get exactly zero updates.

  For a frozen leaf θ: u = 0, so θ ← θ + 0 (bit for bit the same, unless θ holds −0.0,
  which becomes +0.0); `tx` never sees it, so no optimizer state (moments) is allocated
  for it and weight decay does not touch it. Built as ``optax.multi_transform`` with
  ``optax.set_to_zero`` for the frozen group.

  Args:
    tx: the optimizer of the trainable parameters.
    patterns: the parameters to freeze (see the module docstring); each must match.

  Returns:
    An ``optax.GradientTransformation``; the patterns are resolved against the params
    at ``init`` (a pattern matching nothing raises a ValueError there).

  Example:
    >>> import optax
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> params = nnx.state(MLP(4, [8], 3, rngs=nnx.Rngs(0)), nnx.Param)
    >>> tx = freeze(optax.adam(1e-3), "layers")  # a linear probe: only the head trains
    >>> updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    >>> float(jnp.abs(updates["layers"][0]["kernel"][...]).max())
    0.0

  References: Yosinski et al. 2014 (frozen transferred layers).
  """
  _check_tx(tx)
  return _partition(tx, pattern_list(patterns, "freeze: patterns"), "freeze: patterns", True)


def train_only(tx: optax.GradientTransformation,
               patterns: Patterns) -> optax.GradientTransformation:
  """`tx` on the parameters `patterns` match; every other parameter is frozen (see `freeze`).

  ``train_only(tx, "head")`` is a linear probe: the transferred backbone stays fixed and
  only the new head is trained.

  Args:
    tx: the optimizer of the trainable parameters.
    patterns: the parameters to train; each must match.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optax
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> params = nnx.state(MLP(4, [8], 3, rngs=nnx.Rngs(0)), nnx.Param)
    >>> state = train_only(optax.sgd(0.1), "head").init(params)

  References: Kornblith et al. 2019 (the linear-probe protocol, "fixed features").
  """
  _check_tx(tx)
  patterns = pattern_list(patterns, "train_only: patterns")
  return _partition(tx, patterns, "train_only: patterns", False)


def _check_rate(value: Any, argument: str) -> Any:
  if value is None or callable(value):
    return value
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
      or value < 0:
    raise ValueError(f"{argument}: a learning rate (or multiplier) must be a finite number ≥ 0, "
                     f"a schedule (callable of the step) or None (frozen), got {value!r}")
  return float(value)


def _scaled(rate: Any, learning_rate: Any) -> Any:
  if learning_rate is None or rate is None:
    return rate
  if callable(rate) or callable(learning_rate):
    base = learning_rate if callable(learning_rate) else (lambda step: learning_rate)
    scale = rate if callable(rate) else (lambda step: rate)
    return lambda step: scale(step) * base(step)
  return rate * learning_rate


def per_layer_learning_rates(
    optimizer: str | Callable[..., optax.GradientTransformation],
    rates: Mapping[Pattern, Any],
    *,
    default: Any = _UNSET,
    learning_rate: Any = None,
    **hyperparams: Any,
) -> optax.GradientTransformation:
  """One `optimizer` per group of parameters, each with its own learning rate.

  For the parameters of group i (those rule i's pattern matches), the update is the
  optimizer's with learning rate η_i, u_i = −η_i · d_i(g_i) (d: the optimizer's
  direction, e.g. Adam's m̂/(√v̂ + ε)). Each group has its own optimizer state. A rate
  of 0 or None freezes the group (zero updates, no state; see `freeze`).

  Two ways to give the rates:
  * absolute (`learning_rate` None): ``rates`` are the learning rates η_i, and
    `default` is the learning rate of unmatched parameters (required unless every
    parameter is matched);
  * multipliers (`learning_rate` given): η_i = rates[i] · learning_rate, and `default`
    (1.0 unless given) multiplies it for unmatched parameters.

  Args:
    optimizer: a registry name of ``optlab.optim`` (built with
      ``optlab.optim.get(name, learning_rate=η_i, **hyperparams)``) or a factory
      called as ``optimizer(learning_rate=η_i, **hyperparams)``, e.g. ``optax.adamw``.
    rates: ``{pattern: rate}``; a rate is a number ≥ 0, a schedule (callable of the
      step count) or None. Patterns are resolved at ``init``; each must match, and a
      parameter matched by two patterns with different rates is an error.
    default: the rate (or multiplier) of parameters no pattern matches.
    learning_rate: the base learning rate (a number or schedule) the rates multiply.
    **hyperparams: the optimizer's other hyperparameters, shared by all groups.

  Returns:
    An ``optax.GradientTransformation`` (an ``optax.multi_transform``).

  Example:
    >>> import optax
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> params = nnx.state(MLP(4, [8], 3, rngs=nnx.Rngs(0)), nnx.Param)
    >>> tx = per_layer_learning_rates("sgd", {"layers": 1e-3, "head": 1e-1})
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> head, first = updates["head"]["bias"][0], updates["layers"][0]["bias"][0]
    >>> round(float(head), 6), round(float(first), 6)
    (-0.1, -0.001)

  References: Howard & Ruder 2018 (discriminative fine-tuning); Yosinski et al. 2014.
  """
  where = "per_layer_learning_rates"
  if isinstance(optimizer, str):
    from optlab import optim

    optim.info(optimizer)  # raises a clear error on an unknown name

    def build(lr):
      return optim.get(optimizer, learning_rate=lr, **hyperparams)
  elif callable(optimizer):

    def build(lr):
      return optimizer(learning_rate=lr, **hyperparams)
  else:
    raise TypeError(f"{where}: optimizer must be a registry name or a factory "
                    f"(learning_rate=..., **hyperparams) -> GradientTransformation, got "
                    f"{type(optimizer).__name__}")
  if not isinstance(rates, Mapping) or not rates:
    raise ValueError(f"{where}: rates must be a non-empty mapping {{pattern: rate}}, got "
                     f"{rates!r}")
  if learning_rate is not None and not callable(learning_rate):
    _check_rate(learning_rate, f"{where}: learning_rate")
  if default is _UNSET and learning_rate is not None:
    default = 1.0
  values = [_check_rate(v, f"{where}: rates[{show_pattern(p)}]") for p, v in rates.items()]
  for pattern in rates:
    compile_pattern(pattern, f"{where}: rates")
  if default is not _UNSET:
    default = _check_rate(default, f"{where}: default")

  groups: list[Any] = []  # distinct rates, in order; a rule's label is its rate's index

  def label_of(rate: Any) -> str:
    for i, known in enumerate(groups):
      if known is rate or (not callable(rate) and known == rate):
        return f"group_{i}"
    groups.append(rate)
    return f"group_{len(groups) - 1}"

  rules = {pattern: label_of(v) for pattern, v in zip(rates, values, strict=True)}
  default_label = None if default is _UNSET else label_of(default)
  transforms = {}
  for i, rate in enumerate(groups):
    lr = _scaled(rate, learning_rate)
    transforms[f"group_{i}"] = optax.set_to_zero() if lr is None or lr == 0 else build(lr)
  return optax.multi_transform(
      transforms,
      lambda params: label_params(params, rules, default=default_label,
                                  argument=f"{where}: rates"),
  )


# -- weights ------------------------------------------------------------------------------------


def transfer_weights(
    source: nnx.Module,
    target: nnx.Module,
    *,
    include: Patterns = "*",
    exclude: Patterns | None = ("head",),
    variables: Any = (nnx.Param, nnx.BatchStat),
) -> list[str]:
  """Copies `source`'s weights into `target` in place: a pretrained backbone under a new head.

  Every variable of `source` whose path matches `include` and not `exclude` is copied,
  exactly (same bits), into the variable of `target` with the same path. The rest of
  `target` (its new head) keeps its own initialization.

  Args:
    source: the pretrained model.
    target: the model to fill (modified in place).
    include: patterns of the variables to copy (default: all).
    exclude: patterns of the variables not to copy (default ``("head",)``); None: none.
    variables: the ``nnx.Variable`` types copied (default parameters and batch statistics).

  Returns:
    The copied paths, in leaf order.

  Raises:
    ValueError: an include/exclude pattern matches nothing in `source`; a copied path is
      missing from `target`, or its shape or dtype differs there.

  Example:
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> pretrained = MLP(64, [32], 5, rngs=nnx.Rngs(0))
    >>> model = MLP(64, [32], 3, rngs=nnx.Rngs(1))  # a new 3-class head
    >>> transfer_weights(pretrained, model)
    ['layers/0/bias', 'layers/0/kernel']

  References: Yosinski et al. 2014 (transferring the first n layers).
  """
  where = "transfer_weights"
  for name, model in (("source", source), ("target", target)):
    if not isinstance(model, nnx.Module):
      raise TypeError(f"{where}: {name} must be an nnx.Module, got {type(model).__name__}")
  variable_filter = nnx.Any(*variables) if isinstance(variables, (tuple, list)) else variables
  source_state = nnx.state(source, variable_filter)
  target_state = nnx.state(target, variable_filter)
  source_paths, source_leaves = flatten_with_paths(source_state)
  selected = set(match_paths(source_state, include, argument=f"{where}: include"))
  if exclude is not None:
    selected -= set(match_paths(source_state, exclude, argument=f"{where}: exclude"))
  if not selected:
    raise ValueError(f"{where}: include {include!r} minus exclude {exclude!r} selects nothing; "
                     f"source paths: {describe_paths(source_paths)}")
  source_values = dict(zip(source_paths, source_leaves, strict=True))
  target_paths, target_leaves = flatten_with_paths(target_state)
  target_values = dict(zip(target_paths, target_leaves, strict=True))
  copied = [path for path in source_paths if path in selected]
  for path in copied:
    if path not in target_values:
      raise ValueError(f"{where}: the target has no variable {path!r} (exclude it, or check the "
                       f"architectures); target paths: {describe_paths(target_paths)}")
    s, t = source_values[path], target_values[path]
    if jnp.shape(s) != jnp.shape(t):
      raise ValueError(f"{where}: shape mismatch at {path!r}: source {tuple(jnp.shape(s))}, "
                       f"target {tuple(jnp.shape(t))}; exclude it (e.g. a new head) or build "
                       "the target with the same sizes")
    if jnp.result_type(s) != jnp.result_type(t):
      raise ValueError(f"{where}: dtype mismatch at {path!r}: source {jnp.result_type(s)}, "
                       f"target {jnp.result_type(t)}")
  chosen = set(copied)
  leaves = iter(target_paths)

  def pick(leaf):
    path = next(leaves)
    return jnp.array(source_values[path], copy=True) if path in chosen else leaf

  nnx.update(target, jax.tree_util.tree_map(pick, target_state))
  return copied


__all__ = [
  "freeze",
  "label_params",
  "match_paths",
  "parameter_paths",
  "path_string",
  "per_layer_learning_rates",
  "train_only",
  "transfer_weights",
]
