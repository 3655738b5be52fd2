"""Magnitude pruning as an optax transformation: masks in the optimizer state.

``magnitude_masks`` ranks weights (or whole neurons / conv channels) by magnitude and
masks the smallest, per layer or globally; ``polynomial_sparsity_schedule`` is Zhu &
Gupta's (2017) gradual schedule; ``prune`` is a ``GradientTransformation`` that keeps
the masks (and a step count) in its state, recomputes them at the schedule's pruning
steps and rewrites the final update so that pruned weights become exactly zero and stay
exactly zero. ``sparsity_report`` counts what is left; ``rewind`` resets the surviving
weights to early values (the lottery ticket procedure, Frankle & Carbin 2019).

Chain order: ``prune`` must be the *last* transformation of the chain, after the
optimizer, e.g. ``optax.chain(optlab.optim.get("adam", learning_rate=1e-3), prune(0.9))``;
it replaces the update of every pruned weight θ by −θ, so whatever the optimizer's
momentum or second-moment buffers hold cannot move a pruned weight
(``optax.apply_updates`` gives θ + (−θ) = 0 exactly). ``optlab.train.fit`` appends
its own learning-rate scale (used only by ``ReduceLROnPlateau``) after `tx`; at its
default factor 1 the update is unchanged, but once a plateau callback has lowered it to
c < 1, a weight pruned at a later pruning step shrinks to (1 − c)θ instead of vanishing
(weights pruned before stay exactly 0); use ``apply_masks`` on the result in that case.

Parameters are addressed by paths such as ``"layers/0/kernel"`` or ``"head/bias"``
(flax NNX ``State`` trees and plain nested dicts alike; see ``parameter_paths``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.train.paths import (
    compile_pattern,
    no_match_error,
    parameter_paths,
    path_string,
    pattern_list,
)

SCOPES = ("layer", "global")
STRUCTURES = (None, "neurons", "channels")
# Leaf names that are never pruned by default (biases, normalization scales, ...).
_NOT_WEIGHTS = ("bias", "scale", "mean", "var")

Where = Callable[[str, jax.Array], bool] | str | Sequence[str] | None  # see optlab.train.paths


# --- paths -----------------------------------------------------------------------------------


def _default_where(path: str, leaf: jax.Array) -> bool:
  return jnp.ndim(leaf) >= 2 and path.rsplit("/", 1)[-1] not in _NOT_WEIGHTS


def _selection(params: Any, where: Where, structure: str | None) -> list[bool]:
  """Which leaves (in tree order) are prunable; unknown path patterns raise."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  paths = [path_string(p) for p, _ in leaves]
  if where is None:
    chosen = [_default_where(p, x) for p, (_, x) in zip(paths, leaves, strict=True)]
    if structure == "neurons":
      chosen = [c and jnp.ndim(x) == 2 for c, (_, x) in zip(chosen, leaves, strict=True)]
    elif structure == "channels":
      chosen = [c and jnp.ndim(x) >= 3 for c, (_, x) in zip(chosen, leaves, strict=True)]
  elif callable(where):
    chosen = [bool(where(p, x)) for p, (_, x) in zip(paths, leaves, strict=True)]
  else:
    patterns = pattern_list(where, "where")
    matchers = [compile_pattern(q, "where") for q in patterns]
    for q, matches in zip(patterns, matchers, strict=True):
      if not any(matches(p) for p in paths):
        raise no_match_error("where", q, paths)
    chosen = [any(matches(p) for matches in matchers) for p in paths]
  for p, c, (_, x) in zip(paths, chosen, leaves, strict=True):
    if c and structure is not None and jnp.ndim(x) < 2:
      raise ValueError(f"where: structured pruning ({structure!r}) needs kernels with ndim >= 2, "
                       f"but {p!r} has shape {jnp.shape(x)}")
  if not any(chosen):
    raise ValueError(f"where: no parameter is selected for pruning (structure={structure!r}); "
                     f"the parameter paths are {paths}")
  return chosen


# --- masks -----------------------------------------------------------------------------------


def _is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_sparsity(name: str, value: Any) -> None:
  if isinstance(value, bool) or not (isinstance(value, (int, float, np.number, np.ndarray,
                                                        jax.Array))):
    raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
  if _is_concrete(value):
    v = np.asarray(value)
    if v.shape != () or not (0.0 <= float(v) < 1.0):
      raise ValueError(f"{name}: must be a scalar in [0, 1), got {value!r}")


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
  if value not in choices:
    raise ValueError(f"{name}: must be one of {list(choices)}, got {value!r}")


def _keep_top(scores: jax.Array, sparsity: jax.Array) -> jax.Array:
  """Keeps all but the ⌊s·n + ½⌋ lowest scores (ties broken by position): exact counts."""
  n = scores.shape[0]
  k = jnp.floor(jnp.asarray(sparsity, jnp.float32) * n + 0.5).astype(jnp.int32)
  order = jnp.argsort(scores, stable=True)
  ranks = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
  return ranks >= k


def _scores(leaf: jax.Array, previous: jax.Array | None, structure: str | None) -> jax.Array:
  """Flat scores: |θ| per weight or the L2 norm of each output unit (last axis)."""
  x = jnp.asarray(leaf, jnp.float32)
  if structure is None:
    s = jnp.abs(x).reshape(-1)
    alive = None if previous is None else previous.reshape(-1)
  else:
    s = jnp.sqrt(jnp.sum(jnp.square(x.reshape(-1, x.shape[-1])), axis=0))
    alive = None if previous is None else jnp.any(previous.reshape(-1, x.shape[-1]), axis=0)
  # Already-pruned weights (units) rank below every live one, so masks only grow.
  return s if alive is None else jnp.where(alive, s, -1.0)


def magnitude_masks(
    params: Any,
    sparsity: float | jax.Array,
    *,
    scope: str = "layer",
    structure: str | None = None,
    where: Where = None,
    previous: Any = None,
) -> Any:
  """Boolean masks (True = kept) that remove the smallest-magnitude weights.

  Unstructured (``structure=None``): each selected weight is scored by |θ|. Structured:
  each output unit of a selected kernel (flax's last axis: a dense layer's neuron, a
  convolution's output channel) is scored by the L2 norm of its incoming weights, and
  pruned as a whole (together with its bias, if the layer has a ``bias`` of that size).
  With ``scope="layer"`` exactly ⌊s·n + ½⌋ of each selected leaf's n weights (units)
  are pruned; with ``scope="global"`` the ⌊s·N + ½⌋ lowest scores over all N selected
  weights (units) are, so layers end with different sparsities. Ties are broken by
  position, so the counts are exact. `sparsity` may be a traced value (``jax.vmap``
  over sparsity levels).

  Args:
    params: a pytree of arrays (a flax NNX ``nnx.State`` of ``nnx.Param`` or a dict).
    sparsity: fraction in [0, 1) of the selected weights (units) to prune.
    scope: ``"layer"`` (every selected leaf to `sparsity`) or ``"global"``.
    structure: None (single weights), ``"neurons"`` or ``"channels"`` (whole output units;
      the two differ only in their default selection: 2-d kernels or ≥3-d kernels). The
      default selection includes the output layer, whose units are the model's outputs:
      pass `where` (e.g. ``"layers/*/kernel"``) to keep them.
    where: which leaves may be pruned: a predicate ``(path, leaf) -> bool``, a path
      pattern (``"layers/*/kernel"``, ``"re:..."``; see ``optlab.train.paths``) or a list
      of them; by default every leaf with
      ndim ≥ 2 that is not a bias or normalization parameter. A pattern that matches no
      parameter raises.
    previous: masks from an earlier pruning step: what they pruned ranks lowest, so with a
      non-decreasing sparsity the new masks contain the old ones.

  Returns:
    A pytree like `params` of boolean arrays of the leaves' shapes (all True where not
    selected).

  Example:
    >>> params = {"dense": {"kernel": jnp.arange(1.0, 9.0).reshape(2, 4), "bias": jnp.ones(4)}}
    >>> masks = magnitude_masks(params, 0.25)
    >>> masks["dense"]["kernel"].astype(int)
    Array([[0, 0, 1, 1],
           [1, 1, 1, 1]], dtype=int32)

  References:
    Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural
    Networks", NeurIPS 2015; Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
  """
  _check_sparsity("sparsity", sparsity)
  _check_choice("scope", scope, SCOPES)
  _check_choice("structure", structure, STRUCTURES)
  chosen = _selection(params, where, structure)
  paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [path_string(p) for p, _ in paths_leaves]
  leaves = [x for _, x in paths_leaves]
  prev = None if previous is None else jax.tree.leaves(previous)
  if prev is not None and len(prev) != len(leaves):
    raise ValueError(f"previous: expected masks with the structure of params ({len(leaves)} "
                     f"leaves), got {len(prev)} leaves")
  # Which (unselected) bias follows the units of which selected kernel.
  biases = {}
  for i, x in enumerate(leaves):
    if chosen[i] and structure is not None:
      bias = paths[i].rsplit("/", 1)[0] + "/bias" if "/" in paths[i] else "bias"
      j = paths.index(bias) if bias in paths else None
      if j is not None and not chosen[j] and jnp.shape(leaves[j]) == (jnp.shape(x)[-1],):
        biases[i] = j
  masks = _masks_core(leaves, prev, jnp.asarray(sparsity, jnp.float32), tuple(chosen), scope,
                      structure, tuple(biases.items()))
  return jax.tree_util.tree_unflatten(treedef, masks)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _masks_core(leaves, prev, sparsity, chosen, scope, structure, biases):
  """The masks of ``magnitude_masks`` as one compiled function (eager calls compile once)."""
  scores = {i: _scores(x, None if prev is None else prev[i], structure)
            for i, x in enumerate(leaves) if chosen[i]}
  if scope == "layer":
    keep = {i: _keep_top(s, sparsity) for i, s in scores.items()}
  else:
    index = list(scores)
    flat = _keep_top(jnp.concatenate([scores[i] for i in index]), sparsity)
    bounds = np.cumsum([0] + [scores[i].shape[0] for i in index])
    keep = {i: flat[bounds[j]:bounds[j + 1]] for j, i in enumerate(index)}
  masks = [jnp.ones(jnp.shape(x), bool) for x in leaves]
  for i, k in keep.items():
    shape = jnp.shape(leaves[i])
    masks[i] = k.reshape(shape) if structure is None else jnp.broadcast_to(k, shape)
  for i, j in biases:
    masks[j] = keep[i]
  return masks


def apply_masks(params: Any, masks: Any) -> Any:
  """`params` with the masked-out entries set to exactly 0."""
  return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def rewind(params_early: Any, masks: Any) -> Any:
  """Lottery-ticket rewinding: the early (e.g. initial) weights, with pruned entries zeroed.

  Train the result with ``prune(masks=masks)`` to retrain the sparse subnetwork found by
  pruning the trained model (Frankle & Carbin 2019; rewinding to an early iterate rather
  than to initialization: Frankle et al. 2020).

  Args:
    params_early: parameters saved early in training (same structure as `masks`).
    masks: boolean masks, e.g. ``magnitude_masks(trained_params, 0.9)``.

  Returns:
    ``params_early`` where `masks` is True, 0 elsewhere.

  References:
    Frankle, Carbin, "The Lottery Ticket Hypothesis", ICLR 2019; Frankle, Dziugaite, Roy,
    Carbin, "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020.
  """
  if jax.tree.structure(params_early) != jax.tree.structure(masks):
    raise ValueError("rewind: params_early and masks have different structures: "
                     f"{parameter_paths(params_early)} vs {parameter_paths(masks)}")
  return apply_masks(params_early, masks)


def sparsity_report(params: Any, masks: Any = None) -> dict[str, Any]:
  """Per-leaf and total sparsity (fraction of exact zeros) and non-zero counts.

  Args:
    params: a pytree of arrays.
    masks: optional masks; adds each leaf's and the total count of pruned entries.

  Returns:
    ``{"layers": {path: {"size", "nonzero", "sparsity"[, "pruned"]}}, "size", "nonzero",
    "sparsity"[, "pruned"]}`` with Python numbers.

  Example:
    >>> sparsity_report({"w": jnp.array([[0.0, 1.0], [0.0, 2.0]])})["sparsity"]
    0.5
  """
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  mask_leaves = None if masks is None else jax.tree.leaves(masks)
  if mask_leaves is not None and len(mask_leaves) != len(leaves):
    raise ValueError(f"masks: expected {len(leaves)} leaves (the structure of params), got "
                     f"{len(mask_leaves)}")
  layers, size, nonzero, pruned = {}, 0, 0, 0
  for i, (path, leaf) in enumerate(leaves):
    x = np.asarray(leaf)
    entry = {"size": int(x.size), "nonzero": int(np.count_nonzero(x))}
    entry["sparsity"] = 1.0 - entry["nonzero"] / max(entry["size"], 1)
    if mask_leaves is not None:
      entry["pruned"] = int(np.size(x) - np.count_nonzero(np.broadcast_to(
          np.asarray(mask_leaves[i]), x.shape)))
      pruned += entry["pruned"]
    layers[path_string(path)] = entry
    size, nonzero = size + entry["size"], nonzero + entry["nonzero"]
  report = {"layers": layers, "size": size, "nonzero": nonzero,
            "sparsity": 1.0 - nonzero / max(size, 1)}
  if mask_leaves is not None:
    report["pruned"] = pruned
  return report


# --- schedule --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PolynomialSparsity:
  """Zhu & Gupta's gradual schedule (see ``polynomial_sparsity_schedule``, which validates).

  Built directly, every field may be a traced value (e.g. one compiled program for
  several schedules); ``end_step == begin_step`` prunes once, to s_f, at that step.
  """

  final_sparsity: float | jax.Array
  begin_step: int
  end_step: int
  initial_sparsity: float | jax.Array = 0.0
  power: float = 3.0
  frequency: int = 1

  def __post_init__(self):
    """Checks every field that is not a traced value."""
    _check_sparsity("final_sparsity", self.final_sparsity)
    _check_sparsity("initial_sparsity", self.initial_sparsity)
    steps = {"begin_step": (self.begin_step, 0), "frequency": (self.frequency, 1),
             "end_step": (self.end_step, None)}
    for name, (value, low) in steps.items():
      if not _is_concrete(value):
        continue
      v = np.asarray(value)
      if isinstance(value, bool) or v.shape != () or not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
      low = self.begin_step if low is None else low
      if _is_concrete(low) and int(v) < int(low):
        what = "begin_step" if name == "end_step" else str(low)
        raise ValueError(f"{name}: must be >= {what} ({int(low)}), got {int(v)}")
    if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) or not (
        self.power > 0):
      raise ValueError(f"power: must be a number > 0, got {self.power!r}")
    if _is_concrete(self.final_sparsity) and _is_concrete(self.initial_sparsity) and (
        float(self.initial_sparsity) > float(self.final_sparsity)):
      raise ValueError(f"initial_sparsity: must be <= final_sparsity "
                       f"({float(self.final_sparsity)}), got {float(self.initial_sparsity)}")

  def __call__(self, step: jax.Array | int) -> jax.Array:
    """The sparsity in force at `step` (0 before `begin_step`, held between pruning steps)."""
    t = jnp.asarray(step, jnp.int32)
    last = self.begin_step + (t - self.begin_step) // self.frequency * self.frequency
    last = jnp.where(t >= self.end_step, self.end_step, last)
    span = jnp.maximum(self.end_step - self.begin_step, 1)
    progress = jnp.clip((last - self.begin_step) / span, 0.0, 1.0).astype(jnp.float32)
    s_f = jnp.asarray(self.final_sparsity, jnp.float32)
    s_i = jnp.asarray(self.initial_sparsity, jnp.float32)
    value = jnp.where(t >= self.end_step, s_f, s_f + (s_i - s_f) * (1.0 - progress) ** self.power)
    return jnp.where(t < self.begin_step, 0.0, value)

  def is_pruning_step(self, step: jax.Array | int) -> jax.Array:
    """True at t₀, t₀ + Δt, ... before `end_step`, and at `end_step`."""
    t = jnp.asarray(step, jnp.int32)
    on_grid = (t >= self.begin_step) & ((t - self.begin_step) % self.frequency == 0)
    return (on_grid & (t <= self.end_step)) | (t == self.end_step)


def polynomial_sparsity_schedule(
    final_sparsity: float | jax.Array,
    begin_step: int,
    end_step: int,
    initial_sparsity: float | jax.Array = 0.0,
    power: float = 3.0,
    frequency: int = 100,
) -> PolynomialSparsity:
  """Gradual pruning: sparsity rises from s_i to s_f along a polynomial, fast then slowly.

  At the pruning steps t = t₀, t₀ + Δt, ..., (and t₀ + nΔt = `end_step`)::

    s_t = s_f + (s_i − s_f) (1 − (t − t₀) / (n Δt))^p        (p = 3 in the paper)

  and in between the last value is held; before t₀ nothing is pruned (0). When
  ``end_step − begin_step`` is not a multiple of Δt, `end_step` is one more pruning
  step, at s_f.

  Args:
    final_sparsity: s_f in [0, 1) (may be traced, e.g. vmapped over levels).
    begin_step: t₀ ≥ 0, the first pruning step.
    end_step: t₀ + nΔt ≥ t₀, the step at which s_f is reached.
    initial_sparsity: s_i in [0, s_f].
    power: p > 0.
    frequency: Δt ≥ 1, steps between pruning steps.

  Returns:
    A ``PolynomialSparsity``: ``schedule(step) -> sparsity`` and
    ``schedule.is_pruning_step(step) -> bool``, both jit-able; pass it to ``prune``.

  Example:
    >>> schedule = polynomial_sparsity_schedule(0.9, begin_step=0, end_step=100, frequency=50)
    >>> [round(float(schedule(t)), 4) for t in (0, 49, 50, 100, 500)]
    [0.0, 0.0, 0.7875, 0.9, 0.9]

  References:
    Zhu, Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", ICLR Workshop 2018 (arXiv:1710.01878, 2017), eq. (1).
  """
  return PolynomialSparsity(final_sparsity, begin_step, end_step, initial_sparsity, power,
                            frequency)


# --- the transformation ----------------------------------------------------------------------


class PruneState(NamedTuple):
  """State of ``prune``: the step count and the current masks (True = kept)."""

  step: jax.Array  # int32 scalar
  masks: Any


def prune(
    sparsity: float | jax.Array | Callable[[jax.Array], jax.Array] | None = None,
    *,
    scope: str = "layer",
    structure: str | None = None,
    where: Where = None,
    masks: Any = None,
) -> optax.GradientTransformation:
  """Magnitude pruning with masks in the optimizer state; chain it *last*.

  At a pruning step t (with the schedule's sparsity s_t) the masks become
  ``magnitude_masks(params, s_t, previous=masks)`` computed from the current parameters;
  at every step the update of a kept weight passes through and that of a pruned weight θ
  is replaced by −θ::

    u'_t = m_t ⊙ u_t − (1 − m_t) ⊙ θ_t,   so   θ_{t+1} = m_t ⊙ (θ_t + u_t).

  Newly pruned weights thus become exactly 0 and pruned weights stay exactly 0, whatever
  the optimizer before it in the chain keeps in its state.

  Args:
    sparsity: a number in [0, 1) (one-shot: prune once, at the first update), a
      ``polynomial_sparsity_schedule`` (masks recomputed at its pruning steps), any
      callable ``step -> sparsity`` (masks recomputed at every step), or None with `masks`.
    scope: ``"layer"`` or ``"global"`` (see ``magnitude_masks``).
    structure: None, ``"neurons"`` or ``"channels"`` (see ``magnitude_masks``).
    where: which parameters may be pruned (see ``magnitude_masks``); checked at ``init``.
    masks: initial masks (True = kept), e.g. for retraining a rewound lottery ticket; alone
      they stay fixed, with `sparsity` later pruning steps start from them.

  Returns:
    An ``optax.GradientTransformation`` with ``PruneState``; its ``update`` needs `params`.

  Example:
    >>> import optax
    >>> params = {"w": jnp.array([[0.1, -2.0], [3.0, -0.2]])}
    >>> tx = optax.chain(optax.adam(0.1), prune(0.5))
    >>> state = tx.init(params)
    >>> grads = {"w": jnp.ones((2, 2))}
    >>> updates, state = tx.update(grads, state, params)
    >>> np.asarray(optax.apply_updates(params, updates)["w"], np.float64).round(3).tolist()
    [[0.0, -2.1], [2.9, 0.0]]

  References:
    Han et al., NeurIPS 2015 (magnitude pruning and retraining); Zhu & Gupta 2017
    (gradual pruning with masks updated during training).
  """
  _check_choice("scope", scope, SCOPES)
  _check_choice("structure", structure, STRUCTURES)
  if masks is None and sparsity is None:
    raise ValueError("prune: sparsity is required (a number in [0, 1) or a schedule) unless "
                     "fixed masks are given")
  if sparsity is None:
    schedule, is_pruning_step = None, None
  elif isinstance(sparsity, PolynomialSparsity):
    schedule, is_pruning_step = sparsity, sparsity.is_pruning_step
  elif callable(sparsity):
    schedule, is_pruning_step = sparsity, lambda t: jnp.asarray(True)
  else:
    _check_sparsity("sparsity", sparsity)
    schedule, is_pruning_step = (lambda t: sparsity), (lambda t: t == 0)

  def init_fn(params):
    if schedule is not None:
      _selection(params, where, structure)  # unknown paths raise here, not inside jit
    if masks is not None:
      if jax.tree.structure(masks) != jax.tree.structure(params):
        raise ValueError("prune: masks must have the structure of params: "
                         f"{parameter_paths(masks)} vs {parameter_paths(params)}")
      initial = jax.tree.map(lambda m, p: jnp.broadcast_to(jnp.asarray(m, bool), jnp.shape(p)),
                             masks, params)
    else:
      initial = jax.tree.map(lambda p: jnp.ones(jnp.shape(p), bool), params)
    return PruneState(step=jnp.zeros([], jnp.int32), masks=initial)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("prune: update needs params (call tx.update(grads, state, params))")
    current = state.masks
    if schedule is not None:
      current = jax.lax.cond(
          is_pruning_step(state.step),
          lambda: magnitude_masks(params, schedule(state.step), scope=scope,
                                  structure=structure, where=where, previous=state.masks),
          lambda: state.masks)
    new_updates = jax.tree.map(
        lambda u, m, p: jnp.where(m, u, -p).astype(u.dtype), updates, current, params)
    return new_updates, PruneState(step=state.step + 1, masks=current)

  return optax.GradientTransformation(init_fn, update_fn)


def masks_of(opt_state: Any) -> Any:
  """The masks held by the (first) ``prune`` state inside an optimizer state (e.g. a chain's
  or ``fit``'s ``result.state.opt_state``)."""
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, PruneState))
           if isinstance(s, PruneState)]
  if not found:
    raise ValueError("masks_of: the optimizer state holds no PruneState (was prune chained?)")
  return found[0].masks
