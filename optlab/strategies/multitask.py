"""Multi-task learning: a shared trunk with one head per task, task weighting, gradient surgery.

A :class:`MultiTaskModel` maps inputs to ``{task: outputs}``. Training minimizes a
weighted combination of the per-task losses ``L = (L_1, …, L_T)``; a *weighting*
says how (:func:`fixed`, :func:`uncertainty_weighting` of Kendall et al. 2018,
:func:`gradnorm` of Chen et al. 2018) and a *surgery* (:func:`pcgrad` of Yu et al.
2020) may transform the per-task gradients before they are summed. The step
(:func:`make_multitask_step`) is pure and jit-able over the same
:class:`optlab.train.TrainState` that ``optlab.train`` uses, with any optax
transformation; :func:`fit_multitask` is the loop around it.

State layout inside the ``TrainState``: ``params = {"model": θ, "weighting": φ}``
(φ: learnable weighting parameters, e.g. Kendall's log σ², trained by the same `tx`)
and ``model_state = {"model": rest, "weighting": s}`` (s: non-learned weighting state,
e.g. GradNorm's weights and initial losses).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab.train import steps as steps_lib
from optlab.train.loop import FitResult
from optlab.train.state import TrainState, split_model

Surgery = Callable[[Any, jax.Array], Any]


class MultiTaskModel(nnx.Module):
  """A shared trunk followed by one head per task; returns ``{task: head(trunk(x))}``.

  Args:
    trunk: the shared module (its output feeds every head).
    heads: ``{task name: module}``; the order of the tasks is the order of this mapping.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = MultiTaskModel(nnx.Linear(4, 8, rngs=nnx.Rngs(0)),
    ...                        {"a": nnx.Linear(8, 3, rngs=nnx.Rngs(1)),
    ...                         "b": nnx.Linear(8, 2, rngs=nnx.Rngs(2))})
    >>> {k: v.shape for k, v in model(jnp.ones((5, 4))).items()}
    {'a': (5, 3), 'b': (5, 2)}
  """

  def __init__(self, trunk: nnx.Module, heads: Mapping[str, nnx.Module]):
    if not isinstance(trunk, nnx.Module):
      raise TypeError(f"MultiTaskModel: trunk must be an nnx.Module, got {type(trunk).__name__}")
    if not isinstance(heads, Mapping) or not heads:
      raise ValueError(f"MultiTaskModel: heads must be a non-empty {{task: nnx.Module}} mapping, "
                       f"got {heads!r}")
    for name, head in heads.items():
      if not isinstance(name, str) or not name:
        raise TypeError(f"MultiTaskModel: task names must be non-empty strings, got {name!r}")
      if not isinstance(head, nnx.Module):
        raise TypeError(f"MultiTaskModel: head {name!r} must be an nnx.Module, "
                        f"got {type(head).__name__}")
    self.trunk = trunk
    self.heads = nnx.Dict(dict(heads))
    self.tasks = tuple(heads)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    features = self.trunk(x)
    return {task: self.heads[task](features) for task in self.tasks}


# ---------------------------------------------------------------------------- weightings


class Weighting(NamedTuple):
  """How per-task losses combine into the objective.

  Attributes:
    name: for logs.
    init: ``init(tasks) -> (learnable, state)``; `learnable` is trained by the
      step's optimizer with the model, `state` is carried and changed by `update`.
    objective: ``objective(losses (T,), learnable, state) -> scalar``. The weight
      that multiplies task i's gradient is ∂objective/∂L_i.
    update: ``update(state, losses (T,), task_grads) -> state`` after each step
      (`task_grads`: the per-task gradients of the model parameters, leading axis T).
    needs_task_gradients: whether `update` reads `task_grads` (then the step
      computes the per-task jacobian even without a surgery).
  """

  name: str
  init: Callable[[tuple[str, ...]], tuple[Any, Any]]
  objective: Callable[[jax.Array, Any, Any], jax.Array]
  update: Callable[[Any, jax.Array, Any], Any]
  needs_task_gradients: bool = False


def _keep_state(state: Any, losses: jax.Array, task_grads: Any) -> Any:
  del losses, task_grads
  return state


def _check_tasks(where: str, tasks: Sequence[str]) -> tuple[str, ...]:
  tasks = tuple(tasks)
  if not tasks or len(set(tasks)) != len(tasks):
    raise ValueError(f"{where}: tasks must be distinct names, at least one; got {tasks!r}")
  return tasks


def fixed(weights: Mapping[str, float] | Sequence[float] | None = None) -> Weighting:
  """Fixed task weights: ``objective = Σ_i w_i L_i``.

  Args:
    weights: ``{task: w ≥ 0}`` (every task named exactly once), a sequence in the
      model's task order, or None for ``w_i = 1`` (the plain sum).

  Returns:
    A :class:`Weighting`.

  Example:
    >>> import jax.numpy as jnp
    >>> w = fixed({"a": 1.0, "b": 0.5})
    >>> learnable, state = w.init(("a", "b"))
    >>> float(w.objective(jnp.array([2.0, 4.0]), learnable, state))
    4.0
  """
  if weights is not None:
    values = list(weights.values()) if isinstance(weights, Mapping) else list(weights)
    bad = [v for v in values if not isinstance(v, (int, float, np.number)) or not v >= 0]
    if bad or not values:
      raise ValueError(f"fixed: weights must be finite numbers ≥ 0, got {weights!r}")
    if not np.all(np.isfinite(values)):
      raise ValueError(f"fixed: weights must be finite numbers ≥ 0, got {weights!r}")

  def init(tasks):
    tasks = _check_tasks("fixed", tasks)
    if weights is None:
      w = [1.0] * len(tasks)
    elif isinstance(weights, Mapping):
      unknown, missing = set(weights) - set(tasks), set(tasks) - set(weights)
      if unknown or missing:
        raise ValueError(f"fixed: weights name tasks {sorted(weights)}, the model's tasks are "
                         f"{list(tasks)} (unknown: {sorted(unknown)}, missing: {sorted(missing)})")
      w = [float(weights[t]) for t in tasks]
    else:
      if len(weights) != len(tasks):
        raise ValueError(f"fixed: {len(weights)} weights for {len(tasks)} tasks {list(tasks)}")
      w = [float(v) for v in weights]
    return {}, {"weights": jnp.asarray(w, jnp.float32)}

  def objective(losses, learnable, state):
    del learnable
    return jnp.sum(state["weights"] * losses)

  return Weighting("fixed", init, objective, _keep_state)


_UNCERTAINTY_FORMS = {
    # name: (factor on exp(-s) L, factor on s)
    "classification": (1.0, 0.5),
    "regression": (0.5, 0.5),
    "simple": (1.0, 1.0),
}


def uncertainty_weighting(convention: str = "classification", init: float = 0.0) -> Weighting:
  """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla 2018).

  Each task has a learnable ``s_i = log σ_i²`` (trained by the step's optimizer):

    classification (Kendall eq. 10, softmax with temperature σ²):
      objective = Σ_i exp(−s_i) L_i + ½ s_i        (optimal s_i = log 2L_i)
    regression (Kendall eq. 7, Gaussian likelihood):
      objective = Σ_i ½ exp(−s_i) L_i + ½ s_i      (optimal s_i = log L_i)
    simple (the form most code uses for every task):
      objective = Σ_i exp(−s_i) L_i + s_i          (optimal s_i = log L_i)

  Args:
    convention: ``"classification"`` (default; the paper's form for classification
      tasks), ``"regression"`` or ``"simple"``, applied to every task.
    init: the initial s_i (0: σ² = 1).

  Returns:
    A :class:`Weighting`; the effective weight of task i is ``c exp(−s_i)``.

  Example:
    >>> import jax.numpy as jnp
    >>> w = uncertainty_weighting("simple")
    >>> learnable, state = w.init(("a", "b"))
    >>> float(w.objective(jnp.array([1.0, 2.0]), learnable, state))  # s = 0
    3.0

  Reference: A. Kendall, Y. Gal, R. Cipolla, "Multi-Task Learning Using Uncertainty
  to Weigh Losses for Scene Geometry and Semantics", CVPR 2018.
  """
  if convention not in _UNCERTAINTY_FORMS:
    raise ValueError(f"uncertainty_weighting: convention must be one of "
                     f"{list(_UNCERTAINTY_FORMS)}, got {convention!r}")
  if not np.isfinite(init):
    raise ValueError(f"uncertainty_weighting: init must be finite, got {init!r}")
  scale, reg = _UNCERTAINTY_FORMS[convention]

  def init_fn(tasks):
    tasks = _check_tasks("uncertainty_weighting", tasks)
    return {"log_variance": jnp.full((len(tasks),), init, jnp.float32)}, {}

  def objective(losses, learnable, state):
    del state
    s = learnable["log_variance"]
    return jnp.sum(scale * jnp.exp(-s) * losses + reg * s)

  return Weighting(f"uncertainty({convention})", init_fn, objective, _keep_state)


def _path_names(path) -> tuple:
  names = []
  for key in path:
    if isinstance(key, jax.tree_util.DictKey):
      names.append(key.key)
    elif isinstance(key, jax.tree_util.SequenceKey):
      names.append(key.idx)
    elif isinstance(key, jax.tree_util.GetAttrKey):
      if key.name != "value":
        names.append(key.name)
    else:
      names.append(str(key))
  return tuple(names)


def select_leaves(tree: Any, prefix: Sequence[str | int], where: str) -> list[jax.Array]:
  """The leaves of `tree` whose path (keys, indices; NNX ``.value`` dropped) starts with
  `prefix`; a ValueError lists the paths when none does."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  prefix = tuple(prefix)
  chosen = [leaf for path, leaf in flat if _path_names(path)[: len(prefix)] == prefix]
  if not chosen:
    known = ", ".join("/".join(map(str, _path_names(p))) for p, _ in flat)
    raise ValueError(f"{where}: no parameter under the path {'/'.join(map(str, prefix))!r}; "
                     f"the parameters are: {known}")
  return chosen


class GradNormState(NamedTuple):
  """State of :func:`gradnorm`: weights w (T,), L_i(0) (T,), steps seen, the weights' optimizer."""

  weights: jax.Array
  initial_losses: jax.Array
  count: jax.Array
  opt_state: optax.OptState


def gradnorm(
    alpha: float = 1.5,
    learning_rate: float = 0.025,
    shared_path: Sequence[str | int] = ("trunk",),
    min_weight: float = 1e-3,
) -> Weighting:
  """GradNorm (Chen et al. 2018): weights that balance the tasks' training rates.

  With ``G_i = ‖∇_W w_i L_i‖`` (W: the shared weights), ``Ḡ = mean_i G_i``,
  ``L̃_i = L_i(t)/L_i(0)`` and ``r_i = L̃_i / mean_j L̃_j`` (relative inverse training
  rate), the weights take one step of Adam on

    L_grad = Σ_i |G_i − [Ḡ r_i^α]|      ([·] held constant, as in the paper)

  after the network's step on ``Σ_i w_i L_i``; then ``w ← max(w, min_weight)`` and
  ``w ← T w / Σ_j w_j`` (the weights sum to the number of tasks T).

  Args:
    alpha: ≥ 0, the asymmetry: 0 equalizes the gradient norms, larger values pull
      harder toward the slower tasks (the paper uses 0.12 … 3; 1.5 for NYUv2).
    learning_rate: Adam's step for the weights (the paper trains them with the
      network's optimizer; 0.025 is a common choice).
    shared_path: the shared weights W, as a path prefix into the model's
      parameters, e.g. ``("trunk", "layers", 0, "head", "kernel")`` for the paper's
      choice, the last shared layer. The default, the whole trunk, costs nothing
      extra here (the step computes every per-task gradient anyway).
    min_weight: the floor applied before renormalization (keeps weights positive).

  Returns:
    A :class:`Weighting` (its weights live in ``model_state["weighting"]``).

  Example:
    >>> w = gradnorm(alpha=1.5)
    >>> _, state = w.init(("a", "b"))
    >>> state.weights.tolist()
    [1.0, 1.0]

  Reference: Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich, "GradNorm: Gradient
  Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
  """
  if not isinstance(alpha, (int, float)) or not np.isfinite(alpha) or alpha < 0:
    raise ValueError(f"gradnorm: alpha must be a finite number ≥ 0, got {alpha!r}")
  if not learning_rate > 0:
    raise ValueError(f"gradnorm: learning_rate must be > 0, got {learning_rate!r}")
  if not 0 < min_weight < 1:
    raise ValueError(f"gradnorm: min_weight must be in (0, 1), got {min_weight!r}")
  if isinstance(shared_path, str):
    shared_path = (shared_path,)
  shared_path = tuple(shared_path)
  weight_tx = optax.adam(learning_rate)

  def init(tasks):
    tasks = _check_tasks("gradnorm", tasks)
    w = jnp.ones((len(tasks),), jnp.float32)
    return {}, GradNormState(weights=w, initial_losses=jnp.ones_like(w),
                             count=jnp.zeros([], jnp.int32), opt_state=weight_tx.init(w))

  def objective(losses, learnable, state):
    del learnable
    return jnp.sum(jax.lax.stop_gradient(state.weights) * losses)

  def update(state, losses, task_grads):
    leaves = select_leaves(task_grads, shared_path, "gradnorm shared_path")
    norms = jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in leaves))
    initial = jnp.where(state.count == 0, losses, state.initial_losses)
    ratio = losses / initial
    r = ratio / jnp.mean(ratio)

    def grad_loss(w):
      g = w * norms
      target = jax.lax.stop_gradient(jnp.mean(g) * r**alpha)
      return jnp.sum(jnp.abs(g - target))

    grads = jax.grad(grad_loss)(state.weights)
    updates, opt_state = weight_tx.update(grads, state.opt_state, state.weights)
    w = jnp.maximum(state.weights + updates, min_weight)
    w = w * (w.shape[0] / jnp.sum(w))
    return GradNormState(weights=w, initial_losses=initial, count=state.count + 1,
                         opt_state=opt_state)

  return Weighting(f"gradnorm(alpha={alpha:g})", init, objective, update,
                   needs_task_gradients=True)


# ------------------------------------------------------------------------ gradient surgery


def task_gram(task_grads: Any) -> jax.Array:
  """The (T, T) Gram matrix ``G_ij = g_i · g_j`` of per-task gradients, summed over the
  leaves of a pytree whose leaves carry a leading task axis (float32)."""
  leaves = jax.tree.leaves(task_grads)
  if not leaves:
    raise ValueError("task_grads has no arrays")
  num = leaves[0].shape[0] if leaves[0].ndim else None
  if num is None or any(leaf.ndim == 0 or leaf.shape[0] != num for leaf in leaves):
    raise ValueError("every leaf of task_grads needs the same leading task axis; got "
                     f"shapes {[tuple(leaf.shape) for leaf in leaves]}")
  flat = [leaf.reshape(num, -1).astype(jnp.float32) for leaf in leaves]
  return sum(jnp.matmul(f, f.T, precision=jax.lax.Precision.HIGHEST) for f in flat)


def pcgrad_coefficients(gram: jax.Array, key: jax.Array) -> jax.Array:
  """PCGrad in the span of the task gradients: ``C`` (T, T) with ``g_i^PC = Σ_j C_ij g_j``.

  Every projection subtracts a multiple of an original g_j, so g_i^PC stays in their span
  and all of Algorithm 1's dot products follow from the Gram matrix:
  ``g_i^PC · g_j = (C G)_ij``. Task i's order is the argsort of row i of
  ``uniform(key, (T, T))``.
  """
  num = gram.shape[0]
  eye = jnp.eye(num, dtype=jnp.float32)

  def one(i, order):
    c = eye[i]
    for k in range(num):  # T is small and static: unrolled
      j = order[k]
      dot = jnp.dot(c, gram[:, j])
      gjj = gram[j, j]
      conflict = (dot < 0) & (j != i)
      c = c - jnp.where(conflict, dot / jnp.where(gjj > 0, gjj, 1.0), 0.0) * eye[j]
    return c

  orders = jnp.argsort(jax.random.uniform(key, (num, num)), axis=1)
  return jax.vmap(one)(jnp.arange(num), orders)


def _combine(coefficients: jax.Array, task_grads: Any) -> Any:
  return jax.tree.map(
      lambda g: jnp.tensordot(coefficients, g.astype(jnp.float32), axes=(-1, 0),
                              precision=jax.lax.Precision.HIGHEST).astype(g.dtype), task_grads)


def pcgrad_project(task_grads: Any, key: jax.Array) -> Any:
  """PCGrad's projected per-task gradients (Yu et al. 2020, Algorithm 1).

  For each task i, ``g_i^PC ← g_i``; then for each j ≠ i in a random order: if
  ``g_i^PC · g_j < 0``, ``g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j`` (projection
  onto the normal plane of the *original* g_j). Dot products are over all leaves. The
  loop runs on T × T coefficients (:func:`pcgrad_coefficients`), then one contraction per
  leaf forms the gradients.

  Args:
    task_grads: a pytree whose leaves carry a leading task axis (T, ...).
    key: a PRNG key for the orders (task i's order is the argsort of row i of
      ``uniform(key, (T, T))``).

  Returns:
    The projected gradients, same structure as `task_grads`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> g = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
    >>> pcgrad_project(g, jax.random.key(0)).tolist()
    [[0.5, 0.5], [0.0, 1.0]]

  Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient
  Surgery for Multi-Task Learning", NeurIPS 2020.
  """
  return _combine(pcgrad_coefficients(task_gram(task_grads), key), task_grads)


def pcgrad(task_grads: Any, key: jax.Array, reduction: str = "sum") -> Any:
  """PCGrad (Yu et al. 2020): project conflicting per-task gradients, then combine them.

  ``Δθ = Σ_i g_i^PC`` (the paper; ``reduction="mean"`` divides by T, as some
  implementations do). See :func:`pcgrad_project` for the projection. Pass it as
  ``surgery=pcgrad`` to :func:`make_multitask_step` or :func:`fit_multitask`; the
  gradients it receives are the weighted ones, ``w_i ∇L_i``.

  Args:
    task_grads: a pytree whose leaves carry a leading task axis (T, ...).
    key: a PRNG key for the random orders.
    reduction: ``"sum"`` (default, the paper) or ``"mean"``.

  Returns:
    One gradient pytree (the task axis reduced).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> pcgrad(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), jax.random.key(0)).tolist()
    [0.5, 1.5]
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"pcgrad: reduction must be 'sum' or 'mean', got {reduction!r}")
  coefficients = pcgrad_coefficients(task_gram(task_grads), key)
  total = jnp.sum(coefficients, axis=0)  # Σ_i g_i^PC = Σ_j (Σ_i C_ij) g_j
  if reduction == "mean":
    total = total / coefficients.shape[0]
  return _combine(total, task_grads)


# ---------------------------------------------------------------------------- the step


def task_cosines(task_grads: Any) -> jax.Array:
  """The (T, T) cosine similarities of per-task gradients (leaves with a leading task axis);
  0 where a gradient is zero."""
  gram = task_gram(task_grads)
  norms = jnp.sqrt(jnp.diagonal(gram))
  outer = norms[:, None] * norms[None, :]
  return jnp.where(outer > 0, gram / jnp.where(outer > 0, outer, 1.0), 0.0)


def _resolve_losses(tasks: tuple[str, ...], losses: Any) -> dict[str, steps_lib.LossFn]:
  if isinstance(losses, Mapping):
    unknown, missing = set(losses) - set(tasks), set(tasks) - set(losses)
    if unknown or missing:
      raise ValueError(f"losses name tasks {sorted(losses)}, the model's tasks are {list(tasks)}"
                       f" (unknown: {sorted(unknown)}, missing: {sorted(missing)})")
    return {t: steps_lib.get_loss(losses[t]) for t in tasks}
  return {t: steps_lib.get_loss(losses) for t in tasks}


def init_multitask_state(
    model: MultiTaskModel, tx: optax.GradientTransformation, weighting: Weighting
) -> tuple[nnx.GraphDef, nnx.GraphDef, TrainState]:
  """(train graphdef, eval graphdef, initial TrainState) for :func:`make_multitask_step`."""
  if not isinstance(model, MultiTaskModel):
    raise TypeError(f"expected a MultiTaskModel, got {type(model).__name__}")
  if not isinstance(weighting, Weighting):
    raise TypeError(f"weighting must be a Weighting (fixed(), uncertainty_weighting(), "
                    f"gradnorm()), got {type(weighting).__name__}")
  train_graphdef, eval_graphdef, params, rest = split_model(model)
  learnable, weighting_state = weighting.init(model.tasks)
  params = {"model": params, "weighting": learnable}
  state = TrainState(step=jnp.zeros([], jnp.int32), params=params,
                     model_state={"model": rest, "weighting": weighting_state},
                     opt_state=tx.init(params), skipped=jnp.zeros([], jnp.int32))
  return train_graphdef, eval_graphdef, state


def make_multitask_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    tasks: Sequence[str],
    losses: Any = "cross_entropy",
    weighting: Weighting | None = None,
    *,
    surgery: Surgery | None = None,
    key: jax.Array | None = None,
    skip_nonfinite: bool = True,
) -> Callable[[TrainState, jax.Array, Mapping[str, jax.Array]], tuple[TrainState, dict]]:
  """Returns ``step(state, x, {task: y}) -> (state, logs)``, pure and jit-able.

  With per-task losses ``L_i`` and the weighting's objective ``f(L, φ)``, the model
  gradient is ``Σ_i w_i ∇L_i`` with ``w_i = ∂f/∂L_i``; with a `surgery` (e.g.
  :func:`pcgrad`) it is ``surgery({w_i ∇L_i}_i, key_t)`` instead, with
  ``key_t = fold_in(key, step)``. The per-task gradients come from one
  ``jax.jacrev`` of the loss vector (one forward pass, T backward passes); without
  a surgery or a weighting that reads them, one ``grad`` of ``f`` is taken instead.
  The learnable weighting parameters φ get ``∇_φ f`` and are updated by `tx` with
  the model; then ``weighting.update`` runs. A step with a non-finite loss or
  gradient is skipped (state unchanged, ``skipped`` incremented) when
  `skip_nonfinite`.

  Args:
    graphdef: the model's train graph definition (from :func:`init_multitask_state`).
    tx: any optax transformation.
    tasks: the model's task names, in order.
    losses: one loss (name or function) for all tasks, or ``{task: loss}``.
    weighting: default ``fixed()`` (the plain sum).
    surgery: ``surgery(task_grads, key) -> grads`` over per-task gradient pytrees.
    key: PRNG key of the surgery (default ``key(0)``).
    skip_nonfinite: skip steps with non-finite loss or gradients.

  Returns:
    The step; `logs` has ``loss`` (the objective), ``task_losses`` (T,),
    ``weights`` (T,), the effective w_i, and, when per-task gradients are computed,
    ``task_cosine`` (T, T), the cosine similarities of the unweighted ∇L_i.
  """
  tasks = _check_tasks("make_multitask_step", tasks)
  loss_fns = _resolve_losses(tasks, losses)
  weighting = fixed() if weighting is None else weighting
  if surgery is not None and not callable(surgery):
    raise TypeError(f"surgery must be callable (task_grads, key) -> grads, got {surgery!r}")
  key = jax.random.key(0) if key is None else key
  per_task = surgery is not None or weighting.needs_task_gradients

  def task_losses(model_params, model_state, x, y):
    model = nnx.merge(graphdef, model_params, model_state, copy=True)
    outputs = model(x)
    if set(outputs) != set(tasks):
      raise ValueError(f"the model returns tasks {sorted(outputs)}, expected {list(tasks)}")
    values = jnp.stack([loss_fns[t](outputs[t], y[t]) for t in tasks])
    _, _, new_state = nnx.split(model, nnx.Param, ...)
    return values, new_state

  def apply(state, grads, model_state):
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                      model_state=model_state, opt_state=opt_state, skipped=state.skipped)

  def skip(state, grads, model_state):
    del grads, model_state
    return state._replace(step=state.step + 1, skipped=state.skipped + 1)

  def step(state, x, y):
    if set(y) != set(tasks):
      raise ValueError(f"targets name tasks {sorted(y)}, expected {list(tasks)}")
    params, rest = state.params, state.model_state
    wstate = rest["weighting"]
    if per_task:
      def vector(p):
        values, new_state = task_losses(p, rest["model"], x, y)
        return values, (values, new_state)

      jac, (values, new_model_state) = jax.jacrev(vector, has_aux=True)(params["model"])
      weights = jax.grad(weighting.objective)(values, params["weighting"], wstate)
      weighted = jax.tree.map(
          lambda g: weights.reshape(-1, *([1] * (g.ndim - 1))).astype(g.dtype) * g, jac)
      if surgery is None:
        model_grads = jax.tree.map(lambda g: jnp.sum(g, axis=0), weighted)
      else:
        model_grads = surgery(weighted, jax.random.fold_in(key, state.step))
      loss, weighting_grads = jax.value_and_grad(weighting.objective, argnums=1)(
          values, params["weighting"], wstate)
    else:
      def total(p):
        values, new_state = task_losses(p["model"], rest["model"], x, y)
        return weighting.objective(values, p["weighting"], wstate), (values, new_state)

      (loss, (values, new_model_state)), grads = jax.value_and_grad(total, has_aux=True)(params)
      model_grads, weighting_grads = grads["model"], grads["weighting"]
      weights = jax.grad(weighting.objective)(values, params["weighting"], wstate)
      jac = None
    grads = {"model": model_grads, "weighting": weighting_grads}
    new_rest = {"model": new_model_state, "weighting": weighting.update(wstate, values, jac)}
    logs = {"loss": loss, "task_losses": values, "weights": weights}
    if per_task:
      logs["task_cosine"] = task_cosines(jac)
    if not skip_nonfinite:
      return apply(state, grads, new_rest), logs
    finite = jnp.isfinite(loss) & steps_lib.all_finite(grads) & steps_lib.all_finite(values)
    return jax.lax.cond(finite, apply, skip, state, grads, new_rest), logs

  return step


def make_multitask_epoch(
    step: Callable[..., tuple[TrainState, dict]], batch_size: int
) -> Callable[[TrainState, jax.Array, Mapping[str, jax.Array], jax.Array], tuple[TrainState, dict]]:
  """``epoch(state, x, {task: y}, key) -> (state, logs per step)``: one ``lax.scan``, the batch
  order from ``optlab.train.steps.epoch_batch_indices`` (as ``make_scan_epoch``, whose
  targets must be one array)."""

  def epoch(state, x, y, key):
    indices = steps_lib.epoch_batch_indices(key, x.shape[0], batch_size)

    def body(state, batch):
      return step(state, jnp.take(x, batch, axis=0),
                  jax.tree.map(lambda a: jnp.take(a, batch, axis=0), y))

    return jax.lax.scan(body, state, indices)

  return epoch


def make_multitask_evaluate(
    graphdef: nnx.GraphDef,
    tasks: Sequence[str],
    losses: Any = "cross_entropy",
    metrics: Sequence[str] = ("accuracy",),
    batch_size: int = 1024,
) -> Callable[..., dict[str, jax.Array]]:
  """``evaluate(model_params, model_rest, x, {task: y}) -> {"<task>_loss": …, "<task>_<metric>":
  …}`` over x in chunks of `batch_size` (jit-able)."""
  from optlab import metrics as metrics_lib

  tasks = _check_tasks("make_multitask_evaluate", tasks)
  loss_fns = _resolve_losses(tasks, losses)
  metric_fns = {m: metrics_lib.get(m) for m in metrics}

  def evaluate(params, rest, x, y):
    n = x.shape[0]
    chunks = -(-n // batch_size)
    pad = chunks * batch_size - n
    padded = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    model = nnx.merge(graphdef, params, rest)
    if chunks == 1:
      outputs = jax.tree.map(lambda o: o[:n], model(padded))
    else:
      outputs = jax.lax.map(model, padded.reshape(chunks, batch_size, *x.shape[1:]))
      outputs = jax.tree.map(lambda o: o.reshape(chunks * batch_size, *o.shape[2:])[:n], outputs)
    logs = {}
    for t in tasks:
      logs[f"{t}_loss"] = loss_fns[t](outputs[t], y[t])
      for m, fn in metric_fns.items():
        logs[f"{t}_{m}"] = fn(outputs[t], y[t])
    return logs

  return evaluate


def _targets(data: Any, tasks: tuple[str, ...], name: str) -> tuple[np.ndarray, dict] | None:
  if data is None:
    return None
  if not (isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], Mapping)):
    raise TypeError(f"fit_multitask: {name} must be (x, {{task: y}}), got {type(data).__name__}")
  x, y = np.asarray(data[0]), {t: np.asarray(v) for t, v in data[1].items()}
  if set(y) != set(tasks):
    raise ValueError(f"fit_multitask: {name} names tasks {sorted(y)}, the model's tasks are "
                     f"{list(tasks)}")
  for t, v in y.items():
    if v.shape[0] != x.shape[0]:
      raise ValueError(f"fit_multitask: {name} has {x.shape[0]} inputs but {v.shape[0]} "
                       f"targets for task {t!r}")
  return x, y


def fit_multitask(
    model: MultiTaskModel,
    tx: optax.GradientTransformation,
    train: tuple[Any, Mapping[str, Any]],
    *,
    losses: Any = "cross_entropy",
    weighting: Weighting | None = None,
    surgery: Surgery | None = None,
    validation: tuple[Any, Mapping[str, Any]] | None = None,
    test: tuple[Any, Mapping[str, Any]] | None = None,
    metrics: Sequence[str] = ("accuracy",),
    epochs: int = 10,
    batch_size: int = 64,
    eval_batch_size: int = 1024,
    seed: int = 0,
    skip_nonfinite: bool = True,
) -> FitResult:
  """Trains a :class:`MultiTaskModel` with `tx`, a weighting and an optional surgery.

  Each epoch is one compiled ``lax.scan`` (:func:`make_multitask_epoch`) over
  :func:`make_multitask_step`; the batch order of epoch e comes from
  ``fold_in(key(seed), e)`` as in ``optlab.train.fit``, the surgery's key from
  ``fold_in(key(seed + 1), step)``.

  Args:
    model: the model; trained in place (returned in eval mode).
    tx: any optax transformation; it also trains the learnable weighting parameters
      (``params["weighting"]``: mask them with ``optax.masked`` to keep, e.g., weight
      decay off Kendall's log σ²).
    train: ``(x, {task: y})``.
    losses: one loss name/function for every task, or ``{task: loss}``.
    weighting: :func:`fixed` (default, plain sum), :func:`uncertainty_weighting`,
      :func:`gradnorm`.
    surgery: e.g. :func:`pcgrad`.
    validation, test: ``(x, {task: y})``, evaluated after every epoch.
    metrics: ``optlab.metrics`` names, per task.
    epochs, batch_size, eval_batch_size, seed, skip_nonfinite: as in ``optlab.train.fit``.

  Returns:
    An ``optlab.train.FitResult``; its history has, per epoch, ``train_loss`` (the
    objective), ``train_<task>_loss``, ``weight_<task>`` (the effective weight at the
    epoch's last step) and ``val_``/``test_<task>_<loss|metric>``.

  Example:
    >>> import numpy as np, optax
    >>> from flax import nnx
    >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> y = {"a": (x[:, 0] > 0).astype(np.int32), "b": (x[:, 1] > 0).astype(np.int32)}
    >>> model = MultiTaskModel(nnx.Linear(3, 8, rngs=nnx.Rngs(0)),
    ...                        {t: nnx.Linear(8, 2, rngs=nnx.Rngs(1)) for t in y})
    >>> result = fit_multitask(model, optax.adam(1e-2), (x, y), surgery=pcgrad, epochs=2,
    ...                        batch_size=16)
    >>> sorted(k for k in result.history[-1] if k.startswith("weight_"))
    ['weight_a', 'weight_b']
  """
  if epochs < 1 or batch_size < 1:
    raise ValueError(f"fit_multitask: epochs and batch_size must be ≥ 1, got {epochs}, "
                     f"{batch_size}")
  weighting = fixed() if weighting is None else weighting
  train_graphdef, eval_graphdef, state = init_multitask_state(model, tx, weighting)
  tasks = model.tasks
  x, y = _targets(train, tasks, "train")
  if batch_size > x.shape[0]:
    raise ValueError(f"fit_multitask: batch_size {batch_size} is larger than the {x.shape[0]} "
                     "training examples")
  eval_sets = {p: d for p, d in (("val", _targets(validation, tasks, "validation")),
                                 ("test", _targets(test, tasks, "test"))) if d is not None}
  step = make_multitask_step(train_graphdef, tx, tasks, losses, weighting, surgery=surgery,
                             key=jax.random.key(seed + 1), skip_nonfinite=skip_nonfinite)
  epoch_fn = jax.jit(make_multitask_epoch(step, batch_size), donate_argnums=(0,))
  evaluate = jax.jit(make_multitask_evaluate(eval_graphdef, tasks, losses, metrics,
                                             eval_batch_size))
  base_key = jax.random.key(seed)
  start = time.perf_counter()
  epoch_fn = epoch_fn.lower(state, x, y, base_key).compile()
  compile_seconds = time.perf_counter() - start
  history, train_seconds = [], 0.0
  for epoch in range(epochs):
    start = time.perf_counter()
    state, logs = epoch_fn(state, x, y, jax.random.fold_in(base_key, epoch))
    task_losses, weights = np.asarray(logs["task_losses"]), np.asarray(logs["weights"])
    record = {"epoch": epoch, "step": int(state.step), "skipped_steps": int(state.skipped),
              "train_loss": float(np.mean(np.asarray(logs["loss"])))}
    for i, t in enumerate(tasks):
      record[f"train_{t}_loss"] = float(task_losses[:, i].mean())
      record[f"weight_{t}"] = float(weights[-1, i])
    for prefix, (ex, ey) in eval_sets.items():
      values = evaluate(state.params["model"], state.model_state["model"], ex, ey)
      record.update({f"{prefix}_{k}": float(v) for k, v in values.items()})
    history.append(record)
    train_seconds += time.perf_counter() - start
  nnx.update(model, state.params["model"], state.model_state["model"])
  model.eval()
  return FitResult(model=model, state=state, history=history, status="completed",
                   message=f"trained for {epochs} epochs", skipped_steps=int(state.skipped),
                   best_epoch=None, compile_seconds=compile_seconds, train_seconds=train_seconds)
