"""The Feistel index shuffle behind every epoch order: a bijection, deterministic, uniform."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import data
from optlab.data.index_shuffle import domain_bits, feistel_permute, index_shuffle
from optlab.train import steps

# χ² 99.9% quantiles (scipy.stats.chi2.ppf(0.999, df)), fixed here so the test needs no scipy.
CHI2_999 = {4: 18.47, 16: 39.25, 23: 49.73, 49: 85.35, 81: 126.9, 225: 304.9}


def _perms(n, count, seed=0):
  keys = jax.random.split(jax.random.key(seed), count)
  return np.asarray(jax.jit(jax.vmap(lambda k: index_shuffle(k, n)))(keys))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 256, 257, 1797, 4096, 60000])
def test_is_a_permutation_of_range_n(n):
  p = np.asarray(index_shuffle(jax.random.key(3), n))
  assert p.dtype == np.int32 and p.shape == (n,)
  np.testing.assert_array_equal(np.sort(p), np.arange(n))


@pytest.mark.parametrize("bits", [8, 9, 11, 16])
def test_feistel_network_is_a_bijection_of_its_domain(bits):
  round_keys = jax.random.bits(jax.random.key(1), (8,), jnp.uint32)
  images = np.asarray(feistel_permute(jnp.arange(2**bits, dtype=jnp.uint32), round_keys, bits))
  np.testing.assert_array_equal(np.sort(images), np.arange(2**bits))
  assert not np.array_equal(images, np.arange(2**bits))


def test_domain_is_at_most_twice_n():
  for n in (1, 100, 256, 257, 1797, 2**20 + 1):
    assert 2 ** domain_bits(n) > n
    assert 2 ** domain_bits(n) <= max(256, 2 * n)


@pytest.mark.parametrize(("bits", "rounds"), [(8, 8), (11, 8), (11, 3), (9, 1)])
def test_rounds_in_a_loop_equal_the_straight_line_rounds(bits, rounds):
  """The network written out round by round: (hi, lo) -> (lo, hi ^ F(lo ^ k)), widths
  alternating for an odd width; F is MurmurHash3's 32-bit finalizer."""

  def fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)

  keys = np.asarray(jax.random.bits(jax.random.key(bits + rounds), (rounds,), jnp.uint32))
  expected = []
  for x in range(2**bits):
    hi_bits, lo_bits = (bits + 1) // 2, bits // 2
    for k in keys.tolist():
      hi, lo = x >> lo_bits, x & ((1 << lo_bits) - 1)
      x = (lo << hi_bits) | ((hi ^ fmix32(lo ^ k)) & ((1 << hi_bits) - 1))
      hi_bits, lo_bits = lo_bits, hi_bits
    expected.append(x)
  got = feistel_permute(jnp.arange(2**bits, dtype=jnp.uint32), jnp.asarray(keys), bits)
  np.testing.assert_array_equal(np.asarray(got), expected)
  np.testing.assert_array_equal(np.sort(expected), np.arange(2**bits))  # a bijection


def test_same_key_same_order_other_key_other_order_jit_equals_eager():
  key = jax.random.key(7)
  eager = np.asarray(index_shuffle(key, 500))
  jitted = np.asarray(jax.jit(index_shuffle, static_argnums=1)(key, 500))
  np.testing.assert_array_equal(eager, jitted)
  np.testing.assert_array_equal(eager, np.asarray(index_shuffle(jax.random.key(7), 500)))
  other = np.asarray(index_shuffle(jax.random.key(8), 500))
  assert (eager != other).mean() > 0.9


def test_vmap_over_keys_equals_one_key_at_a_time():
  keys = jax.random.split(jax.random.key(0), 5)
  batched = np.asarray(jax.vmap(lambda k: index_shuffle(k, 37))(keys))
  for i in range(5):
    np.testing.assert_array_equal(batched[i], np.asarray(index_shuffle(keys[i], 37)))


def test_every_ordering_of_four_elements_equally_often():
  perms = _perms(4, 24_000)
  counts = {p: 0 for p in itertools.permutations(range(4))}
  for row in map(tuple, perms):
    counts[row] += 1
  observed = np.array(list(counts.values()))
  expected = len(perms) / 24
  assert observed.min() > 0
  assert ((observed - expected) ** 2 / expected).sum() < CHI2_999[23]


@pytest.mark.parametrize("n", [3, 5, 8, 10, 16])
def test_each_element_lands_in_each_position_equally_often(n):
  perms = _perms(n, 20_000, seed=n)
  counts = np.stack([np.bincount(perms[:, i], minlength=n) for i in range(n)])
  expected = len(perms) / n
  assert ((counts - expected) ** 2 / expected).sum() < CHI2_999[(n - 1) ** 2]


def test_neighbours_in_the_order_are_uncorrelated():
  perms = _perms(1000, 400).astype(np.float64)
  ascending = (perms[:, 1:] > perms[:, :-1]).mean()
  assert abs(ascending - 0.5) < 0.01
  lag1 = np.corrcoef(perms[:, :-1].ravel(), perms[:, 1:].ravel())[0, 1]
  assert abs(lag1) < 0.01


def test_epoch_orders_use_it():
  key = jax.random.key(11)
  np.testing.assert_array_equal(np.asarray(data.epoch_permutation(key, 100)),
                                np.asarray(index_shuffle(key, 100)))
  rows = np.asarray(steps.epoch_batch_indices(key, 100, 32))
  np.testing.assert_array_equal(rows.ravel(), np.asarray(index_shuffle(key, 100))[:96])


@pytest.mark.parametrize("n, rounds, match", [(0, 8, "n must be"), (-3, 8, "n must be"),
                                              (2**31, 8, "n must be"), (10, 0, "rounds")])
def test_bad_arguments_are_named(n, rounds, match):
  with pytest.raises(ValueError, match=match):
    index_shuffle(jax.random.key(0), n, rounds=rounds)
