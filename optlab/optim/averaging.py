"""Averages of the parameters: EMA and SWA (Polyak–Juditsky / Izmailov et al.), for evaluation.

An optimizer's iterates θ_0, θ_1, … wander around a minimum; their average often
sits lower and in a wider basin (Polyak & Juditsky 1992; Izmailov et al. 2018).
The transforms here keep such an average *beside* any optimizer: they pass the
updates through unchanged and only observe the parameters, so training follows
the base optimizer exactly, and :func:`averaged_params` gives the average to
evaluate, e.g. ``optlab.train.fit(..., evaluate_at=averaged_params)``.

How the average stays exact: at the update that leads from θ_t to θ_{t+1}, the
transform folds θ_t (the parameters it is given) into its state, so the state
holds the average of θ_0 … θ_{t−1}; :func:`averaged_params` folds in the current
θ_t. Nothing assumes which updates are finally applied, so the average is right
whatever follows in a chain (clipping, a learning-rate scale set by a callback).
Always pass the current parameters with the state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _validation as v


class EmaParamsState(NamedTuple):
  """State of :func:`ema_params`."""

  count: jax.Array  # int32: iterates folded in so far (θ_0 … θ_{count−1})
  decay: jax.Array  # β of the last update (float32, or float64 for float64 params)
  debias: jax.Array  # bool scalar
  ema: optax.Params  # E_{count−1} (debias=False) or the zero-started sum (debias=True)


class SwaParamsState(NamedTuple):
  """State of :func:`swa_params`."""

  count: jax.Array  # int32: iterates seen so far (θ_0 … θ_{count−1})
  num_averaged: jax.Array  # int32: how many of them are in `mean`
  start_step: jax.Array  # int32 scalar s_0
  every_k: jax.Array  # int32 scalar k
  mean: optax.Params  # equal-weight mean of the averaged iterates (the params before any)


def find_state(opt_state: Any, types: type | tuple[type, ...], where: str) -> Any:
  """The one state of type `types` inside a nested optimizer state.

  Looks through chains (tuples), ``optax.inject_hyperparams`` states, wrapper
  states and dicts (``optax.multi_transform``), anything that is a pytree.

  Args:
    opt_state: an optimizer state, however nested.
    types: the state class (or classes) to find.
    where: the caller, for error messages.

  Returns:
    The state found.

  Raises:
    ValueError: when there is none, or more than one.
  """
  found = [
      s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, types))
      if isinstance(s, types)
  ]
  names = (" or ".join(dict.fromkeys(t.__name__ for t in types)) if isinstance(types, tuple)
           else types.__name__)
  if not found:
    raise ValueError(
        f"{where}: the optimizer state holds no {names}; got a state of structure "
        f"{jax.tree.structure(opt_state)}. Pass the state of the optimizer built with "
        "the matching wrapper (it may be nested in chains or inject_hyperparams)."
    )
  if len(found) > 1:
    raise ValueError(
        f"{where}: the optimizer state holds {len(found)} {names} states; which one to "
        "use is ambiguous. Call it on the sub-state you mean."
    )
  return found[0]


def _compute_dtype(x: Any) -> Any:
  return jnp.promote_types(jnp.result_type(x), jnp.float32)


def scalar_dtype(params: Any) -> Any:
  """float32, or float64 when a parameter is float64: the dtype of scalar state entries."""
  leaves = jax.tree.leaves(params)
  return jnp.result_type(jnp.float32, *[jnp.result_type(p) for p in leaves])


def _state_tree(params: Any, state_dtype: Any) -> Any:
  if state_dtype is None:
    return jax.tree.map(lambda p: jnp.array(p, copy=True), params)
  return jax.tree.map(lambda p: jnp.asarray(p).astype(state_dtype), params)


def _check_params(where: str, params: Any, reference: Any) -> None:
  if params is None:
    raise ValueError(f"{where}: update needs params (the current iterate) to average them; "
                     "call tx.update(grads, state, params)")
  v.check_same_structure(where, params, reference, "average")


def ema_params(
    decay: float = 0.999,
    *,
    debias: bool = False,
    state_dtype: Any = None,
) -> optax.GradientTransformation:
  r"""Keeps an exponential moving average of the parameters; the updates pass unchanged.

  With iterates θ_0, θ_1, … (θ_0 the initial parameters):

  .. math::
     E_0 = θ_0, \qquad E_t = β E_{t−1} + (1−β) θ_t

  or, with ``debias=True``, the zero-started average divided by its total weight
  (as Adam's bias correction),
  :math:`\hat E_t = (1−β) \sum_{k=0}^{t} β^{t−k} θ_k \,/\, (1 − β^{t+1})`.
  The state holds the average up to θ_{t−1}; :func:`averaged_params` returns
  E_t from it and the current θ_t (see the module docstring).

  Args:
    decay: β in [0, 1); the average spans ~1/(1−β) iterates. Injectable.
    debias: start from zero and divide by 1 − β^{t+1}, instead of starting at θ_0.
    state_dtype: dtype of the average (default: each parameter's own). Use
      ``jnp.float32`` for bfloat16 parameters: a bfloat16 average cannot resolve
      the small changes (1−β)(θ − E).

  Returns:
    An ``optax.GradientTransformation`` whose update needs ``params``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from optlab.optim.averaging import averaged_params, ema_params
    >>> tx = optax.chain(optax.sgd(0.1), ema_params(0.9))
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> updates, state = tx.update(2 * params, state, params)
    >>> params = optax.apply_updates(params, updates)
    >>> averaged_params(params, state)  # 0.9 · 1.0 + 0.1 · 0.8
    Array([0.98], dtype=float32)

  References:
    B. T. Polyak, A. B. Juditsky, "Acceleration of stochastic approximation by
    averaging", SIAM J. Control Optim., 1992; A. Tarvainen, H. Valpola, "Mean
    teachers are better role models", NeurIPS 2017 (EMA of weights).
  """
  where = "ema_params"
  v.check_decay(where, "decay", decay)

  def init_fn(params):
    v.check_float_tree(where, params)
    ema = _state_tree(params, state_dtype)
    if debias:
      ema = jax.tree.map(jnp.zeros_like, ema)
    return EmaParamsState(count=jnp.zeros([], jnp.int32),
                          decay=jnp.asarray(decay, scalar_dtype(params)),
                          debias=jnp.asarray(debias), ema=ema)

  def update_fn(updates, state, params=None):
    v.check_same_structure(where, updates, state.ema, "average")
    _check_params(where, params, state.ema)
    ema = jax.tree.map(lambda e, p: _ema_step(e, p, decay), state.ema, params)
    return updates, EmaParamsState(count=optax.safe_increment(state.count),
                                   decay=jnp.asarray(decay, state.decay.dtype),
                                   debias=state.debias, ema=ema)

  return optax.GradientTransformation(init_fn, update_fn)


def _ema_step(e: jax.Array, p: jax.Array, decay: Any) -> jax.Array:
  """E + (1−β)(θ − E): equal to βE + (1−β)θ, and exactly E when θ = E."""
  dtype = _compute_dtype(e)
  e32 = e.astype(dtype)
  return (e32 + (1 - jnp.asarray(decay, dtype)) * (p.astype(dtype) - e32)).astype(e.dtype)


def _swa_included(count: jax.Array, start_step: Any, every_k: Any) -> jax.Array:
  return (count >= start_step) & ((count - start_step) % every_k == 0)


def swa_params(
    start_step: int = 0,
    every_k: int = 1,
    *,
    state_dtype: Any = None,
) -> optax.GradientTransformation:
  r"""Keeps the equal-weight average of the iterates θ_s for s ≥ start, every k steps.

  .. math::
     \bar θ_t = \frac{1}{|S_t|} \sum_{s \in S_t} θ_s, \qquad
     S_t = \{s ≤ t : s ≥ s_0,\ (s − s_0) \bmod k = 0\}

  This is Stochastic Weight Averaging (Izmailov et al. 2018, Algorithm 1: from
  epoch s_0 on, average the weights at the end of every cycle of c = k steps;
  the cyclic or constant learning rate is the base optimizer's own schedule),
  and Polyak–Juditsky averaging with k = 1. The mean is updated as
  :math:`\bar θ ← \bar θ + (θ_s − \bar θ)/(n+1)`. Before the first averaged
  iterate, :func:`averaged_params` returns the current iterate.

  Args:
    start_step: s_0 ≥ 0, the first averaged iterate (θ_0 is the initial parameters,
      θ_t those after t updates).
    every_k: k ≥ 1 (the cycle length c of the paper, in steps).
    state_dtype: dtype of the mean (default: each parameter's own).

  Returns:
    An ``optax.GradientTransformation`` whose update needs ``params``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from optlab.optim.averaging import averaged_params, swa_params
    >>> tx = optax.chain(optax.sgd(0.5), swa_params(start_step=1))
    >>> params = jnp.array([4.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):  # θ = 4 → 2 → 1
    ...   updates, state = tx.update(params, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> averaged_params(params, state)  # (θ_1 + θ_2) / 2
    Array([1.5], dtype=float32)

  References:
    P. Izmailov, D. Podoprikhin, T. Garipov, D. Vetrov, A. G. Wilson, "Averaging
    Weights Leads to Wider Optima and Better Generalization", UAI 2018.
    B. T. Polyak, A. B. Juditsky, SIAM J. Control Optim., 1992.
  """
  where = "swa_params"
  _check_int(where, "start_step", start_step, 0)
  _check_int(where, "every_k", every_k, 1)

  def init_fn(params):
    v.check_float_tree(where, params)
    return SwaParamsState(count=jnp.zeros([], jnp.int32), num_averaged=jnp.zeros([], jnp.int32),
                          start_step=jnp.asarray(start_step, jnp.int32),
                          every_k=jnp.asarray(every_k, jnp.int32),
                          mean=_state_tree(params, state_dtype))

  def update_fn(updates, state, params=None):
    v.check_same_structure(where, updates, state.mean, "average")
    _check_params(where, params, state.mean)
    include = _swa_included(state.count, start_step, every_k)
    mean = jax.tree.map(lambda m, p: _swa_fold(m, p, state.num_averaged, include),
                        state.mean, params)
    return updates, state._replace(
        count=optax.safe_increment(state.count),
        num_averaged=state.num_averaged + include.astype(jnp.int32),
        mean=mean,
    )

  return optax.GradientTransformation(init_fn, update_fn)


def _swa_fold(mean: jax.Array, p: jax.Array, n: jax.Array, include: jax.Array) -> jax.Array:
  """m + (θ − m)/(n+1) where `include`, else m; the first fold gives θ exactly."""
  dtype = _compute_dtype(mean)
  m = mean.astype(dtype)
  folded = m + (p.astype(dtype) - m) / (n + 1).astype(dtype)
  folded = jnp.where(n == 0, p.astype(dtype), folded)
  return jnp.where(include, folded, m).astype(mean.dtype)


def _check_int(where: str, name: str, value: Any, minimum: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int):
    raise TypeError(f"{where}: {name} must be an int ≥ {minimum}, got {value!r}")
  if value < minimum:
    raise ValueError(f"{where}: {name} must be an int ≥ {minimum}, got {value}")


def ema(
    base: optax.GradientTransformation,
    decay: float = 0.999,
    *,
    debias: bool = False,
    state_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """`base`, with an exponential moving average of its iterates (:func:`ema_params`).

  ``optax.chain(base, ema_params(decay, ...))``: training is exactly `base`'s;
  evaluate at :func:`averaged_params`.

  Args:
    base: any optax transformation (e.g. ``optlab.optim.sgd(0.1)``).
    decay: β in [0, 1).
    debias: see :func:`ema_params`.
    state_dtype: see :func:`ema_params`.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optlab
    >>> from optlab.optim.averaging import ema
    >>> tx = ema(optlab.optim.adam(1e-3), decay=0.99)

  References:
    B. T. Polyak, A. B. Juditsky, SIAM J. Control Optim., 1992.
  """
  return optax.chain(base, ema_params(decay, debias=debias, state_dtype=state_dtype))


def swa(
    base: optax.GradientTransformation,
    start_step: int = 0,
    every_k: int = 1,
    *,
    state_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """`base`, with the SWA average of its iterates (:func:`swa_params`).

  ``optax.chain(base, swa_params(start_step, every_k))``; give `base` the cyclic
  or constant learning-rate schedule of the paper if wanted.

  Args:
    base: any optax transformation.
    start_step: the first averaged iterate.
    every_k: average every k-th iterate from there.
    state_dtype: see :func:`swa_params`.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optlab
    >>> from optlab.optim.averaging import swa
    >>> tx = swa(optlab.optim.sgd(0.05, momentum=0.9), start_step=1000, every_k=100)

  References:
    P. Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
    Generalization", UAI 2018.
  """
  return optax.chain(base, swa_params(start_step, every_k, state_dtype=state_dtype))


def averaged_params(params: Any, opt_state: Any) -> Any:
  """The SWA or EMA average including the current iterate, found anywhere in `opt_state`.

  The signature of ``optlab.train.fit(..., evaluate_at=averaged_params)``.

  Args:
    params: the current parameters θ_t (those the state was last updated to).
    opt_state: the state of an optimizer holding one :func:`ema_params` or
      :func:`swa_params` (through :func:`ema`, :func:`swa`, a chain, the registry's
      ``"ema"``/``"swa"``, ``inject_hyperparams`` ...).

  Returns:
    The average, with the dtypes of `params`.
  """
  where = "averaged_params"
  state = find_state(opt_state, (EmaParamsState, SwaParamsState), where)
  if isinstance(state, EmaParamsState):
    return _ema_average(params, state, where)
  reference = state.mean
  _check_params(where, params, reference)
  include = _swa_included(state.count, state.start_step, state.every_k)
  n = state.num_averaged

  def one(m, p):
    dtype = _compute_dtype(m)
    m32, p32 = m.astype(dtype), p.astype(dtype)
    folded = jnp.where(n == 0, p32, m32 + (p32 - m32) / (n + 1).astype(dtype))
    current = jnp.where(n == 0, p32, m32)
    return jnp.where(include, folded, current).astype(p.dtype)

  return jax.tree.map(one, reference, params)


def _ema_average(params: Any, state: EmaParamsState, where: str) -> Any:
  """E_t = E_{t−1} + (1−β)(θ_t − E_{t−1}), divided by 1 − β^{t+1} when debiased."""
  _check_params(where, params, state.ema)

  def one(e, p):
    dtype = _compute_dtype(e)
    decay = state.decay.astype(dtype)
    average = _ema_step(e.astype(dtype), p, decay)
    correction = 1 - decay ** (state.count + 1).astype(dtype)
    return jnp.where(state.debias, average / correction, average).astype(p.dtype)

  return jax.tree.map(one, state.ema, params)
