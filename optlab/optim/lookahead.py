"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019): k steps forward, one step back."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _validation as v
from optlab.optim.averaging import _check_int, find_state


class LookaheadState(NamedTuple):
  """State of :func:`lookahead`."""

  count: jax.Array  # int32: fast steps taken so far
  slow: optax.Params  # φ, the slow weights (the parameters' dtypes)
  base_state: optax.OptState  # the inner (fast) optimizer's state


def lookahead(
    base: optax.GradientTransformation,
    sync_period: int = 5,
    slow_step_size: float = 0.5,
    *,
    reset_state: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""Lookahead over any optimizer, with the fast weights as the parameters.

  Algorithm 1 of the paper, with inner optimizer A (`base`), k = `sync_period`
  and α = `slow_step_size`:

  .. math::
     &\text{for } t = 1, 2, \dots: \quad θ_{t,0} ← φ_{t−1} \\
     &\quad θ_{t,i} ← θ_{t,i−1} + A(L, θ_{t,i−1}), \quad i = 1 … k \\
     &\quad φ_t ← φ_{t−1} + α (θ_{t,k} − φ_{t−1})

  The parameters are the fast weights θ, as for any optimizer; the slow weights
  φ live in the state. Each update is the inner step, except every k-th, whose
  update moves the parameters to φ + α(θ_{t,k} − φ) (and φ with them), so the
  next cycle starts from the new slow weights. ``optax.lookahead`` computes the
  same iterates but needs ``LookaheadParams(fast, slow)`` as the parameters.
  The inner optimizer's state carries over across synchronizations (as in
  ``optax.lookahead``); ``reset_state=True`` re-initializes it at each one.

  Evaluate at the slow weights with :func:`lookahead_slow_params`.

  Args:
    base: the inner optimizer A (any optax transformation; extra update
      arguments are passed to it).
    sync_period: k ≥ 1, fast steps per slow step (static).
    slow_step_size: α in [0, 1]; α = 1 is the inner optimizer alone. Injectable.
    reset_state: re-initialize the inner optimizer's state at each synchronization.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose update needs ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, optlab
    >>> from optlab.optim.lookahead import lookahead, lookahead_slow_params
    >>> tx = lookahead(optlab.optim.sgd(0.1), sync_period=2, slow_step_size=0.5)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):  # θ: 1 → 0.8 → 0.64, then back to φ = 1 + 0.5 (0.64 − 1)
    ...   updates, state = tx.update(2 * params, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> params, lookahead_slow_params(params, state)
    (Array([0.82], dtype=float32), Array([0.82], dtype=float32))

  References:
    M. R. Zhang, J. Lucas, G. Hinton, J. Ba, "Lookahead Optimizer: k steps
    forward, 1 step back", NeurIPS 2019.
  """
  where = "lookahead"
  _check_int(where, "sync_period", sync_period, 1)
  v.check_range(where, "slow_step_size", slow_step_size, 0.0, 1.0)
  if not isinstance(base, optax.GradientTransformation):
    raise TypeError(f"{where}: base must be an optax.GradientTransformation, got "
                    f"{type(base).__name__}")
  inner = optax.with_extra_args_support(base)

  def init_fn(params):
    v.check_float_tree(where, params)
    return LookaheadState(count=jnp.zeros([], jnp.int32),
                          slow=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
                          base_state=inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    v.check_same_structure(where, updates, state.slow, "slow weights")
    if params is None:
      raise ValueError(f"{where}: update needs params (the fast weights); call "
                       "tx.update(grads, state, params)")
    v.check_same_structure(where, params, state.slow, "slow weights")
    inner_updates, base_state = inner.update(updates, state.base_state, params, **extra_args)
    count = optax.safe_increment(state.count)
    sync = count % sync_period == 0

    def step(u, p, phi):
      dtype = jnp.promote_types(jnp.result_type(p), jnp.float32)
      phi32 = phi.astype(dtype)
      fast = p.astype(dtype) + u.astype(dtype)
      new_slow = phi32 + jnp.asarray(slow_step_size, dtype) * (fast - phi32)
      new_update = jnp.where(sync, new_slow - p.astype(dtype), u.astype(dtype))
      return new_update.astype(u.dtype), jnp.where(sync, new_slow, phi32).astype(phi.dtype)

    pairs = jax.tree.map(step, inner_updates, params, state.slow)
    treedef = jax.tree.structure(state.slow)
    new_updates, slow = (jax.tree.unflatten(treedef, xs) for xs in zip(
        *treedef.flatten_up_to(pairs), strict=True))
    if reset_state:
      fresh = inner.init(params)
      base_state = jax.tree.map(lambda s, f: jnp.where(sync, f, s), base_state, fresh)
    return new_updates, LookaheadState(count=count, slow=slow, base_state=base_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lookahead_slow_params(params: Any, opt_state: Any) -> Any:
  """The slow weights φ of a :func:`lookahead` state, found anywhere in `opt_state`.

  The signature of ``optlab.train.fit(..., evaluate_at=lookahead_slow_params)``.
  Right after a synchronization they equal the parameters.

  Args:
    params: the current parameters (used for their tree structure and dtypes).
    opt_state: a state holding one :class:`LookaheadState` (nested in chains or
      ``inject_hyperparams`` is fine).

  Returns:
    φ, with the dtypes of `params`.
  """
  where = "lookahead_slow_params"
  state = find_state(opt_state, LookaheadState, where)
  v.check_same_structure(where, params, state.slow, "slow weights")
  return jax.tree.map(lambda p, s: s.astype(jnp.result_type(p)), params, state.slow)
