"""Random permutations without sorting: a keyed Feistel network on the index bits.

``jax.random.permutation`` shuffles by sorting random keys (two rounds of a
two-operand sort for n ≈ 2,000), and XLA:CPU sorts slowly: an epoch order for
digits (n = 1,797) took 0.73 ms, a third of a small MLP's whole scanned epoch, and
64 vmapped orders 33 ms, more than half of a 64-run vectorized sweep's epoch. Here
an order costs a few elementwise passes instead (0.06 ms; 64 vmapped: ~3 ms).

The construction is the one of format-preserving encryption and of Grain's and
TensorFlow's ``index_shuffle``: a Feistel network (Luby & Rackoff, 1988) keyed by
round keys drawn from the PRNG key is a bijection of ``[0, 2^w)`` for any round
function; keeping, in order, the images that fall below ``n`` (``2^w`` is at most
``max(256, 2n)``) gives a permutation of ``range(n)``. Round i maps the halves
``(hi, lo)`` to ``(lo, hi ⊕ F(lo ⊕ k_i))``, with ``F`` MurmurHash3's 32-bit
finalizer; an odd width alternates unequal halves. Eight rounds over at least 8
bits pass χ² tests of uniformity (every ordering of 4 elements, every
element-position pair up to n = 16) in ``tests/test_index_shuffle.py``.

It is a pseudo-random permutation, as good as its round function, not a draw from
an exactly uniform distribution; its key space (eight 32-bit round keys) is far
larger than a PRNG key's 64 bits of seed, which bounds any shuffle from one key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ROUNDS = 8
MIN_BITS = 8
MAX_N = 2**31 - 1


def _fmix32(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finalizer: every input bit flips each output bit with p ≈ ½."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def domain_bits(n: int) -> int:
  """Width w of the Feistel domain ``[0, 2^w)`` used for a permutation of ``range(n)``."""
  return max(MIN_BITS, int(n).bit_length())


def _feistel_round(x: jax.Array, round_key: jax.Array, hi_bits: int, lo_bits: int) -> jax.Array:
  """(hi, lo) -> (lo, hi ⊕ F(lo ⊕ k)) on a `hi_bits` + `lo_bits` wide index."""
  hi, lo = x >> lo_bits, x & jnp.uint32((1 << lo_bits) - 1)
  mixed = (hi ^ _fmix32(lo ^ round_key)) & jnp.uint32((1 << hi_bits) - 1)
  return (lo << hi_bits) | mixed


def feistel_permute(index: jax.Array, round_keys: jax.Array, bits: int) -> jax.Array:
  """The image of `index` (uint32 values below ``2^bits``) under the keyed Feistel bijection.

  A bijection of ``[0, 2^bits)`` for any `round_keys` (uint32, one per round);
  elementwise, so it maps one index or a whole array at the same cost per element.
  The rounds run two at a time in a ``lax.fori_loop`` (an odd width alternates the
  halves' widths, so a pair of rounds has static widths): the result is then a
  buffer, where a straight-line chain of rounds would be fused into, and computed
  again by, each of its consumers (XLA drops an ``optimization_barrier`` here):
  64 vmapped shuffles of 1,438 took 4.1 ms with the chain, 1.6 ms with the loop.
  """
  x = jnp.asarray(index, jnp.uint32)
  hi_bits, lo_bits = (bits + 1) // 2, bits // 2
  rounds = round_keys.shape[0]

  def two_rounds(pair, x):
    x = _feistel_round(x, round_keys[2 * pair], hi_bits, lo_bits)
    return _feistel_round(x, round_keys[2 * pair + 1], lo_bits, hi_bits)

  x = jax.lax.fori_loop(0, rounds // 2, two_rounds, x)
  if rounds % 2:
    x = _feistel_round(x, round_keys[rounds - 1], hi_bits, lo_bits)
  return x


def index_shuffle(key: jax.Array, n: int, *, rounds: int = ROUNDS) -> jax.Array:
  """A pseudo-random permutation of ``range(n)`` (int32) from a PRNG `key`, without a sort.

  Same key, same permutation (on every backend); `n` must be static under ``jit``.
  Vectorizes under ``vmap`` over keys.

  Example:
    >>> import jax
    >>> p = index_shuffle(jax.random.key(0), 10)
    >>> sorted(p.tolist()) == list(range(10))
    True
  """
  n = int(n)
  if not 1 <= n <= MAX_N:
    raise ValueError(f"n must be in [1, {MAX_N}], got {n}")
  if rounds < 1:
    raise ValueError(f"rounds must be >= 1, got {rounds}")
  bits = domain_bits(n)
  round_keys = jax.random.bits(key, (rounds,), jnp.uint32)
  images = feistel_permute(jnp.arange(2**bits, dtype=jnp.uint32), round_keys, bits)
  keep = images < n
  slot = jnp.cumsum(keep.astype(jnp.int32)) - 1
  return jnp.zeros(n, jnp.int32).at[jnp.where(keep, slot, n)].set(
      images.astype(jnp.int32), mode="drop")
