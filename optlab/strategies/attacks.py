"""Adversarial attacks: FGSM and PGD (L∞ and L2), projection, robust accuracy.

The attacks are pure JAX functions of a classifier ``logits_fn(x) -> logits`` (any
callable: an NNX model, or ``lambda x: nnx.merge(graphdef, params, state)(x)``), so
they run under ``jit`` and ``vmap``. Perturbations are per example, measured over
all non-batch axes; the L∞ ball is enforced by clipping, the L2 ball by rescaling;
with ``bounds=(lo, hi)`` the adversarial input is clipped to the data range after
every step. The attack maximizes the summed per-example loss (its gradient is per
example, so the batch size does not change the step). Adversarial training on top
of them is in :mod:`optlab.strategies.adversarial`.

References:
  Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples",
  ICLR 2015 (FGSM). Madry et al., "Towards Deep Learning Models Resistant to
  Adversarial Attacks", ICLR 2018 (PGD).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.metrics.losses import integer_label_cross_entropy

LogitsFn = Callable[[jax.Array], jax.Array]
Attack = Callable[[LogitsFn, jax.Array, Any, jax.Array], jax.Array]
NORMS = ("linf", "l2")


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
