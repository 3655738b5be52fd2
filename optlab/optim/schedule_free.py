"""Schedule-free learning (Defazio et al., 2024) as a wrapper over any base optimizer."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.contrib

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import scale_by_adam
from optlab.optim.adamw import add_weight_decay
from optlab.optim.averaging import _check_int, find_state, scalar_dtype

BiasCorrection = Literal["paper", "optax"]
BIAS_CORRECTIONS = ("paper", "optax")


class ScheduleFreeState(NamedTuple):
  """State of :func:`schedule_free`."""

  count: jax.Array  # int32: steps taken so far
  max_lr: jax.Array  # the largest learning rate so far (float32, float64 for float64 params)
  weight_sum: jax.Array  # Σ_{i ≤ t} (max_lr_i)^r
  z: optax.Params  # the base optimizer's iterates
  x: optax.Params  # their weighted average: where to evaluate
  base_state: optax.OptState


def schedule_free(
    base: optax.GradientTransformation,
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    *,
    state_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Schedule-free learning around any base optimizer (without momentum).

  The parameters are the gradient points y; the state keeps the base optimizer's
  iterates z and their average x (Defazio et al. 2024, Eq. 5–7 and Algorithm 1):

  .. math::
     y_t &= (1−β_1) z_t + β_1 x_t \quad\text{(the parameters; the gradient is taken here)} \\
     z_{t+1} &= z_t + \mathrm{base}(∇f(y_t)) \quad\text{(e.g. } z_t − γ_t ∇f(y_t)\text{)} \\
     x_{t+1} &= (1 − c_{t+1})\, x_t + c_{t+1} z_{t+1}, \qquad
     c_{t+1} = \frac{\bar γ_t^{\,r}}{\sum_{i ≤ t} \bar γ_i^{\,r}}

  with x_1 = z_1 = y_1 the initial parameters, r = `weight_lr_power` and
  :math:`\bar γ_t = \max_{i ≤ t} γ_i` (the learning rate so far; with a constant
  rate, c_{t+1} = 1/t: x is the plain average of the z's). Evaluate at x
  (:func:`schedule_free_eval`). β₁ = 0 gives the base optimizer with Polyak
  averaging; β₁ = 1 takes gradients at the average (primal averaging).

  The base optimizer gets y as its ``params`` (so weight decay acts at y, as in
  the paper) and must not add momentum: schedule-free replaces it (give Adam
  ``b1=0``). `learning_rate` sets only the averaging weights: pass the base the
  same schedule. Both see the 0-based step count, so the t-th step uses γ_t for
  the step and the weight (``optax.contrib.schedule_free`` evaluates a schedule
  one step later for the weight; they agree for a constant rate).

  Differences from ``optax.contrib.schedule_free``: x is kept in the state rather
  than re-derived as (y − (1−β₁)z)/β₁ (one more buffer; β₁ may be 0 and x does not
  pick up rounding amplified by 1/β₁), and the update keeps the parameters' dtype
  when hyperparameters are injected as float32.

  Args:
    base: the base optimizer, without momentum (its updates step z).
    learning_rate: γ_t ≥ 0, a number or a schedule of the step, for the weights.
    b1: β₁ in [0, 1], the interpolation between z and x. Injectable.
    weight_lr_power: r ≥ 0 (2 in the paper). Injectable.
    state_dtype: dtype of z and x (default: each parameter's own; ``jnp.float32``
      is more accurate for bfloat16 parameters).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose update needs ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, optlab
    >>> from optlab.optim.schedule_free import schedule_free, schedule_free_eval
    >>> tx = schedule_free(optlab.optim.sgd(0.5), 0.5, b1=0.9)
    >>> params = jnp.array([2.0])
    >>> state = tx.init(params)
    >>> updates, state = tx.update(params, state, params)  # z = x = 2 − 0.5·2 = 1
    >>> params = optax.apply_updates(params, updates)
    >>> params, schedule_free_eval(params, state)
    (Array([1.], dtype=float32), Array([1.], dtype=float32))

  References:
    A. Defazio, X. A. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky,
    "The Road Less Scheduled", NeurIPS 2024.
  """
  where = "schedule_free"
  v.check_learning_rate(where, learning_rate)
  v.check_range(where, "b1", b1, 0.0, 1.0)
  v.check_non_negative(where, "weight_lr_power", weight_lr_power)
  if not isinstance(base, optax.GradientTransformation):
    raise TypeError(f"{where}: base must be an optax.GradientTransformation, got "
                    f"{type(base).__name__}")
  inner = optax.with_extra_args_support(base)

  def copy(params):
    if state_dtype is None:
      return jax.tree.map(lambda p: jnp.array(p, copy=True), params)
    return jax.tree.map(lambda p: jnp.asarray(p).astype(state_dtype), params)

  def init_fn(params):
    v.check_float_tree(where, params)
    scalar = scalar_dtype(params)
    return ScheduleFreeState(
        count=jnp.zeros([], jnp.int32), max_lr=jnp.zeros([], scalar),
        weight_sum=jnp.zeros([], scalar), z=copy(params), x=copy(params),
        base_state=inner.init(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    v.check_same_structure(where, updates, state.z, "z sequence")
    if params is None:
      raise ValueError(f"{where}: update needs params (the gradient points y); call "
                       "tx.update(grads, state, params)")
    v.check_same_structure(where, params, state.z, "z sequence")
    scalar = state.max_lr.dtype
    rate = c.step_size(learning_rate, state.count).astype(scalar)
    max_lr = jnp.maximum(state.max_lr, rate)
    weight = max_lr ** jnp.asarray(weight_lr_power, scalar)
    weight_sum = state.weight_sum + weight
    ck = jnp.where(weight_sum > 0, weight / jnp.where(weight_sum > 0, weight_sum, 1), 0)
    base_updates, base_state = inner.update(updates, state.base_state, params, **extra_args)

    def step(u, y, z, x):
      dtype = jnp.promote_types(jnp.promote_types(jnp.result_type(z), jnp.float32), scalar)
      z_new = z.astype(dtype) + u.astype(dtype)
      x32 = x.astype(dtype)
      x_new = x32 + ck.astype(dtype) * (z_new - x32)
      y_new = x_new + (1 - jnp.asarray(b1, dtype)) * (z_new - x_new)
      return (y_new - y.astype(dtype)).astype(u.dtype), z_new.astype(z.dtype), x_new.astype(x.dtype)

    treedef = jax.tree.structure(state.z)
    triples = treedef.flatten_up_to(jax.tree.map(step, base_updates, params, state.z, state.x))
    new_updates, z, x = (jax.tree.unflatten(treedef, xs) for xs in zip(*triples, strict=True))
    new_updates = c.cast_like(new_updates, updates)
    return new_updates, ScheduleFreeState(
        count=optax.safe_increment(state.count), max_lr=max_lr, weight_sum=weight_sum,
        z=z, x=x, base_state=base_state,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def schedule_free_eval(params: Any, opt_state: Any) -> Any:
  """The schedule-free evaluation point x, found anywhere in `opt_state`.

  The signature of ``optlab.train.fit(..., evaluate_at=schedule_free_eval)``.
  Works with :func:`schedule_free` (and the registry's ``schedule_free*``
  entries) and with ``optax.contrib.schedule_free*`` (whose x is computed from
  y = `params` and z).

  Args:
    params: the current parameters y.
    opt_state: a state holding one schedule-free state.

  Returns:
    x, with the dtypes of `params`.
  """
  where = "schedule_free_eval"
  state = find_state(opt_state, (ScheduleFreeState, optax.contrib.ScheduleFreeState), where)
  if isinstance(state, ScheduleFreeState):
    v.check_same_structure(where, params, state.x, "x sequence")
    return jax.tree.map(lambda p, x: x.astype(jnp.result_type(p)), params, state.x)
  v.check_same_structure(where, params, state.z, "z sequence")
  return optax.contrib.schedule_free_eval_params(state, params)


def warmup_learning_rate(learning_rate: Any, warmup_steps: int) -> optax.ScalarOrSchedule:
  """γ · min(1, (t+1)/T) at the 0-based step t: the paper's linear warmup over T steps."""
  if warmup_steps == 0:
    return learning_rate
  if callable(learning_rate):
    raise TypeError("warmup_steps needs a constant learning_rate; put the warmup in the "
                    "schedule instead")

  def schedule(count):
    dtype = jnp.promote_types(jnp.result_type(learning_rate), jnp.float32)
    ramp = jnp.minimum(1, (jnp.asarray(count, dtype) + 1) / warmup_steps)
    return learning_rate * ramp

  return schedule


def schedule_free_sgd(
    learning_rate: float = 1.0,
    b1: float = 0.9,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    warmup_steps: int = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""Schedule-free SGD: :func:`schedule_free` over plain SGD.

  .. math::
     y_t = (1−β_1) z_t + β_1 x_t, \quad z_{t+1} = z_t − γ_t (∇f(y_t) + λ y_t), \quad
     x_{t+1} = (1−c_{t+1}) x_t + c_{t+1} z_{t+1}

  with γ_t = γ min(1, t/T_warmup) (t from 1) and c as in :func:`schedule_free`.
  With no warmup this is ``optax.contrib.schedule_free_sgd``.

  Args:
    learning_rate: γ ≥ 0. Injectable.
    b1: β₁ in [0, 1]. Injectable.
    weight_decay: λ ≥ 0, applied at y and scaled by γ_t. Injectable.
    weight_lr_power: r ≥ 0.
    warmup_steps: T ≥ 0, linear warmup steps (static).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; evaluate at :func:`schedule_free_eval`.

  Example:
    >>> from optlab.optim.schedule_free import schedule_free_sgd
    >>> tx = schedule_free_sgd(0.5, warmup_steps=10)

  References:
    A. Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
  """
  where = "schedule_free_sgd"
  v.check_learning_rate(where, learning_rate)
  _check_int(where, "warmup_steps", warmup_steps, 0)
  rate = warmup_learning_rate(learning_rate, warmup_steps)
  base = optax.chain(add_weight_decay(weight_decay), c.scale_by_learning_rate(rate))
  return schedule_free(base, rate, b1, weight_lr_power)


class _RmsState(NamedTuple):
  count: jax.Array
  nu: optax.Updates


def schedule_free_adamw(
    learning_rate: float = 0.0025,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    warmup_steps: int = 0,
    bias_correction: BiasCorrection = "paper",
) -> optax.GradientTransformationExtraArgs:
  r"""Schedule-free AdamW (Defazio et al. 2024, Algorithm 1).

  .. math::
     y_t &= (1−β_1) z_t + β_1 x_t, \qquad g_t = ∇f(y_t), \qquad
     v_t = β_2 v_{t−1} + (1−β_2) g_t^2 \\
     γ_t &= γ \sqrt{1−β_2^t}\, \min(1, t/T_{warmup}) \\
     z_{t+1} &= z_t − γ_t\, g_t/(\sqrt{v_t} + ε) − γ_t λ y_t \\
     x_{t+1} &= (1−c_{t+1}) x_t + c_{t+1} z_{t+1}, \qquad
     c_{t+1} = \frac{γ_t^2}{\sum_{i=1}^t γ_i^2}

  (``weight_lr_power`` r replaces the 2, and :math:`\max_{i≤t} γ_i` is used for γ_t
  in the weight, which changes nothing here as γ_t does not decrease.)

  ``bias_correction="paper"`` is the algorithm above. ``"optax"`` is
  ``optax.contrib.schedule_free_adamw``'s: Adam's corrected
  :math:`g_t/(\sqrt{v_t/(1−β_2^t)} + ε)` with γ_t = γ min(1, t/T) (no √(1−β₂ᵗ)
  factor, neither in the step nor in the weights); with no warmup the two
  implementations then give the same iterates.

  Args:
    learning_rate: γ ≥ 0. Injectable.
    b1: β₁ in [0, 1] (the interpolation; Adam's own β₁ is 0). Injectable.
    b2: β₂ in [0, 1). Injectable.
    eps: ε ≥ 0. Injectable.
    weight_decay: λ ≥ 0, applied at y and scaled by γ_t. Injectable.
    weight_lr_power: r ≥ 0. Injectable.
    warmup_steps: T ≥ 0 (static).
    bias_correction: ``"paper"`` or ``"optax"`` (static).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; evaluate at :func:`schedule_free_eval`.

  Example:
    >>> from optlab.optim.schedule_free import schedule_free_adamw
    >>> tx = schedule_free_adamw(2.5e-3, weight_decay=1e-4, warmup_steps=100)

  References:
    A. Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
  """
  where = "schedule_free_adamw"
  v.check_learning_rate(where, learning_rate)
  v.check_decay(where, "b2", b2)
  v.check_non_negative(where, "eps", eps)
  v.check_choice(where, "bias_correction", bias_correction, BIAS_CORRECTIONS)
  _check_int(where, "warmup_steps", warmup_steps, 0)
  warm = warmup_learning_rate(learning_rate, warmup_steps)
  if bias_correction == "paper":
    def rate(count):
      dtype = jnp.promote_types(jnp.result_type(b2), jnp.float32)
      t = jnp.asarray(count, dtype) + 1
      return c.step_size(warm, count) * jnp.sqrt(1 - jnp.asarray(b2, dtype) ** t)

    # The √(1−β₂ᵗ) factor sits in γ_t (for the weights); the direction must not
    # carry it twice, so the step divides by the uncorrected √v_t + ε.
    direction = _scale_by_uncorrected_rms(b2, eps)
  else:
    rate = warm
    direction = scale_by_adam(b1=0.0, b2=b2, eps=eps)
  base = optax.chain(direction, add_weight_decay(weight_decay), c.scale_by_learning_rate(rate))
  return schedule_free(base, rate, b1, weight_lr_power)


def _scale_by_uncorrected_rms(b2: Any, eps: Any) -> optax.GradientTransformation:
  """g_t / (√v_t + ε) with v_t = β₂ v_{t−1} + (1−β₂) g_t², v_0 = 0, no bias correction."""

  def init_fn(params):
    return _RmsState(count=jnp.zeros([], jnp.int32), nu=c.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure("schedule_free_adamw", updates, state.nu, "second-moment buffer")
    nu = jax.tree.map(lambda n, g: b2 * n + (1 - b2) * g * g, state.nu, updates)
    new_updates = jax.tree.map(lambda n, g: c.divide(g, jnp.sqrt(n) + eps), nu, updates)
    return c.cast_like(new_updates, updates), _RmsState(
        count=optax.safe_increment(state.count), nu=c.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)
