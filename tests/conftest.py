"""Test configuration: strict JAX and fresh PRNG keys (as in equinox and optimistix)."""

import itertools

import jax
import pytest

# Implicit rank promotion hides shape bugs (a (n,) array meeting an (n, 1) one);
# make it an error everywhere in the tests.
jax.config.update("jax_numpy_rank_promotion", "raise")

_counter = itertools.count()


@pytest.fixture
def getkey():
  """Returns a function that hands out a new, deterministic PRNG key at each call."""
  base = jax.random.key(0)

  def _getkey():
    return jax.random.fold_in(base, next(_counter))

  return _getkey


@pytest.fixture
def key(getkey):
  return getkey()
