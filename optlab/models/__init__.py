"""optlab.models: Flax NNX models (MLP, CNN, LSTM/GRU, Transformer) with configurable
depth, width and activation, plus parameter counting and a registry by name.

Every model is an ``nnx.Module`` built with an ``nnx.Rngs``; the models that use dropout
keep a fork of its ``"dropout"`` stream (or ``"default"`` when there is none), so a
model can draw dropout keys by itself, also after ``nnx.split`` / ``nnx.merge``.

Modes. Like flax's own layers, a model is built in *training* mode: dropout is on and
BatchNorm normalizes with the batch's statistics and updates its running averages.
``model.eval()`` switches both off (BatchNorm then uses the running averages) and
``model.train()`` back on. The mode is a static attribute, so it is part of the
``GraphDef``: a train-mode and an eval-mode graphdef are two compiled programs. Every
model's ``__call__`` also takes ``deterministic=True/False`` to override the mode for
one call, and ``rngs=`` (an ``nnx.Rngs`` or a key) to supply the dropout randomness for
one call instead of the stored stream.

The functional pattern for a jitted train step (verified in ``tests/test_models.py``)::

  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # rest: BatchStat, RngState
  model.eval()
  eval_graphdef = nnx.graphdef(model)                          # same state, eval mode
  model.train()

  @jax.jit
  def train_step(params, rest, opt_state, x, y):
    def loss_fn(params):
      # copy=True: the merged model mutates its state (dropout RNG counts, BatchNorm
      # statistics); without it, those Variables belong to the jit trace and mutating
      # them inside jax.grad raises flax.errors.TraceContextError.
      model = nnx.merge(graphdef, params, rest, copy=True)
      loss = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
      return loss, nnx.split(model, nnx.Param, ...)[2]       # the updated rest
    (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), rest, opt_state, loss

  @jax.jit
  def eval_step(params, rest, x):
    return nnx.merge(eval_graphdef, params, rest)(x)  # nothing mutates: no copy needed

Thread ``rest`` from each train step into the next: it carries the dropout RNG
counters (each draw folds the stream's key with its counter, then increments it) and
the BatchNorm running averages. If ``rest`` is not threaded, every step reuses the same
dropout masks and the running averages never move. For a stateless alternative, pass
a fresh key per step, ``model(x, rngs=jax.random.fold_in(key, step))``: the stored
stream is then untouched, and a model without BatchNorm mutates nothing (so even a
plain ``nnx.merge`` works under ``jax.grad``); BatchNorm statistics still travel in
``rest``. To evaluate with the train graphdef instead of ``eval_graphdef``, call
``nnx.merge(graphdef, params, rest)(x, deterministic=True)``. The stateful NNX style
(``nnx.Optimizer(model, tx, wrt=nnx.Param)`` with ``nnx.jit`` / ``nnx.value_and_grad``)
works too and handles all of this itself.

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from optlab import models
  >>> model = models.get("mlp", in_features=4, hidden_sizes=[8], out_features=3)
  >>> models.count_params(model), model(jnp.ones((2, 4))).shape
  (67, (2, 3))
"""

from optlab.models.activations import activation_names, get_activation
from optlab.models.cnn import CNN
from optlab.models.mlp import MLP
from optlab.models.registry import describe, get, names
from optlab.models.rnn import CharRNNLM, RNNClassifier, RNNStack
from optlab.models.sampling import generate
from optlab.models.summary import count_params, param_summary
from optlab.models.transformer import TransformerBlock, TransformerClassifier, TransformerLM

__all__ = [
  "CNN",
  "MLP",
  "CharRNNLM",
  "RNNClassifier",
  "RNNStack",
  "TransformerBlock",
  "TransformerClassifier",
  "TransformerLM",
  "activation_names",
  "count_params",
  "describe",
  "generate",
  "get",
  "get_activation",
  "names",
  "param_summary",
]
