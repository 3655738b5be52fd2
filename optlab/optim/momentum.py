"""Gradient descent with momentum: Polyak's heavy ball and Nesterov's accelerated gradient.

Two conventions are in use and they differ whenever the learning rate changes
over time (a schedule); with a constant learning rate they give the same iterates.

* ``velocity_form="paper"`` (the default): the learning rate is inside the velocity,
  as in Polyak (1964), Nesterov (1983) and Sutskever et al. (2013)::

      v_{t+1} = μ v_t − α_t g_t

* ``velocity_form="pytorch"``: the velocity accumulates raw gradients and the
  learning rate multiplies the result, as in ``torch.optim.SGD`` and ``optax.sgd``::

      b_{t+1} = μ b_t + g_t,    u_t = −α_t b_{t+1}

For Nesterov's method the gradient must be taken at the look-ahead point.
optlab, like PyTorch and optax, keeps the look-ahead point φ = θ + μ v as the
parameters (the reformulation of Bengio et al., 2013), so the gradient the user
computes at the parameters is the right one. Sutskever's iterate θ, which is
Nesterov's x_k, is recovered from the state with :func:`nesterov_iterate`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _fusion
from optlab.optim import _validation as v

VelocityForm = Literal["paper", "pytorch"]
VELOCITY_FORMS = ("paper", "pytorch")


class MomentumState(NamedTuple):
  """State of the momentum methods."""

  count: jax.Array  # int32 scalar: updates applied so far
  velocity: optax.Updates  # v (paper form, includes the learning rate) or b (pytorch form)


def _momentum_descent(
    where: str,
    learning_rate: optax.ScalarOrSchedule,
    momentum: float,
    nesterov: bool,
    velocity_form: VelocityForm,
) -> optax.GradientTransformation:
  v.check_learning_rate(where, learning_rate)
  v.check_decay(where, "momentum", momentum)
  v.check_choice(where, "velocity_form", velocity_form, VELOCITY_FORMS)

  def init_fn(params):
    v.check_float_tree(where, params)
    return MomentumState(count=jnp.zeros([], jnp.int32), velocity=c.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.velocity, "momentum buffer")
    v.check_float_tree(where, updates, "updates")
    rate = c.step_size(learning_rate, state.count)
    paper = velocity_form == "paper"

    def accumulate(b, g):  # paper: v ← μ v − α g;  pytorch: b ← μ b + g
      return momentum * b - rate * g if paper else momentum * b + g

    def direction(b, g):  # the update from the new velocity
      if paper:  # heavy ball: u = v;  Nesterov (look-ahead): u = μ v − α g
        return momentum * b - rate * g if nesterov else b
      return -rate * (g + momentum * b) if nesterov else -rate * b  # u = −α (g + μ b) or −α b

    velocity = jax.tree.map(accumulate, state.velocity, updates)
    if _fusion.single_pass_updates():
      # XLA:CPU with multi-output fusion: the update recomputed from the old velocity
      # is a sibling of v' (the barrier keeps CSE from merging it back), so v' and
      # θ + u become one loop over memory (see optlab.optim._fusion).
      old_velocity, grads = jax.lax.optimization_barrier((state.velocity, updates))
      recomputed = jax.tree.map(accumulate, old_velocity, grads)
      new_updates = jax.tree.map(direction, recomputed, grads)
    else:
      new_updates = jax.tree.map(direction, velocity, updates)
    new_updates = c.cast_like(new_updates, updates)
    velocity = c.cast_like(velocity, state.velocity)
    return new_updates, MomentumState(count=optax.safe_increment(state.count), velocity=velocity)

  return optax.GradientTransformation(init_fn, update_fn)


def heavy_ball(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    momentum: float = 0.9,
    *,
    velocity_form: VelocityForm = "paper",
) -> optax.GradientTransformation:
  r"""Polyak's heavy-ball method (gradient descent with momentum).

  .. math::
     θ_{t+1} = θ_t − α_t ∇f(θ_t) + μ (θ_t − θ_{t−1})

  written with a velocity :math:`v_{t+1} = μ v_t − α_t g_t`, :math:`θ_{t+1} = θ_t + v_{t+1}`.
  On a quadratic with curvature in :math:`[μ_f, L]`, the optimal constants are
  :math:`α = 4/(\sqrt{L}+\sqrt{μ_f})^2` and :math:`μ = ((\sqrt{κ}−1)/(\sqrt{κ}+1))^2`,
  which give the linear rate :math:`(\sqrt{κ}−1)/(\sqrt{κ}+1)`.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    momentum: μ in [0, 1).
    velocity_form: ``"paper"`` keeps α inside the velocity (Polyak's form);
      ``"pytorch"`` accumulates raw gradients, then multiplies by α_t, as in
      ``torch.optim.SGD(momentum=μ)`` and ``optax.sgd(momentum=μ)``. They differ
      only when α changes over time.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax, optlab
    >>> tx = optlab.optim.heavy_ball(0.1, momentum=0.5)
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> updates, state = tx.update(2 * params, state)
    >>> params = optax.apply_updates(params, updates)

  References:
    B. T. Polyak, "Some methods of speeding up the convergence of iteration
    methods", USSR Computational Mathematics and Mathematical Physics, 1964.
  """
  return _momentum_descent("heavy_ball", learning_rate, momentum, False, velocity_form)


def nesterov(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    momentum: float = 0.9,
    *,
    velocity_form: VelocityForm = "paper",
) -> optax.GradientTransformation:
  r"""Nesterov's accelerated gradient, in Sutskever et al.'s (2013) velocity form.

  .. math::
     v_{t+1} = μ v_t − α_t ∇f(θ_t + μ v_t), \qquad θ_{t+1} = θ_t + v_{t+1}

  which is Nesterov's (1983) constant-momentum method for strongly convex
  functions (θ_t is his x_k, θ_t + μ v_t his y_k). The gradient is taken at the
  look-ahead point, so the parameters this transform updates are
  :math:`φ_t = θ_t + μ v_t`, and the update is :math:`φ_{t+1} − φ_t = μ v_{t+1} − α_t g_t`
  (Bengio et al., 2013). :func:`nesterov_iterate` recovers θ_t from φ_t and the state.

  On a quadratic, α = 1/L and μ = (√κ−1)/(√κ+1) give the rate 1 − 1/√κ.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    momentum: μ in [0, 1).
    velocity_form: ``"paper"`` (α inside the velocity, as above) or ``"pytorch"``
      (``b ← μ b + g``, ``u = −α_t (g + μ b)``, as ``torch.optim.SGD(nesterov=True)``
      and ``optax.sgd(nesterov=True)``). Equal iterates under a constant α.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> tx = optlab.optim.nesterov(0.1, momentum=0.9)
    >>> state = tx.init(jnp.zeros(3))

  References:
    Y. Nesterov, "A method for solving the convex programming problem with
    convergence rate O(1/k^2)", Soviet Mathematics Doklady, 1983.
    I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of
    initialization and momentum in deep learning", ICML 2013.
  """
  return _momentum_descent("nesterov", learning_rate, momentum, True, velocity_form)


def nesterov_iterate(params: Any, state: MomentumState, momentum: float) -> Any:
  """Returns Sutskever's iterate θ = φ − μ v from the look-ahead parameters φ.

  Only defined for ``velocity_form="paper"``, where the velocity carries the
  learning rate. ``state`` is the :class:`MomentumState` of :func:`nesterov`.
  """
  return jax.tree.map(lambda p, b: p - momentum * b, params, state.velocity)


def sgd(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    momentum: float = 0.0,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformation:
  r"""Stochastic gradient descent, with the conventions of ``torch.optim.SGD``.

  .. math::
     b_{t+1} = μ b_t + g_t, \qquad u_t = −α_t\,(g_t + μ b_{t+1} \text{ if Nesterov else } b_{t+1})

  With ``momentum=0`` this is plain SGD, :math:`θ_{t+1} = θ_t − α_t g_t` (Robbins
  & Monro, 1951). For the paper forms of the momentum methods use
  :func:`heavy_ball` and :func:`nesterov`.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    momentum: μ in [0, 1).
    nesterov: use Nesterov momentum (requires momentum > 0 to make a difference).

  Returns:
    An ``optax.GradientTransformation``.

  References:
    H. Robbins, S. Monro, "A stochastic approximation method", Annals of
    Mathematical Statistics, 1951.
  """
  return _momentum_descent("sgd", learning_rate, momentum, nesterov, "pytorch")


class GradientDescentState(NamedTuple):
  count: jax.Array  # int32 scalar


def gd(learning_rate: optax.ScalarOrSchedule = 0.1) -> optax.GradientTransformation:
  r"""Full-batch gradient descent, :math:`θ_{t+1} = θ_t − α_t ∇f(θ_t)`.

  Identical to :func:`sgd` without momentum; it has its own name because the
  full-batch method is the one whose rates are analysed (on a quadratic with
  curvature in [μ, L], α = 2/(L+μ) gives the rate (κ−1)/(κ+1), κ = L/μ).

  Args:
    learning_rate: α ≥ 0, a number or a schedule.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> tx = optlab.optim.gd(0.5)
    >>> updates, _ = tx.update(jnp.array([2.0]), tx.init(jnp.array([1.0])))
    >>> float(updates[0])
    -1.0

  References:
    A. Cauchy, "Méthode générale pour la résolution des systèmes d'équations
    simultanées", Comptes Rendus, 1847.
  """
  v.check_learning_rate("gd", learning_rate)
  return c.scale_by_learning_rate(learning_rate)
