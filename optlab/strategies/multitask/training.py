"""The multi-task train step, scanned epoch, evaluation and fit loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab.strategies.multitask.model import MultiTaskModel
from optlab.strategies.multitask.surgery import Surgery, task_gram
from optlab.strategies.multitask.weighting import (
  Weighting,
  _check_tasks,
  fixed,
)
from optlab.train import steps as steps_lib
from optlab.train.loop import FitResult
from optlab.train.state import TrainState, split_model

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
    finite = None
    if skip_nonfinite:
      finite = jnp.isfinite(loss) & steps_lib.all_finite(grads) & steps_lib.all_finite(values)
    return steps_lib.apply_gradients(tx, state, grads, new_rest, finite=finite), logs

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
    >>> from optlab.strategies.multitask import pcgrad
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
