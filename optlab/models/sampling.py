"""Sampling from the language models: `generate(model, prompt_ids, length, key, temperature)`."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optlab.models.rnn import CharRNNLM
from optlab.models.transformer import TransformerLM


def _sample(key: jax.Array, logits: jax.Array, greedy: bool, temperature: jax.Array) -> jax.Array:
  if greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@partial(jax.jit, static_argnums=(0, 3, 5))
def _generate_rnn(graphdef, state, prompt, length, key, greedy, temperature):
  model = nnx.merge(graphdef, state)
  logits, carry = model(prompt, return_carry=True, deterministic=True)

  def step(c, k):
    last, carry = c
    token = _sample(k, last, greedy, temperature)
    logits, carry = nnx.merge(graphdef, state)(
      token[:, None], carry=carry, return_carry=True, deterministic=True
    )
    return (logits[:, -1], carry), token

  _, tokens = jax.lax.scan(step, (logits[:, -1], carry), jax.random.split(key, length))
  return tokens.T


@partial(jax.jit, static_argnums=(0, 3, 5))
def _generate_transformer(graphdef, state, prompt, length, key, greedy, temperature):
  batch, prompt_len = prompt.shape
  window = nnx.merge(graphdef, state).max_len
  size = max(prompt_len + length, window)
  buffer = jnp.zeros((batch, size), jnp.int32).at[:, :prompt_len].set(prompt)

  def step(buffer, inputs):
    i, k = inputs
    n = prompt_len + i  # tokens so far; the context is the last `window` of them
    start = jnp.maximum(n - window, 0)
    context = jax.lax.dynamic_slice(buffer, (0, start), (batch, window))
    logits = nnx.merge(graphdef, state)(context, deterministic=True)
    last = jax.lax.dynamic_index_in_dim(logits, n - 1 - start, axis=1, keepdims=False)
    token = _sample(k, last, greedy, temperature)
    return jax.lax.dynamic_update_slice(buffer, token[:, None], (0, n)), token

  steps = (jnp.arange(length), jax.random.split(key, length))
  _, tokens = jax.lax.scan(step, buffer, steps)
  return tokens.T


def generate(
  model: CharRNNLM | TransformerLM,
  prompt_ids: jax.Array,
  length: int,
  key: jax.Array,
  temperature: float = 1.0,
) -> jax.Array:
  """Samples `length` tokens that continue `prompt_ids`, autoregressively.

  The model runs in evaluation mode (``deterministic=True``: no dropout) and the whole
  loop is one compiled `jax.lax.scan`. A `CharRNNLM` reads the prompt once and then
  steps its recurrent state; a `TransformerLM` recomputes its causal forward pass over
  the last ``max_len`` tokens at each step (so prompts and outputs may be longer than
  ``max_len``).

  Args:
    model: a `CharRNNLM` or `TransformerLM`.
    prompt_ids: integer ids, (prompt_len,) or (batch, prompt_len), prompt_len ≥ 1.
    length: number of tokens to generate (≥ 0).
    key: PRNG key for sampling.
    temperature: softmax temperature (> 0); 0 picks the most likely token (greedy).

  Returns:
    The generated ids only (without the prompt), int32, of shape (length,) or
    (batch, length) to match `prompt_ids`.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = CharRNNLM(11, 8, 8, rngs=nnx.Rngs(0))
    >>> generate(model, jnp.array([1, 2, 3]), 5, jax.random.key(0)).shape
    (5,)
  """
  if not isinstance(model, CharRNNLM | TransformerLM):
    raise TypeError(f"generate: model must be a CharRNNLM or TransformerLM, got {type(model)}")
  prompt = jnp.asarray(prompt_ids)
  if not jnp.issubdtype(prompt.dtype, jnp.integer):
    raise TypeError(f"generate: prompt_ids must be integer token ids, got dtype {prompt.dtype}")
  unbatched = prompt.ndim == 1
  prompt = prompt[None] if unbatched else prompt
  if prompt.ndim != 2 or prompt.shape[1] < 1:
    raise ValueError(
      "generate: prompt_ids must have shape (prompt_len,) or (batch, prompt_len) with "
      f"prompt_len >= 1, got shape {tuple(jnp.shape(prompt_ids))}"
    )
  if not isinstance(prompt, jax.core.Tracer):
    ids = np.asarray(prompt)
    if ids.min() < 0 or ids.max() >= model.vocab_size:
      raise ValueError(
        f"generate: prompt_ids must lie in [0, {model.vocab_size}), got values in "
        f"[{ids.min()}, {ids.max()}]"
      )
  if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 0:
    raise ValueError(f"generate: length must be an integer >= 0, got {length!r}")
  if not isinstance(temperature, jax.core.Tracer) and not float(temperature) >= 0.0:
    raise ValueError(f"generate: temperature must be >= 0, got {temperature!r}")
  if length == 0:
    out = jnp.zeros((prompt.shape[0], 0), jnp.int32)
    return out[0] if unbatched else out
  greedy = not isinstance(temperature, jax.core.Tracer) and float(temperature) == 0.0
  graphdef, state = nnx.split(model)
  fn = _generate_rnn if isinstance(model, CharRNNLM) else _generate_transformer
  temperature = jnp.asarray(1.0 if greedy else temperature, jnp.float32)
  out = fn(graphdef, state, prompt.astype(jnp.int32), int(length), key, greedy, temperature)
  return out[0] if unbatched else out
