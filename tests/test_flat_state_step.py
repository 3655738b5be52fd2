"""FlatStateStep: the jitted step of fit's Python loop, called with the state as a flat list."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab import models
from optlab.train import TrainState, learning_rate_scale, split_model
from optlab.train import steps as steps_lib


def _setup():
  model = models.MLP(6, [16], 3, rngs=nnx.Rngs(0))
  tx = optax.chain(optax.adam(1e-2), learning_rate_scale())
  graphdef, _, params, rest = split_model(model)
  step = steps_lib.make_train_step(graphdef, tx, steps_lib.cross_entropy)

  def state():
    return jax.tree.map(jnp.copy, TrainState(jnp.zeros([], jnp.int32), params, rest,
                                             tx.init(params), jnp.zeros([], jnp.int32)))

  rng = np.random.default_rng(0)
  batches = [(jnp.asarray(rng.normal(size=(8, 6)), jnp.float32),
              jnp.asarray(rng.integers(0, 3, 8), jnp.int32)) for _ in range(4)]
  return step, state, batches


def test_flat_steps_equal_tree_steps_bit_for_bit_and_rebuild_the_state():
  step, state, batches = _setup()
  batches[2] = (batches[2][0].at[0, 0].set(jnp.nan), batches[2][1])  # one skipped step
  tree_step = jax.jit(step, donate_argnums=(0,))
  flat = steps_lib.FlatStateStep(step, state())
  tree_state, leaves = state(), flat.flatten(state())
  for x, y in batches:
    tree_state, tree_loss = tree_step(tree_state, x, y)
    leaves, flat_loss = flat(leaves, x, y)
    np.testing.assert_array_equal(tree_loss, flat_loss)
  rebuilt = flat.unflatten(leaves)
  assert jax.tree.structure(rebuilt) == jax.tree.structure(tree_state)
  jax.tree.map(np.testing.assert_array_equal, rebuilt, tree_state)
  assert int(flat.step_count(leaves)) == 4 and int(rebuilt.skipped) == 1


def test_flat_step_donates_the_state_and_compiles_once():
  step, state, batches = _setup()
  flat = steps_lib.FlatStateStep(step, state())
  leaves = flat.flatten(state())
  first = leaves
  for x, y in batches:
    leaves, _ = flat(leaves, x, y)
  assert all(leaf.is_deleted() for leaf in first)  # donated, as the tree step's state
  assert flat._jitted._cache_size() == 1
