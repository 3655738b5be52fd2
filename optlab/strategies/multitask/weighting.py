"""Task weightings: fixed, uncertainty (Kendall et al. 2018) and GradNorm (Chen et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
