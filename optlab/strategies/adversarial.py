"""Adversarial attacks and adversarial training: FGSM, PGD, Madry et al. and TRADES.

The attacks are pure JAX functions of a classifier ``logits_fn(x) -> logits`` (any
callable: an NNX model, or ``lambda x: nnx.merge(graphdef, params, state)(x)``), so
they run under ``jit`` and ``vmap``. Adversarial training is a train step compatible
with :class:`optlab.train.TrainState` and :func:`optlab.train.steps.make_scan_epoch`
(:func:`make_adversarial_train_step`), and :func:`fit_adversarial` is a thin loop
over it built from ``optlab.train``'s pieces. The attacks live in
:mod:`optlab.strategies.attacks` and are re-exported here.

Conventions: perturbations are per example, measured over all non-batch axes; the
L∞ ball is enforced by clipping, the L2 ball by rescaling; with ``bounds=(lo, hi)``
the adversarial input is clipped to the data range after every step. The attack
maximizes the summed per-example loss (its gradient is per example, so the batch
size does not change the step).

References:
  Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples",
  ICLR 2015 (FGSM). Madry et al., "Towards Deep Learning Models Resistant to
  Adversarial Attacks", ICLR 2018 (PGD, adversarial training). Zhang et al.,
  "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019
  (TRADES).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab.metrics.losses import integer_label_cross_entropy
from optlab.strategies.attacks import (  # noqa: F401  (re-exported with the training)
  NORMS,
  Attack,
  LogitsFn,
  _check_attack,
  _check_nonnegative,
  _check_positive,
  _per_example_loss,
  _random_start,
  fgsm,
  kl_divergence,
  make_attack,
  pgd,
  project,
  robust_accuracy,
)
from optlab.train import steps as steps_lib
from optlab.train.state import TrainState

METHODS = ("madry", "trades")


def madry_loss(
    logits_fn: LogitsFn, x: jax.Array, y: jax.Array, key: jax.Array | None,
    *, epsilon: float | jax.Array, step_size: float | jax.Array | None = None, steps: int = 10,
    norm: str = "linf", random_start: bool = True, bounds: tuple[float, float] | None = None,
    attack_logits_fn: LogitsFn | None = None,
) -> jax.Array:
  """Adversarial training's objective: the cross-entropy at the PGD example.

  ``L(θ) = mean_i CE(f_θ(x'_i), y_i)`` with ``x' = PGD(f, x, y)`` held fixed (no gradient
  through the attack: Danskin's theorem, Madry et al. 2018).

  Args:
    logits_fn: the classifier whose parameters are trained.
    x, y: a batch and its integer labels.
    key: PRNG key of the PGD random start.
    epsilon, step_size, steps, norm, random_start, bounds: the PGD attack (:func:`pgd`).
    attack_logits_fn: the classifier the attack runs on (default `logits_fn`); e.g. the
      model in evaluation mode or with stopped gradients.

  Returns:
    A scalar loss.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([[1.0, -1.0], [2.0, 0.0]])
    >>> loss = madry_loss(lambda x: x @ w, jnp.zeros((1, 2)), jnp.array([0]),
    ...                   jax.random.key(0), epsilon=0.1, steps=3)

  Reference: Madry et al., ICLR 2018.
  """
  x_adv = pgd(attack_logits_fn or logits_fn, x, y, key, epsilon=epsilon, step_size=step_size,
              steps=steps, norm=norm, random_start=random_start, bounds=bounds)
  return steps_lib.cross_entropy(logits_fn(x_adv), y)


def trades_loss(
    logits_fn: LogitsFn, x: jax.Array, y: jax.Array, key: jax.Array | None,
    *, beta: float | jax.Array, epsilon: float | jax.Array,
    step_size: float | jax.Array | None = None, steps: int = 10, norm: str = "linf",
    random_start: bool = True, bounds: tuple[float, float] | None = None,
    attack_logits_fn: LogitsFn | None = None, x_adv: jax.Array | None = None,
) -> jax.Array:
  """TRADES: natural cross-entropy plus β times the KL between clean and adversarial outputs.

  ``L(θ) = mean_i [CE(f(x_i), y_i) + β · KL(softmax f(x_i) ‖ softmax f(x'_i))]``, where
  ``x' = argmax_{x' ∈ B(x, ε)} KL(softmax f(x) ‖ softmax f(x'))`` is found by PGD on the KL
  (clean prediction held fixed) and then held fixed; the gradient flows through both
  f(x) and f(x'), as in Zhang et al.'s code. β = 0 is standard training; larger β
  trades clean accuracy for robustness (the paper uses β = 1…6). The paper's code
  starts the attack at ``x + 0.001·N(0, I)``; here `random_start` draws uniformly in
  the ball like :func:`pgd`.

  Args:
    logits_fn: the classifier whose parameters are trained.
    x, y: a batch and its integer labels.
    key: PRNG key of the attack's random start.
    beta: weight β ≥ 0 of the robust (KL) term.
    epsilon, step_size, steps, norm, random_start, bounds: the KL attack (:func:`pgd`).
    attack_logits_fn: the classifier the attack runs on (default `logits_fn`).
    x_adv: use this adversarial batch instead of attacking (e.g. to check the formula).

  Returns:
    A scalar loss.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([[1.0, -1.0], [2.0, 0.0]])
    >>> loss = trades_loss(lambda x: x @ w, jnp.zeros((1, 2)), jnp.array([0]),
    ...                    jax.random.key(0), beta=6.0, epsilon=0.1, steps=3)

  Reference: Zhang et al., "Theoretically Principled Trade-off between Robustness and
  Accuracy", ICML 2019.
  """
  _check_nonnegative("trades_loss", "beta", beta)
  clean = logits_fn(x)
  if x_adv is None:
    x_adv = pgd(attack_logits_fn or logits_fn, x, jax.lax.stop_gradient(clean), key,
                epsilon=epsilon, step_size=step_size, steps=steps, norm=norm,
                random_start=random_start, bounds=bounds, loss="kl")
  natural = jnp.mean(integer_label_cross_entropy(clean, y))
  robust = jnp.mean(kl_divergence(logits_fn(x_adv), clean))
  return natural + beta * robust


def make_adversarial_train_step(
    graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
    *, epsilon: float, method: str = "madry", step_size: float | None = None, steps: int = 10,
    norm: str = "linf", random_start: bool = True, bounds: tuple[float, float] | None = None,
    beta: float = 6.0, key: jax.Array | int = 0, attack_graphdef: nnx.GraphDef | None = None,
    l2: float = 0.0, skip_nonfinite: bool = True,
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
  """Returns ``step(state, x, y) -> (state, loss)`` of adversarial training, pure and jit-able.

  The same contract as :func:`optlab.train.steps.make_train_step` (so it feeds
  :func:`optlab.train.steps.make_scan_epoch`), minimizing :func:`madry_loss` or
  :func:`trades_loss` (+ ``l2 · ½‖θ‖²``). The attack of step t draws its random start
  from ``fold_in(key, state.step)`` and runs on the current parameters with their
  gradients stopped (on `attack_graphdef`, e.g. the model in eval mode, if given).

  Args:
    graphdef: the model's graph definition in training mode (``split_model(model)[0]``).
    tx: the optax transformation.
    epsilon, step_size, steps, norm, random_start, bounds: the PGD attack (:func:`pgd`).
    method: ``"madry"`` (CE at the PGD example) or ``"trades"``.
    beta: TRADES' β (ignored by ``"madry"``).
    key: PRNG key (or int seed) of the attacks' random starts.
    attack_graphdef: graph definition the attack runs on (default `graphdef`).
    l2: coefficient of ½‖θ‖² added to the loss.
    skip_nonfinite: leave the state unchanged (and count) when loss or gradients are
      not finite.

  Returns:
    The step function.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from flax import nnx
    >>> from optlab.train import TrainState, split_model
    >>> graphdef, _, params, rest = split_model(nnx.Linear(4, 3, rngs=nnx.Rngs(0)))
    >>> tx = optax.sgd(0.1)
    >>> state = TrainState(jnp.zeros([], jnp.int32), params, rest, tx.init(params),
    ...                    jnp.zeros([], jnp.int32))
    >>> step = make_adversarial_train_step(graphdef, tx, epsilon=0.1, steps=1)
    >>> state, loss = step(state, jnp.ones((8, 4)), jnp.zeros((8,), jnp.int32))
    >>> int(state.step)
    1

  Reference: Madry et al., ICLR 2018; Zhang et al., ICML 2019.
  """
  if method not in METHODS:
    raise ValueError(f"make_adversarial_train_step: unknown method {method!r}; accepted: "
                     f"{', '.join(map(repr, METHODS))}")
  _check_attack("make_adversarial_train_step", epsilon, step_size, steps, norm, bounds)
  _check_nonnegative("make_adversarial_train_step", "beta", beta)
  base_key = jax.random.key(key) if isinstance(key, (int, np.integer)) else key
  attack_graphdef = graphdef if attack_graphdef is None else attack_graphdef
  attack = {"epsilon": epsilon, "step_size": step_size, "steps": steps, "norm": norm,
            "random_start": random_start, "bounds": bounds}

  def objective(params, model_state, x, y, step_key):
    frozen = jax.lax.stop_gradient(params)

    def attack_logits(xx):
      return nnx.merge(attack_graphdef, frozen, model_state, copy=True)(xx)

    model = nnx.merge(graphdef, params, model_state, copy=True)
    if method == "madry":
      loss = madry_loss(model, x, y, step_key, attack_logits_fn=attack_logits, **attack)
    else:
      loss = trades_loss(model, x, y, step_key, beta=beta, attack_logits_fn=attack_logits,
                         **attack)
    if l2:
      loss = loss + l2 * steps_lib.l2_penalty(params)
    _, _, new_model_state = nnx.split(model, nnx.Param, ...)
    return loss, new_model_state

  def step(state: TrainState, x: jax.Array, y: jax.Array) -> tuple[TrainState, jax.Array]:
    step_key = jax.random.fold_in(base_key, state.step)
    (loss, model_state), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params, state.model_state, x, y, step_key)
    finite = (jnp.isfinite(loss) & steps_lib.all_finite(grads)) if skip_nonfinite else None
    return steps_lib.apply_gradients(tx, state, grads, model_state, finite=finite), loss

  return step


def fit_adversarial(
    model: nnx.Module, tx: optax.GradientTransformation, train: Any,
    *, epsilon: float, method: str = "madry", step_size: float | None = None, steps: int = 10,
    norm: str = "linf", random_start: bool = True, bounds: tuple[float, float] | None = None,
    beta: float = 6.0, validation: Any = None, epochs: int = 10, batch_size: int = 64,
    eval_batch_size: int = 1024, seed: int = 0, l2: float = 0.0,
):
  """Adversarially trains `model` (Madry or TRADES), one compiled ``lax.scan`` per epoch.

  A thin loop over ``optlab.train``'s pieces (``split_model``, ``TrainState``,
  ``make_scan_epoch``, ``make_evaluate``) and :func:`make_adversarial_train_step`; epoch
  e's batch order comes from ``fold_in(key(seed), e)`` as in :func:`optlab.train.fit`.
  Each epoch scores the validation set clean (``val_loss``, ``val_accuracy``) and under
  the training attack (``val_robust_accuracy``). No callbacks or checkpoints (``fit``
  would need a model-aware objective hook).

  Args:
    model: a Flax NNX classifier (updated in place, left in eval mode).
    tx: the optax transformation.
    train: ``(x, y)`` arrays or an ``optlab.data.Dataset``.
    epsilon, method, step_size, steps, norm, random_start, bounds, beta: as in
      :func:`make_adversarial_train_step`.
    validation: ``(x, y)`` or a Dataset, evaluated every epoch.
    epochs, batch_size, eval_batch_size, seed, l2: as in :func:`optlab.train.fit`.

  Returns:
    An :class:`optlab.train.FitResult`.

  Example:
    >>> import numpy as np, optax
    >>> from flax import nnx
    >>> x = np.random.default_rng(0).uniform(size=(64, 4)).astype(np.float32)
    >>> y = (x[:, 0] > 0.5).astype(np.int32)
    >>> result = fit_adversarial(nnx.Linear(4, 2, rngs=nnx.Rngs(0)), optax.adam(1e-2), (x, y),
    ...                          epsilon=0.05, steps=3, bounds=(0.0, 1.0), epochs=2,
    ...                          batch_size=32, validation=(x, y))  # doctest: +SKIP
    >>> result.curve("val_robust_accuracy")  # doctest: +SKIP
  """
  from optlab import metrics as metrics_lib
  from optlab.data.base import as_xy
  from optlab.train.loop import FitResult
  from optlab.train.state import split_model

  if epochs < 1:
    raise ValueError(f"fit_adversarial: epochs must be ≥ 1, got {epochs}")
  x_train, y_train = as_xy(train, "train", caller="fit_adversarial")
  if not 1 <= batch_size <= x_train.shape[0]:
    raise ValueError(f"fit_adversarial: batch_size must be in [1, {x_train.shape[0]}], "
                     f"got {batch_size}")
  val = as_xy(validation, "validation", caller="fit_adversarial")
  train_graphdef, eval_graphdef, params, model_state = split_model(model)
  state = TrainState(step=jnp.zeros([], jnp.int32), params=params, model_state=model_state,
                     opt_state=tx.init(params), skipped=jnp.zeros([], jnp.int32))
  base_key = jax.random.key(seed)
  side_key = jax.random.fold_in(base_key, 2**31)  # apart from the epochs' fold_in(key, e)
  train_step = make_adversarial_train_step(
      train_graphdef, tx, epsilon=epsilon, method=method, step_size=step_size, steps=steps,
      norm=norm, random_start=random_start, bounds=bounds, beta=beta,
      key=jax.random.fold_in(side_key, 0), attack_graphdef=eval_graphdef, l2=l2)
  epoch_fn = jax.jit(steps_lib.make_scan_epoch(train_step, batch_size), donate_argnums=(0,))
  evaluate = jax.jit(steps_lib.make_evaluate(eval_graphdef, steps_lib.cross_entropy,
                                             {"accuracy": metrics_lib.get("accuracy")},
                                             eval_batch_size))
  attack = make_attack("pgd", epsilon=epsilon, step_size=step_size, steps=steps, norm=norm,
                       random_start=random_start, bounds=bounds)

  @jax.jit
  def robust(params, model_state, x, y, key):
    logits_fn = nnx.merge(eval_graphdef, params, model_state)
    return robust_accuracy(logits_fn, x, y, attack, key, batch_size=eval_batch_size)

  x_dev, y_dev = jax.device_put(x_train), jax.device_put(y_train)
  start = time.perf_counter()
  epoch_fn = epoch_fn.lower(state, x_dev, y_dev, base_key).compile()
  compile_seconds = time.perf_counter() - start
  history: list[dict[str, Any]] = []
  train_seconds = 0.0
  for epoch in range(epochs):
    epoch_start = time.perf_counter()
    state, losses = epoch_fn(state, x_dev, y_dev, jax.random.fold_in(base_key, epoch))
    logs: dict[str, Any] = {"epoch": epoch, "step": int(state.step),
                            "train_loss": float(np.mean(np.asarray(losses))),
                            "skipped_steps": int(state.skipped)}
    if val is not None:
      values = evaluate(state.params, state.model_state, *val)
      logs.update({f"val_{k}": float(v) for k, v in values.items()})
      logs["val_robust_accuracy"] = float(robust(state.params, state.model_state, *val,
                                                 jax.random.fold_in(side_key, 1 + epoch)))
    logs["epoch_seconds"] = time.perf_counter() - epoch_start
    train_seconds += logs["epoch_seconds"]
    history.append(logs)
  nnx.update(model, state.params, state.model_state)
  model.eval()
  return FitResult(model=model, state=state, history=history, status="completed",
                   message=f"trained for {epochs} epochs ({method}, ε = {epsilon:g}, {norm})",
                   skipped_steps=int(state.skipped), best_epoch=None,
                   compile_seconds=compile_seconds, train_seconds=train_seconds)


__all__ = [
    "METHODS",
    "NORMS",
    "fgsm",
    "fit_adversarial",
    "kl_divergence",
    "madry_loss",
    "make_adversarial_train_step",
    "make_attack",
    "pgd",
    "project",
    "robust_accuracy",
    "trades_loss",
]
