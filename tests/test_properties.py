"""Property tests (Hypothesis) of optimizer invariants, over optlab's classic optimizers.

For hyperparameters drawn from each optimizer's registry search space (rounded to
float32, so that the injected and the plain optimizer see the same numbers), random
parameters and random gradient sequences:

* a zero gradient leaves the parameters unchanged;
* the adaptive methods (Adam and its family, RMSProp, AdaGrad) are invariant to a
  positive rescaling of all the gradients, up to ε;
* ``optax.chain`` with ``optax.identity`` equals the optimizer alone;
* ``inject_hyperparams`` with constant values equals the plain optimizer;
* ``jax.jit`` and eager execution agree;
* the optimizer state survives a round trip through a checkpoint unchanged, and
  training continues from it exactly.

One jitted trajectory per optimizer (hyperparameters injected, so every example
reuses one compilation) keeps the file to seconds.
"""

from __future__ import annotations

import functools
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from optlab import optim
from optlab.optim.space import LogUniform, Uniform
from optlab.train.checkpoint import Checkpointer

CLASSIC = ("sgd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "amsgrad",
           "adamax", "nadam", "radam", "adadelta")
# Their direction depends on gradients only through ratios such as m / √v.
SCALE_INVARIANT = ("adagrad", "rmsprop", "adam", "adamw", "amsgrad", "adamax", "nadam")
SHAPES = {"b": (2,), "w": (3, 2)}
STEPS = 3

PROPERTY_SETTINGS = settings(max_examples=5, deadline=None, database=None, derandomize=True)
CHECKPOINT_SETTINGS = settings(max_examples=2, deadline=None, database=None, derandomize=True)

_values = st.floats(-2.0, 2.0, width=32, allow_subnormal=False)
_nonzero = st.one_of(st.floats(-2.0, -0.0625, width=32), st.floats(0.0625, 2.0, width=32))


def _tree(elements, leading=()):
  return st.fixed_dictionaries({
    k: hnp.arrays(np.float32, (*leading, *shape), elements=elements) for k, shape in SHAPES.items()
  })


@st.composite
def _hyperparams(draw, name: str) -> dict[str, float]:
  """A point of the registry's search space, every value exactly a float32."""
  space = optim.info(name).search_space
  point = {}
  for arg, dim in space.items():
    if isinstance(dim, (LogUniform, Uniform)):
      u = draw(st.floats(0.0, 1.0))
      point[arg] = float(np.float32(dim.from_unit(u)))
  return point


@functools.cache
def _injected(name: str) -> optax.GradientTransformation:
  return optim.get(name, inject=True)


def _trajectory(tx, params, grads, hyperparams=None):
  """Parameters after one step per leading index of `grads`, and the final state."""
  state = tx.init(params)
  if hyperparams is not None:
    values = {k: jnp.asarray(v, jnp.float32) for k, v in hyperparams.items()}
    state = state._replace(hyperparams={**state.hyperparams, **values})
  for i in range(STEPS):
    g = jax.tree.map(lambda x, i=i: x[i], grads)
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@functools.cache
def _jitted(name: str):
  return jax.jit(functools.partial(_trajectory, _injected(name)))


def _close(actual, expected, rtol=1e-5, atol=1e-6):
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def _equal(actual, expected):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def _example(name: str, nonzero: bool = False):
  """(hyperparameters, parameters, one gradient per step)."""
  grads = _tree(_nonzero if nonzero else _values, (STEPS,))
  return st.tuples(_hyperparams(name), _tree(_values), grads)


@pytest.mark.parametrize("name", CLASSIC)
def test_zero_gradient_leaves_parameters_unchanged(name):
  @PROPERTY_SETTINGS
  @given(hyperparams=_hyperparams(name), params=_tree(_values))
  def check(hyperparams, params):
    hyperparams = {**hyperparams, "weight_decay": 0.0} if name == "adamw" else hyperparams
    zeros = jax.tree.map(lambda p: jnp.zeros((STEPS, *p.shape), p.dtype), params)
    final, _ = _jitted(name)(params, zeros, hyperparams)
    _equal(final, params)

  check()


@pytest.mark.parametrize("name", SCALE_INVARIANT)
def test_update_is_invariant_to_gradient_scale(name):
  @PROPERTY_SETTINGS
  @given(example=_example(name, nonzero=True), scale=st.floats(1e-2, 1e2))
  def check(example, scale):
    hyperparams, params, grads = example
    hyperparams = {**hyperparams, "eps": 1e-12}  # the invariance holds up to ε
    base, _ = _jitted(name)(params, grads, hyperparams)
    scaled_grads = jax.tree.map(lambda g: g * np.float32(scale), grads)
    scaled, _ = _jitted(name)(params, scaled_grads, hyperparams)
    lr = hyperparams["learning_rate"]
    delta = jax.tree.map(jnp.subtract, base, params)
    scaled_delta = jax.tree.map(jnp.subtract, scaled, params)
    _close(scaled_delta, delta, rtol=1e-3, atol=1e-5 * lr + 1e-6)

  check()


@pytest.mark.parametrize("name", CLASSIC)
def test_chain_with_identity_equals_the_optimizer(name):
  @PROPERTY_SETTINGS
  @given(example=_example(name))
  def check(example):
    hyperparams, params, grads = example
    tx = optim.get(name, **hyperparams)
    alone, _ = _trajectory(tx, params, grads)
    before, _ = _trajectory(optax.chain(optax.identity(), tx), params, grads)
    after, _ = _trajectory(optax.chain(tx, optax.identity()), params, grads)
    _equal(before, alone)
    _equal(after, alone)

  check()


@pytest.mark.parametrize("name", CLASSIC)
def test_injected_constant_hyperparameters_equal_the_plain_optimizer(name):
  @PROPERTY_SETTINGS
  @given(example=_example(name))
  def check(example):
    hyperparams, params, grads = example
    plain, _ = _trajectory(optim.get(name, **hyperparams), params, grads)
    injected, _ = _trajectory(optim.get(name, inject=True, **hyperparams), params, grads)
    _close(injected, plain)

  check()


@pytest.mark.parametrize("name", CLASSIC)
def test_jit_and_eager_agree(name):
  @PROPERTY_SETTINGS
  @given(example=_example(name))
  def check(example):
    hyperparams, params, grads = example
    compiled, compiled_state = _jitted(name)(params, grads, hyperparams)
    eager, eager_state = _trajectory(_injected(name), params, grads, hyperparams)
    _close(compiled, eager)
    _close(compiled_state, eager_state)

  check()


@pytest.mark.parametrize("name", CLASSIC)
def test_state_survives_a_checkpoint_round_trip(name):
  @CHECKPOINT_SETTINGS
  @given(example=_example(name), last=_tree(_values))
  def check(example, last):
    hyperparams, params, grads = example
    tx = optim.get(name, **hyperparams)
    params, state = _trajectory(tx, params, grads)
    with tempfile.TemporaryDirectory() as directory:
      checkpointer = Checkpointer(directory, keep=1)
      checkpointer.save(0, {"params": params, "opt_state": state}, {"epoch": 0}, {})
      restored, record = checkpointer.restore({"params": params, "opt_state": state})
      checkpointer.close()
    assert record == {"epoch": 0}
    _equal(restored, {"params": params, "opt_state": state})
    continued = tx.update(last, restored["opt_state"], restored["params"])
    _equal(continued, tx.update(last, state, params))

  check()
