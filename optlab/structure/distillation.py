"""Knowledge distillation: a small student trained on a large teacher's softened outputs.

The loss of Hinton, Vinyals & Dean (2015) mixes a soft term, the KL divergence from
the teacher's temperature-softened distribution to the student's, scaled by T², with
the ordinary hard-label cross-entropy:

  L = α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + (1 − α) · CE(z_s, y)

averaged over the batch. Distillation needs no training loop of its own: the
teacher is frozen, so its logits on the training set are computed once
(:func:`teacher_logits`), packed next to the labels (:func:`pack_targets`, an
``(n, 1 + C)`` float array that ``optlab.train.fit`` shuffles and batches like any
target), and :func:`distillation_loss_fn` is the ``loss=`` of ``fit``::

  targets = pack_targets(y, teacher_logits(teacher, x))
  fit(student, tx, (x, targets), loss=distillation_loss_fn(temperature=4.0, alpha=0.9),
      validation=(x_val, y_val))  # plain labels: the loss is then the cross-entropy

:func:`feature_matching_loss` is the FitNets hint loss (Romero et al. 2015) between
intermediate features, for a loss that also sees the models' hidden layers.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optlab.metrics.losses import integer_label_cross_entropy
from optlab.train import steps as steps_lib
from optlab.train.state import split_model

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _is_traced(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


def _check_temperature(where: str, temperature: Any) -> None:
  """Raises unless `temperature` is a finite real number > 0 (traced values pass)."""
  if _is_traced(temperature):
    return
  if isinstance(temperature, bool) or not (
      isinstance(temperature, numbers.Real)
      or (isinstance(temperature, (np.ndarray, jax.Array)) and np.ndim(temperature) == 0)):
    raise TypeError(f"{where}: temperature must be a real number > 0, got {temperature!r}")
  value = float(temperature)
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"{where}: temperature must be a finite number > 0, got {value!r}")


def _check_alpha(where: str, alpha: Any) -> None:
  """Raises unless `alpha` is a real number in [0, 1] (traced values pass)."""
  if _is_traced(alpha):
    return
  if isinstance(alpha, bool) or not (
      isinstance(alpha, numbers.Real)
      or (isinstance(alpha, (np.ndarray, jax.Array)) and np.ndim(alpha) == 0)):
    raise TypeError(f"{where}: alpha must be a real number in [0, 1], got {alpha!r}")
  value = float(alpha)
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"{where}: alpha (the weight of the soft term) must be in [0, 1], "
                     f"got {value!r}")


def _check_logits(where: str, student_logits: jax.Array, teacher_logits: jax.Array) -> None:
  if student_logits.ndim < 1 or student_logits.shape[-1] < 2:
    raise ValueError(f"{where}: student_logits must have a class axis of size ≥ 2 last, got "
                     f"shape {tuple(student_logits.shape)}")
  if student_logits.shape != teacher_logits.shape:
    raise ValueError(f"{where}: student_logits and teacher_logits must have the same shape, got "
                     f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")


def soft_targets(logits: jax.Array, temperature: float = 1.0) -> jax.Array:
  """The temperature-softened distribution ``softmax(logits / T)`` over the last axis.

  qᵢ = exp(zᵢ / T) / Σⱼ exp(zⱼ / T); T = 1 is the ordinary softmax, T → ∞ the
  uniform distribution, and a larger T exposes the teacher's "dark knowledge", the
  relative probabilities of the wrong classes.

  Args:
    logits: ``(..., C)`` logits.
    temperature: T > 0.

  Returns:
    ``(..., C)`` probabilities.

  Example:
    >>> import jax.numpy as jnp
    >>> [round(float(q), 3) for q in soft_targets(jnp.array([2.0, 0.0]), temperature=2.0)]
    [0.731, 0.269]

  Reference: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural
  Network", NIPS 2014 Deep Learning Workshop (arXiv:1503.02531), eq. (1).
  """
  _check_temperature("soft_targets", temperature)
  return jax.nn.softmax(jnp.asarray(logits) / temperature, axis=-1)


def soft_distillation_loss(
    student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: float
) -> jax.Array:
  """The soft term of distillation: ``T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))``, batch mean.

  KL(p ‖ q) = Σᵢ pᵢ (log pᵢ − log qᵢ), with p the teacher's and q the student's
  softened distribution; it differs from the cross-entropy −Σ pᵢ log qᵢ used by
  Hinton et al. by the teacher's entropy, a constant, so the gradients are the same
  and a perfect student scores 0. Its gradient with respect to the student's logits
  is T · (q − p): the softened gradient (q − p) / T times T², which keeps the soft
  term's gradients O(1) as T changes (without the T² they shrink as 1/T² for
  large T, Hinton et al. section 2.1).

  Args:
    student_logits: ``(..., C)``.
    teacher_logits: the same shape (treated as constants: no gradient flows to them).
    temperature: T > 0.

  Returns:
    A scalar: the mean over every axis but the last.

  Example:
    >>> import jax.numpy as jnp
    >>> z = jnp.array([[1.0, 2.0, 3.0]])
    >>> float(soft_distillation_loss(z, z, temperature=4.0))
    0.0

  Reference: Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), section 2.
  """
  student_logits, teacher_logits = jnp.asarray(student_logits), jnp.asarray(teacher_logits)
  _check_temperature("soft_distillation_loss", temperature)
  _check_logits("soft_distillation_loss", student_logits, teacher_logits)
  teacher_logits = jax.lax.stop_gradient(teacher_logits)
  log_p = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
  log_q = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
  return temperature**2 * jnp.mean(kl)


def distillation_loss(
    student_logits: jax.Array,
    teacher_logits: jax.Array,
    labels: jax.Array,
    *,
    temperature: float,
    alpha: float,
) -> jax.Array:
  """Hinton et al.'s distillation loss: soft KL term (× T²) mixed with the hard-label loss.

  L = α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + (1 − α) · CE(softmax(z_s), y),

  both terms averaged over the batch. Convention: α is the weight of the *soft*
  term, so α = 0 is ordinary training on the labels (the student alone) and α = 1
  is pure distillation (labels ignored); Hinton et al. put "considerably lower
  weight" on the hard term (α close to 1). Some implementations (e.g. Distiller)
  weight the hard term by α instead: use 1 − α to port them. The hard term uses
  T = 1. The KL and Hinton's soft cross-entropy differ by the teacher's entropy, a
  constant, so their gradients agree.

  Args:
    student_logits: ``(..., C)`` logits of the student.
    teacher_logits: the same shape; the frozen teacher's (no gradient flows to them).
    labels: ``(...)`` integer class labels.
    temperature: T > 0 of the soft term.
    alpha: weight in [0, 1] of the soft term.

  Returns:
    A scalar.

  Example:
    >>> import jax.numpy as jnp
    >>> z_s, z_t = jnp.array([[1.0, 0.0, -1.0]]), jnp.array([[3.0, 1.0, 0.0]])
    >>> y = jnp.array([0])
    >>> round(float(distillation_loss(z_s, z_t, y, temperature=2.0, alpha=0.5)), 4)
    0.2641

  Reference: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural
  Network", NIPS 2014 Deep Learning Workshop (arXiv:1503.02531).
  """
  _check_temperature("distillation_loss", temperature)
  _check_alpha("distillation_loss", alpha)
  student_logits, teacher_logits = jnp.asarray(student_logits), jnp.asarray(teacher_logits)
  labels = jnp.asarray(labels)
  _check_logits("distillation_loss", student_logits, teacher_logits)
  if labels.shape != student_logits.shape[:-1]:
    raise ValueError(f"distillation_loss: labels must have shape {tuple(student_logits.shape[:-1])}"
                     f" (the logits' without the class axis), got {tuple(labels.shape)}")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise TypeError(f"distillation_loss: labels must be integer class indices, got dtype "
                    f"{labels.dtype}")
  soft = soft_distillation_loss(student_logits, teacher_logits, temperature=temperature)
  hard = jnp.mean(integer_label_cross_entropy(student_logits, labels))
  return alpha * soft + (1.0 - alpha) * hard


def pack_targets(labels: Any, teacher_logits: Any) -> np.ndarray:
  """Labels and teacher logits side by side: an ``(n, 1 + C)`` float32 target array.

  Column 0 holds the label (exact as a float32 for any class index below 2²⁴), the
  rest the teacher's logits, so ``optlab.train.fit`` (and any batching that takes
  rows) carries both through its shuffles; :func:`unpack_targets` splits them.

  Args:
    labels: ``(n,)`` integer labels.
    teacher_logits: ``(n, C)`` logits of the teacher on the same examples.

  Returns:
    An ``(n, 1 + C)`` float32 NumPy array.

  Example:
    >>> import numpy as np
    >>> pack_targets(np.array([2, 0]), np.zeros((2, 3))).shape
    (2, 4)
  """
  labels, teacher_logits = np.asarray(labels), np.asarray(teacher_logits)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"pack_targets: labels must be a 1-D integer array, got shape "
                     f"{labels.shape} and dtype {labels.dtype}")
  if teacher_logits.ndim != 2 or teacher_logits.shape[0] != labels.shape[0]:
    raise ValueError(f"pack_targets: teacher_logits must have shape ({labels.shape[0]}, C) to "
                     f"match labels, got {teacher_logits.shape}")
  if labels.size and (labels.min() < 0 or labels.max() >= teacher_logits.shape[1]):
    raise ValueError(f"pack_targets: labels must lie in [0, {teacher_logits.shape[1]}) (the "
                     f"teacher's classes), got [{labels.min()}, {labels.max()}]")
  if not np.all(np.isfinite(teacher_logits)):
    raise ValueError("pack_targets: teacher_logits contain non-finite values")
  return np.concatenate([labels[:, None].astype(np.float32),
                         teacher_logits.astype(np.float32)], axis=1)


def unpack_targets(targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(int32 labels ``(..., )``, teacher logits ``(..., C)``) of packed ``(..., 1 + C)`` targets."""
  targets = jnp.asarray(targets)
  return targets[..., 0].astype(jnp.int32), targets[..., 1:]


def distillation_loss_fn(temperature: float, alpha: float) -> LossFn:
  """The ``loss=`` of ``optlab.train.fit`` (or ``optlab.tune.sweep.sweep``) for distillation.

  Returns ``loss(outputs, targets)``: with packed targets (:func:`pack_targets`,
  ``targets.shape == outputs.shape[:-1] + (1 + C,)``) the :func:`distillation_loss`;
  with plain integer labels (``targets.shape == outputs.shape[:-1]``), the ordinary
  cross-entropy, so ``fit``'s validation and test sets keep their labels and their
  ``val_loss`` stays comparable across temperatures.

  Args:
    temperature: T > 0.
    alpha: weight in [0, 1] of the soft term (α = 0: the labels alone).

  Returns:
    A loss function.

  Example:
    >>> import numpy as np
    >>> from flax import nnx
    >>> from optlab import models, optim
    >>> from optlab.train import fit
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    >>> teacher = models.MLP(4, [32], 3, rngs=nnx.Rngs(0))
    >>> targets = pack_targets(y, teacher_logits(teacher, x))
    >>> student = models.MLP(4, [4], 3, rngs=nnx.Rngs(1))
    >>> result = fit(student, optim.get("adam", learning_rate=1e-2), (x, targets), epochs=2,
    ...              batch_size=16, loss=distillation_loss_fn(4.0, 0.9), validation=(x, y),
    ...              progress=False)  # doctest: +SKIP

  Reference: Hinton, Vinyals & Dean 2015 (arXiv:1503.02531).
  """
  _check_temperature("distillation_loss_fn", temperature)
  _check_alpha("distillation_loss_fn", alpha)

  def loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    if targets.shape == outputs.shape[:-1]:
      return jnp.mean(integer_label_cross_entropy(
          outputs, targets.astype(jnp.int32)))
    if targets.shape != (*outputs.shape[:-1], 1 + outputs.shape[-1]):
      raise ValueError(
          f"distillation loss: targets must be integer labels of shape "
          f"{tuple(outputs.shape[:-1])} or packed (label, teacher logits) of shape "
          f"{(*outputs.shape[:-1], 1 + outputs.shape[-1])} (see pack_targets), got "
          f"{tuple(targets.shape)} for outputs of shape {tuple(outputs.shape)}")
    labels, teacher = unpack_targets(targets)
    return distillation_loss(outputs, teacher, labels, temperature=temperature, alpha=alpha)

  loss.__name__ = f"distillation_T{temperature:g}_alpha{alpha:g}"
  return loss


def teacher_logits(teacher: nnx.Module, x: Any, *, batch_size: int = 1024) -> np.ndarray:
  """The frozen teacher's logits on `x` (evaluation mode: no dropout), as a NumPy array.

  Computed once, in chunks of `batch_size` (one compiled program), and packed with
  the labels by :func:`pack_targets`. The teacher's own mode is left as it was.

  Args:
    teacher: a Flax NNX model mapping inputs to logits.
    x: ``(n, ...)`` inputs.
    batch_size: examples per chunk.

  Returns:
    ``(n, C)`` float32 logits.
  """
  if not isinstance(teacher, nnx.Module):
    raise TypeError(f"teacher_logits: teacher must be a flax.nnx.Module, got "
                    f"{type(teacher).__name__}")
  if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
    raise ValueError(f"teacher_logits: batch_size must be an int ≥ 1, got {batch_size!r}")
  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[0] == 0:
    raise ValueError(f"teacher_logits: x must be a non-empty batch, got shape {tuple(x.shape)}")
  # A clone: split_model leaves its model in training mode, the teacher keeps its own.
  _, eval_graphdef, params, rest = split_model(nnx.clone(teacher))
  predict = _jitted_predict(eval_graphdef, min(batch_size, x.shape[0]))
  return np.asarray(predict(params, rest, x), np.float32)


@functools.lru_cache(maxsize=16)
def _jitted_predict(graphdef: nnx.GraphDef, batch_size: int) -> Callable[..., jax.Array]:
  # One jitted prediction per (graph, chunk size): teachers of one architecture share it
  # (and its compilation, for inputs of one shape).
  return jax.jit(steps_lib.make_predict(graphdef, batch_size))


def feature_matching_loss(
    student_features: jax.Array,
    teacher_features: jax.Array,
    projection: jax.Array | Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
  """FitNets' hint loss: the mean squared error between (projected) intermediate features.

  L = mean((r(f_s) − f_t)²) over every element, where r is the identity, a matrix
  ``(d_s, d_t)`` (``f_s @ W``, a learned regressor kept among the student's
  parameters) or any callable; Romero et al. use ½‖r(f_s) − f_t‖² summed over
  features, i.e. this times d_t / 2 per example. The teacher's features are
  treated as constants.

  Args:
    student_features: ``(..., d_s)`` features of a student layer.
    teacher_features: ``(..., d_t)`` features of the teacher's "hint" layer.
    projection: None (then d_s must equal d_t), a ``(d_s, d_t)`` matrix or a callable.

  Returns:
    A scalar.

  Example:
    >>> import jax.numpy as jnp
    >>> f_s, f_t = jnp.ones((2, 3)), jnp.zeros((2, 4))
    >>> float(feature_matching_loss(f_s, f_t, projection=jnp.ones((3, 4))))
    9.0

  Reference: A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio,
  "FitNets: Hints for Thin Deep Nets", ICLR 2015 (arXiv:1412.6550).
  """
  student_features = jnp.asarray(student_features)
  teacher_features = jax.lax.stop_gradient(jnp.asarray(teacher_features))
  if projection is None:
    projected = student_features
  elif callable(projection):
    projected = projection(student_features)
  else:
    projection = jnp.asarray(projection)
    if projection.ndim != 2 or projection.shape[0] != student_features.shape[-1]:
      raise ValueError(f"feature_matching_loss: projection must be a ({student_features.shape[-1]}"
                       f", d_t) matrix for student features of shape "
                       f"{tuple(student_features.shape)}, got {tuple(projection.shape)}")
    projected = student_features @ projection
  if projected.shape != teacher_features.shape:
    hint = "" if projection is not None else " (give a projection to map between widths)"
    raise ValueError(f"feature_matching_loss: (projected) student features of shape "
                     f"{tuple(projected.shape)} do not match teacher features of shape "
                     f"{tuple(teacher_features.shape)}{hint}")
  return jnp.mean(jnp.square(projected - teacher_features))


__all__ = [
    "distillation_loss",
    "distillation_loss_fn",
    "feature_matching_loss",
    "pack_targets",
    "soft_distillation_loss",
    "soft_targets",
    "teacher_logits",
    "unpack_targets",
]
