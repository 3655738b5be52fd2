"""Adversarial attacks and adversarial training: FGSM, PGD, Madry et al. and TRADES.

The attacks are pure JAX functions of a classifier ``logits_fn(x) -> logits`` (any
callable: an NNX model, or ``lambda x: nnx.merge(graphdef, params, state)(x)``), so
they run under ``jit`` and ``vmap``. Adversarial training is a train step compatible
with :class:`optlab.train.TrainState` and :func:`optlab.train.steps.make_scan_epoch`
(:func:`make_adversarial_train_step`), and :func:`fit_adversarial` is a thin loop
over it built from ``optlab.train``'s pieces.

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

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab.metrics.losses import integer_label_cross_entropy
from optlab.train import steps as steps_lib
from optlab.train.state import TrainState

LogitsFn = Callable[[jax.Array], jax.Array]
Attack = Callable[[LogitsFn, jax.Array, Any, jax.Array], jax.Array]
NORMS = ("linf", "l2")
METHODS = ("madry", "trades")


def _is_concrete_number(value: Any) -> bool:
  return isinstance(value, (int, float, np.number)) or (
      isinstance(value, (np.ndarray, jax.Array)) and not isinstance(value, jax.core.Tracer)
      and np.ndim(value) == 0)


def _check_nonnegative(where: str, name: str, value: Any) -> None:
  if _is_concrete_number(value) and not float(value) >= 0.0:
    raise ValueError(f"{where}: {name} must be a number ≥ 0, got {value}")


def _check_positive(where: str, name: str, value: Any) -> None:
  if _is_concrete_number(value) and not float(value) > 0.0:
    raise ValueError(f"{where}: {name} must be > 0, got {value}")


def _check_norm(where: str, norm: Any) -> None:
  if norm not in NORMS:
    raise ValueError(f"{where}: unknown norm {norm!r}; accepted: {', '.join(map(repr, NORMS))}")


def _check_steps(where: str, steps: Any) -> None:
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(f"{where}: steps must be an integer ≥ 1, got {steps!r}")


def _check_bounds(where: str, bounds: Any) -> None:
  if bounds is None:
    return
  if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
    raise TypeError(f"{where}: bounds must be None or a (low, high) pair, got {bounds!r}")
  low, high = bounds
  if _is_concrete_number(low) and _is_concrete_number(high) and not float(low) < float(high):
    raise ValueError(f"{where}: bounds must satisfy low < high, got {bounds!r}")


def _check_attack(where: str, epsilon, step_size, steps, norm, bounds) -> None:
  """Validates a PGD configuration (steps=None: FGSM, no step count or size)."""
  _check_nonnegative(where, "epsilon", epsilon)
  if step_size is not None:
    _check_positive(where, "step_size", step_size)
  if steps is not None:
    _check_steps(where, steps)
  _check_norm(where, norm)
  _check_bounds(where, bounds)


def _per_example_loss(loss: str | Callable) -> Callable[[jax.Array, Any], jax.Array]:
  if callable(loss):
    return loss
  if loss == "cross_entropy":
    return integer_label_cross_entropy
  if loss == "kl":
    return kl_divergence
  raise ValueError(f"unknown attack loss {loss!r}; accepted: 'cross_entropy', 'kl' or a "
                   "callable (logits, targets) -> per-example losses")


def kl_divergence(logits: jax.Array, reference_logits: jax.Array) -> jax.Array:
  """Per-example KL(softmax(reference) ‖ softmax(logits)), summed over classes.

  TRADES' robust term, with the clean prediction as the reference (Zhang et al. 2019).
  """
  log_p = jax.nn.log_softmax(reference_logits, axis=-1)
  log_q = jax.nn.log_softmax(logits, axis=-1)
  return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def _example_norm(v: jax.Array) -> jax.Array:
  """L2 norm of each example over its non-batch axes, shaped to broadcast against `v`."""
  axes = tuple(range(1, v.ndim))
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=axes, keepdims=True))


def _ascent_direction(grad: jax.Array, norm: str) -> jax.Array:
  """The steepest-ascent direction of unit `norm`: sign(g) (L∞) or g / ‖g‖₂ (L2)."""
  if norm == "linf":
    return jnp.sign(grad)
  return grad / jnp.maximum(_example_norm(grad), 1e-12)


def project(delta: jax.Array, epsilon: Any, norm: str) -> jax.Array:
  """Projects each example's perturbation onto the `norm` ball of radius `epsilon`.

  L∞: ``clip(δ, −ε, ε)``; L2: ``δ · min(1, ε / ‖δ‖₂)``.
  """
  _check_norm("project", norm)
  if norm == "linf":
    return jnp.clip(delta, -epsilon, epsilon)
  scale = jnp.minimum(1.0, epsilon / jnp.maximum(_example_norm(delta), 1e-12))
  return delta * scale


def _clip_bounds(x: jax.Array, bounds) -> jax.Array:
  return x if bounds is None else jnp.clip(x, bounds[0], bounds[1])


def _random_start(key: jax.Array, x: jax.Array, epsilon: Any, norm: str) -> jax.Array:
  """Uniform in the L∞ box, or uniform in the L2 ball (direction Gaussian, radius ε·u^(1/d))."""
  if norm == "linf":
    return jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * epsilon
  direction_key, radius_key = jax.random.split(key)
  direction = jax.random.normal(direction_key, x.shape, x.dtype)
  direction = direction / jnp.maximum(_example_norm(direction), 1e-12)
  d = math.prod(x.shape[1:])
  radius = jax.random.uniform(radius_key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype) ** (1 / d)
  return direction * radius * epsilon


def _input_gradient(logits_fn: LogitsFn, loss_fn, x: jax.Array, y: Any) -> jax.Array:
  return jax.grad(lambda xx: jnp.sum(loss_fn(logits_fn(xx), y)))(x)


def fgsm(
    logits_fn: LogitsFn, x: jax.Array, y: Any,
    *, epsilon: float | jax.Array, norm: str = "linf", bounds: tuple[float, float] | None = None,
    loss: str | Callable = "cross_entropy",
) -> jax.Array:
  """The fast gradient (sign) method: one step of length ε up the loss.

  ``x' = clip(x + ε · sign(∇ₓ L(f(x), y)))`` for L∞ (Goodfellow et al. 2015), and
  ``x' = clip(x + ε · ∇ₓL / ‖∇ₓL‖₂)`` per example for L2 ("fast gradient method").

  Args:
    logits_fn: the classifier, ``x -> logits``.
    x: a batch of inputs (batch first).
    y: the targets the loss compares with (integer labels for cross-entropy).
    epsilon: the perturbation budget ε ≥ 0 (a traced value is allowed).
    norm: ``"linf"`` or ``"l2"``.
    bounds: ``(low, high)`` data range to clip to, or None.
    loss: ``"cross_entropy"``, ``"kl"`` (y are reference logits) or a callable
      ``(logits, y) -> per-example losses``.

  Returns:
    The adversarial batch, shaped like `x` (no gradient flows through it).

  Example:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([[1.0, -1.0], [2.0, 0.0]])
    >>> x_adv = fgsm(lambda x: x @ w, jnp.zeros((1, 2)), jnp.array([0]), epsilon=0.1)
    >>> [round(v, 3) for v in x_adv[0].tolist()]
    [-0.1, -0.1]

  Reference: Goodfellow, Shlens, Szegedy, ICLR 2015.
  """
  _check_attack("fgsm", epsilon, None, None, norm, bounds)
  grad = _input_gradient(logits_fn, _per_example_loss(loss), x, y)
  x_adv = _clip_bounds(x + epsilon * _ascent_direction(grad, norm), bounds)
  return jax.lax.stop_gradient(x_adv)


def pgd(
    logits_fn: LogitsFn, x: jax.Array, y: Any, key: jax.Array | None,
    *, epsilon: float | jax.Array, step_size: float | jax.Array | None = None, steps: int = 10,
    norm: str = "linf", random_start: bool = True, bounds: tuple[float, float] | None = None,
    loss: str | Callable = "cross_entropy",
) -> jax.Array:
  """Projected gradient ascent on the loss inside the ε-ball around `x` (Madry et al. 2018).

  ``x⁰ = x + δ₀`` (δ₀ uniform in the ball if `random_start`, else 0), then for
  t = 1..steps: ``xᵗ = Π_{B(x, ε) ∩ bounds}(xᵗ⁻¹ + α · d(∇ₓ L(f(xᵗ⁻¹), y)))`` with
  ``d(g) = sign(g)`` (L∞) or ``g / ‖g‖₂`` (L2), Π clipping (L∞) or rescaling (L2)
  the perturbation per example, then clipping to the data bounds.

  Args:
    logits_fn: the classifier, ``x -> logits``.
    x: a batch of inputs (batch first).
    y: the targets of the loss (integer labels for cross-entropy).
    key: PRNG key of the random start (unused, may be None, without it).
    epsilon: the radius ε ≥ 0 (a traced value is allowed, e.g. to ``vmap`` over ε).
    step_size: α > 0; default ``2.5 ε / steps`` (Madry et al.'s rule).
    steps: number of ascent steps, ≥ 1.
    norm: ``"linf"`` or ``"l2"``.
    random_start: start from a uniform point of the ball.
    bounds: ``(low, high)`` data range, or None.
    loss: ``"cross_entropy"``, ``"kl"`` (y are reference logits) or a callable
      ``(logits, y) -> per-example losses``.

  Returns:
    The adversarial batch (no gradient flows through it).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([[1.0, -1.0], [2.0, 0.0]])
    >>> x_adv = pgd(lambda x: x @ w, jnp.zeros((1, 2)), jnp.array([0]), jax.random.key(0),
    ...             epsilon=0.1, steps=5)
    >>> float(jnp.abs(x_adv).max()) <= 0.1 + 1e-6
    True

  Reference: Madry et al., ICLR 2018.
  """
  _check_attack("pgd", epsilon, step_size, steps, norm, bounds)
  if random_start and key is None:
    raise ValueError("pgd: random_start=True needs a PRNG key, got key=None")
  alpha = 2.5 * epsilon / steps if step_size is None else step_size
  loss_fn = _per_example_loss(loss)
  x = jax.lax.stop_gradient(x)
  start = _random_start(key, x, epsilon, norm) if random_start else jnp.zeros_like(x)
  x_adv = _clip_bounds(x + start, bounds)

  def body(_, x_adv):
    grad = _input_gradient(logits_fn, loss_fn, x_adv, y)
    moved = x_adv + alpha * _ascent_direction(grad, norm)
    return _clip_bounds(x + project(moved - x, epsilon, norm), bounds)

  return jax.lax.stop_gradient(jax.lax.fori_loop(0, steps, body, x_adv))


def make_attack(
    kind: str = "pgd",
    *, epsilon: float | jax.Array, step_size: float | jax.Array | None = None, steps: int = 10,
    norm: str = "linf", random_start: bool = True, bounds: tuple[float, float] | None = None,
    loss: str | Callable = "cross_entropy",
) -> Attack:
  """An attack ``attack(logits_fn, x, y, key) -> x_adv`` with its settings bound.

  Args:
    kind: ``"pgd"`` or ``"fgsm"`` (FGSM ignores the key, steps, step size and start).
    epsilon, step_size, steps, norm, random_start, bounds, loss: as in :func:`pgd`.

  Returns:
    The attack, for :func:`robust_accuracy` and friends.

  Example:
    >>> attack = make_attack("pgd", epsilon=0.1, steps=7, bounds=(0.0, 1.0))
  """
  if kind not in ("pgd", "fgsm"):
    raise ValueError(f"make_attack: unknown kind {kind!r}; accepted: 'pgd', 'fgsm'")
  _check_attack("make_attack", epsilon, step_size if kind == "pgd" else None,
                steps if kind == "pgd" else None, norm, bounds)
  if kind == "fgsm":
    def attack(logits_fn, x, y, key):
      del key
      return fgsm(logits_fn, x, y, epsilon=epsilon, norm=norm, bounds=bounds, loss=loss)
    return attack

  def attack(logits_fn, x, y, key):
    return pgd(logits_fn, x, y, key, epsilon=epsilon, step_size=step_size, steps=steps,
               norm=norm, random_start=random_start, bounds=bounds, loss=loss)
  return attack


def robust_accuracy(
    logits_fn: LogitsFn, x: jax.Array, y: jax.Array, attack: Attack, key: jax.Array | None = None,
    *, batch_size: int | None = None,
) -> jax.Array:
  """Accuracy of `logits_fn` on ``attack(logits_fn, x, y, key)``, attacked per batch.

  ``mean_i [argmax f(x'_i) = y_i]``; with ε = 0 this is the clean accuracy. The data
  are padded to a multiple of `batch_size` and attacked with ``lax.map`` (one
  compilation for any size); padding is left out of the mean. Jit-able.

  Args:
    logits_fn: the classifier.
    x: inputs; y: integer labels.
    attack: from :func:`make_attack` (or any ``(logits_fn, x, y, key) -> x_adv``).
    key: PRNG key (each batch attacks with its own fold of it).
    batch_size: examples per attacked batch; None attacks all at once.

  Returns:
    A float32 scalar in [0, 1].

  Example:
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> x, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1])
    >>> float(robust_accuracy(lambda v: v @ w, x, y, make_attack(epsilon=0.0), jax.random.key(0)))
    1.0
  """
  if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
    raise ValueError(f"robust_accuracy: batch_size must be None or ≥ 1, got {batch_size!r}")
  key = jax.random.key(0) if key is None else key
  n = x.shape[0]
  size = n if batch_size is None else min(batch_size, n)
  chunks = -(-n // size)
  pad = chunks * size - n
  if pad:
    x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    y = jnp.concatenate([y, jnp.zeros((pad, *y.shape[1:]), y.dtype)])
  xs = x.reshape(chunks, size, *x.shape[1:])
  ys = y.reshape(chunks, size, *y.shape[1:])

  def one(args):
    index, xb, yb = args
    x_adv = attack(logits_fn, xb, yb, jax.random.fold_in(key, index))
    return jnp.argmax(logits_fn(x_adv), axis=-1) == yb

  correct = jax.lax.map(one, (jnp.arange(chunks), xs, ys)).reshape(-1)[:n]
  return jnp.mean(correct.astype(jnp.float32))


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
