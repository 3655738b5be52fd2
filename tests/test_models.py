"""Tests of optlab.models: shapes, parameter counts, modes, causality, split/merge training.

Sizes are tiny and shared (width 8, vocabulary 11, 4 features, 3 classes, length 6)
so that the eager-initialization and compilation caches are reused across tests.
Shape checks use `jax.eval_shape` (tracing only, no compilation).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models
from optlab.models import (
  CNN,
  MLP,
  CharRNNLM,
  RNNClassifier,
  TransformerClassifier,
  TransformerLM,
)

# Every width is 8 so that most parameters share one shape: eager initialization compiles
# its random ops once per shape, which is most of the cost of building a model.
VOCAB, FEATURES, CLASSES, HIDDEN, TIME, BATCH = 11, 8, 3, 8, 6, 3
TINY_T = dict(d_model=HIDDEN, num_heads=2, num_layers=1, d_ff=HIDDEN)


def _tokens(seed=0):
  return jax.random.randint(jax.random.key(seed), (BATCH, TIME), 0, VOCAB)


def _features(seed=1):
  return jax.random.normal(jax.random.key(seed), (BATCH, TIME, FEATURES))


# name -> (factory, input, output shape). Dropout and BatchNorm appear where the model
# has them, so that the split/merge test exercises RNG and batch-statistics threading.
MODELS = {
  "mlp": (
    lambda: MLP(FEATURES, [HIDDEN], CLASSES, dropout=0.5, normalization="batch", rngs=nnx.Rngs(0)),
    lambda: _features()[:, :1],  # (3, 1, 8) is flattened to (3, 8)
    (BATCH, CLASSES),
  ),
  "mlp_layernorm": (
    lambda: MLP(FEATURES, [HIDDEN, HIDDEN], CLASSES, normalization="layer", rngs=nnx.Rngs(0)),
    lambda: _features()[:, 0],
    (BATCH, CLASSES),
  ),
  "cnn": (
    lambda: CNN(
      1,
      CLASSES,
      channels=(HIDDEN,),
      hidden=(HIDDEN,),
      dropout=0.5,
      normalization="batch",
      rngs=nnx.Rngs(0),
    ),
    lambda: _features()[..., None],  # (3, 6, 8, 1) images
    (BATCH, CLASSES),
  ),
  "cnn_flatten_avg": (
    lambda: CNN(
      1,
      CLASSES,
      channels=(HIDDEN,),
      hidden=(),
      pooling="avg",
      normalization="layer",
      input_size=(TIME, FEATURES),
      rngs=nnx.Rngs(0),
    ),
    lambda: _features(),  # (3, 6, 8) gets a channel axis
    (BATCH, CLASSES),
  ),
  "rnn_classifier_lstm_tokens": (
    lambda: RNNClassifier(
      VOCAB,
      HIDDEN,
      CLASSES,
      cell="lstm",
      embedding_dim=FEATURES,
      bidirectional=True,
      rngs=nnx.Rngs(0),
    ),
    _tokens,
    (BATCH, CLASSES),
  ),
  "rnn_classifier_gru_features": (
    lambda: RNNClassifier(FEATURES, HIDDEN, CLASSES, cell="gru", rngs=nnx.Rngs(0)),
    _features,
    (BATCH, CLASSES),
  ),
  "char_rnn_lm": (
    lambda: CharRNNLM(VOCAB, FEATURES, HIDDEN, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0)),
    _tokens,
    (BATCH, TIME, VOCAB),
  ),
  "transformer_lm": (
    lambda: TransformerLM(VOCAB, 8, dropout=0.5, **TINY_T, rngs=nnx.Rngs(0)),
    _tokens,
    (BATCH, TIME, VOCAB),
  ),
  "transformer_classifier_cls_tokens": (
    lambda: TransformerClassifier(VOCAB, CLASSES, 8, pooling="cls", **TINY_T, rngs=nnx.Rngs(0)),
    _tokens,
    (BATCH, CLASSES),
  ),
  "transformer_classifier_mean_features": (
    lambda: TransformerClassifier(FEATURES, CLASSES, 8, tokens=False, **TINY_T, rngs=nnx.Rngs(0)),
    _features,
    (BATCH, CLASSES),
  ),
}
ALL = pytest.mark.parametrize("name", list(MODELS))


# The test programs are tiny: XLA's backend optimizations cost more compile time than
# they save at run time (about 3x faster compiles on CPU). Only these test-local jits
# use it; nothing global changes.
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


@_jit(static_argnums=0)
def _forward(graphdef, state, x):
  """Evaluation-mode forward pass; one compilation per (model, input shape) for all tests."""
  return nnx.merge(graphdef, state)(x, deterministic=True)


@pytest.fixture(scope="module")
def built():
  """Each model of MODELS, built once for the module."""
  return {name: make() for name, (make, _, _) in MODELS.items()}


# ---- activations -----------------------------------------------------------------------


def test_activations_by_name():
  x = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
  names = models.activation_names()
  for required in [
    "relu",
    "gelu",
    "silu",
    "swish",
    "tanh",
    "sigmoid",
    "elu",
    "leaky_relu",
    "softplus",
    "identity",
    "linear",
    "selu",
    "mish",
  ]:
    assert required in names
  values = _jit(lambda x: {n: models.get_activation(n)(x) for n in names})(x)
  xs = np.asarray(x)
  np.testing.assert_allclose(values["relu"], np.maximum(xs, 0))
  np.testing.assert_allclose(values["identity"], xs)
  np.testing.assert_allclose(values["linear"], xs)
  np.testing.assert_allclose(values["tanh"], np.tanh(xs), rtol=1e-6)
  np.testing.assert_allclose(values["sigmoid"], 1 / (1 + np.exp(-xs)), rtol=1e-6)
  np.testing.assert_allclose(values["silu"], xs / (1 + np.exp(-xs)), rtol=1e-6)
  np.testing.assert_allclose(values["swish"], values["silu"])
  np.testing.assert_allclose(values["softplus"], np.log1p(np.exp(xs)), rtol=1e-6)
  np.testing.assert_allclose(values["leaky_relu"], np.where(xs > 0, xs, 0.01 * xs), rtol=1e-6)
  np.testing.assert_allclose(values["elu"], np.where(xs > 0, xs, np.expm1(xs)), rtol=1e-6)
  mish = xs * np.tanh(np.log1p(np.exp(xs)))
  np.testing.assert_allclose(values["mish"], mish, rtol=1e-5, atol=1e-6)
  assert models.get_activation("Leaky-ReLU") is models.get_activation("leaky_relu")
  assert models.get_activation(jnp.sin) is jnp.sin


def test_unknown_activation_suggests_closest_and_lists_all():
  with pytest.raises(ValueError, match="'relu'") as info:
    models.get_activation("rellu")
  assert "Choices: " in str(info.value) and "softplus" in str(info.value)
  with pytest.raises(ValueError, match="gelu"):
    MLP(2, [2], 2, activation="gelu2", rngs=nnx.Rngs(0))


# ---- shapes, counts, registry ----------------------------------------------------------


@ALL
def test_output_shapes(built, name):
  _, make_input, shape = MODELS[name]
  graphdef, state = nnx.split(built[name])
  out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, make_input())
  assert out.shape == shape and out.dtype == jnp.float32


def test_mlp_param_count_by_hand():
  model = MLP(4, [8], 3, rngs=nnx.Rngs(0))
  assert models.count_params(model) == 4 * 8 + 8 + 8 * 3 + 3 == 67
  _, params, _ = nnx.split(model, nnx.Param, ...)
  assert models.count_params(params) == 67
  summary = models.param_summary(model)
  assert "layers/0/kernel" in summary and "(4, 8)" in summary
  assert summary.splitlines()[-1].split() == ["total", "67"]
  # BatchNorm adds a scale and a bias per hidden unit; its statistics are not Params.
  bn = MLP(4, [8], 3, normalization="batch", rngs=nnx.Rngs(0))
  assert models.count_params(bn) == 67 + 2 * 8


def test_cnn_param_count_by_hand():
  # conv 3x3, 1 -> 8 channels: 3*3*1*8 + 8 = 80; head 8 -> 8 -> 3: 8*8 + 8 + 8*3 + 3 = 99.
  model = CNN(1, 3, channels=(8,), hidden=(8,), rngs=nnx.Rngs(0))
  assert models.count_params(model) == 80 + 99
  # Flattening a 6x8 image after one 2x2 pool gives 3*4*8 = 96 features: 96*3 + 3.
  flat = CNN(1, 3, channels=(8,), hidden=(), input_size=(6, 8), rngs=nnx.Rngs(0))
  assert models.count_params(flat) == 80 + 96 * 3 + 3


def test_rnn_and_transformer_param_counts(built):
  # GRU (flax): 3 input kernels without bias, 3 recurrent kernels with bias.
  gru = 3 * FEATURES * HIDDEN + 3 * (HIDDEN * HIDDEN + HIDDEN)
  head = HIDDEN * CLASSES + CLASSES
  assert models.count_params(built["rnn_classifier_gru_features"]) == gru + head
  tied = built["transformer_lm"]
  untied = TransformerLM(VOCAB, 8, tie_weights=False, **TINY_T, rngs=nnx.Rngs(0))
  assert models.count_params(untied) == models.count_params(tied) + HIDDEN * VOCAB


def test_registry():
  assert models.names() == (
    "char_rnn_lm",
    "cnn",
    "mlp",
    "rnn_classifier",
    "transformer_classifier",
    "transformer_lm",
  )
  model = models.get("mlp", in_features=4, hidden_sizes=[8], out_features=3)
  assert isinstance(model, MLP) and models.count_params(model) == 67
  with pytest.raises(ValueError, match="'transformer_lm'") as info:
    models.get("transformer-lm")
  assert "Known: " in str(info.value)


# ---- modes: dropout and BatchNorm --------------------------------------------------------


def test_dropout_on_in_train_mode_off_in_eval_mode():
  model = MLP(FEATURES, [HIDDEN], CLASSES, dropout=0.5, rngs=nnx.Rngs(params=0, dropout=1))
  x = _features()[:, 0]
  model.train()
  assert not np.allclose(model(x), model(x))  # each call draws a new mask
  model.eval()
  clean = model(x)
  np.testing.assert_array_equal(clean, model(x))
  model.train()
  np.testing.assert_array_equal(clean, model(x, deterministic=True))
  # A call-time key replaces the stored stream: same key, same mask.
  key = jax.random.key(3)
  np.testing.assert_array_equal(model(x, rngs=key), model(x, rngs=key))
  assert not np.allclose(model(x, rngs=key), clean)


def test_batchnorm_running_stats_update_only_in_train_mode():
  model = MLP(FEATURES, [HIDDEN], CLASSES, normalization="batch", rngs=nnx.Rngs(0))
  x = _features()[:, 0] * 3.0 + 1.0
  mean0 = np.asarray(model.norms[0].mean[...])
  model.train()
  model(x)
  mean1 = np.asarray(model.norms[0].mean[...])
  assert not np.allclose(mean0, mean1)
  model.eval()
  model(x)
  np.testing.assert_array_equal(mean1, model.norms[0].mean[...])
  model.train()
  model(x, deterministic=True)  # the call-time override also freezes the statistics
  np.testing.assert_array_equal(mean1, model.norms[0].mean[...])


# ---- causality, jit, split/merge training ------------------------------------------------


@pytest.mark.parametrize("name", ["transformer_lm", "char_rnn_lm"])
def test_future_tokens_do_not_change_earlier_logits(built, name):
  graphdef, state = nnx.split(built[name])
  tokens = _tokens()
  changed = tokens.at[:, 3].set((tokens[:, 3] + 1) % VOCAB)
  a, b = _forward(graphdef, state, tokens), _forward(graphdef, state, changed)
  np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-6, atol=1e-6)
  assert not np.allclose(a[:, 3:], b[:, 3:])


def test_encoder_sees_the_whole_sequence_and_padding_is_ignored(built):
  model = built["transformer_classifier_cls_tokens"]
  graphdef, state = nnx.split(model)
  forward = _jit(lambda s, t, m: nnx.merge(graphdef, s)(t, padding_mask=m, deterministic=True))
  tokens = _tokens()
  changed = tokens.at[:, -1].set((tokens[:, -1] + 1) % VOCAB)
  full = jnp.ones((BATCH, TIME), bool)
  assert not np.allclose(forward(state, tokens, full), forward(state, changed, full))
  padded = full.at[:, -1].set(False)
  np.testing.assert_allclose(
    forward(state, tokens, padded), forward(state, changed, padded), rtol=1e-6, atol=1e-6
  )


@pytest.mark.parametrize("name", ["mlp", "cnn", "rnn_classifier_gru_features"])
def test_jit_matches_eager(built, name):
  model = built[name]
  x = MODELS[name][1]()
  jitted = _forward(*nnx.split(model), x)
  np.testing.assert_allclose(jitted, model(x, deterministic=True), rtol=1e-5, atol=1e-6)
  model.eval()
  np.testing.assert_allclose(jitted, model(x), rtol=1e-5, atol=1e-6)
  model.train()


@pytest.mark.parametrize(
  "name", [n for n in MODELS if n not in ("mlp_layernorm", "cnn_flatten_avg")]
)
def test_split_merge_train_step_under_jit_and_grad(built, name):
  """The trainer's pattern: pure jitted step over (params, rest), rest threaded."""
  model = built[name]
  model.train()
  x = MODELS[name][1]()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.sgd(0.1)
  opt_state = tx.init(params)

  @_jit
  def train_step(params, rest, opt_state, x):
    def loss_fn(params):
      merged = nnx.merge(graphdef, params, rest, copy=True)
      loss = jnp.mean(jnp.square(merged(x) - 1.0))
      return loss, nnx.split(merged, nnx.Param, ...)[2]

    (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), rest, opt_state, loss, grads

  new_params, new_rest, _, loss, grads = train_step(params, rest, opt_state, x)
  chex.assert_tree_all_finite((loss, grads, new_params))
  chex.assert_trees_all_equal_shapes(grads, params)
  has_batchnorm = bool(nnx.state(model, nnx.BatchStat))
  for path, grad in jax.tree_util.tree_flatten_with_path(grads)[0]:
    name = jax.tree_util.keystr(path)
    if has_batchnorm and "bias" in name and ("layers" in name or "convs" in name):
      continue  # a bias just before BatchNorm is subtracted out: its gradient is ~0
    assert np.any(np.asarray(grad) != 0), f"zero gradient at {name}"
  assert jax.tree.structure(new_rest) == jax.tree.structure(rest)

  def counts(rest):
    return jax.tree.leaves(nnx.state(nnx.merge(graphdef, params, rest), nnx.RngCount))

  if counts(rest):  # dropout drew keys: the counters moved on
    assert all(np.all(a != b) for a, b in zip(counts(rest), counts(new_rest), strict=True))

  def stats(rest):
    return jax.tree.leaves(nnx.state(nnx.merge(graphdef, params, rest), nnx.BatchStat))

  if stats(rest):  # BatchNorm: the running statistics moved on
    assert not all(np.allclose(a, b) for a, b in zip(stats(rest), stats(new_rest), strict=True))
  # A second step with the threaded state compiles nothing new and stays finite.
  _, _, _, loss2, _ = train_step(new_params, new_rest, opt_state, x)
  assert np.isfinite(loss2)
  assert train_step._cache_size() == 1


# ---- sampling --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["char_rnn_lm", "transformer_lm"])
def test_generate_length_and_valid_ids(built, name):
  model = built[name]
  key = jax.random.key(7)
  out = models.generate(model, _tokens()[0, :3], 10, key)  # 3 + 10 > max_len=8 for the LM
  assert out.shape == (10,) and out.dtype == jnp.int32
  assert np.all((np.asarray(out) >= 0) & (np.asarray(out) < VOCAB))
  greedy = models.generate(model, _tokens()[:, :3], 3, key, temperature=0.0)
  assert greedy.shape == (BATCH, 3)
  # Greedy decoding picks the argmax of the model's own next-token logits.
  graphdef, state = nnx.split(model)
  sequence = _tokens()  # positions 3.. are overwritten; causality makes them irrelevant
  for t in range(3, 6):
    logits = _forward(graphdef, state, sequence)
    sequence = sequence.at[:, t].set(jnp.argmax(logits[:, t - 1], axis=-1))
  np.testing.assert_array_equal(greedy, sequence[:, 3:])
  with pytest.raises(TypeError, match="integer"):
    models.generate(model, jnp.ones((3,)), 4, key)
  with pytest.raises(ValueError, match=r"\[0, 11\)"):
    models.generate(model, jnp.array([0, VOCAB]), 4, key)


# ---- validation ------------------------------------------------------------------------


def test_bad_input_shapes_raise_clear_errors(built):
  mlp = MLP(64, [32], 10, rngs=nnx.Rngs(0))  # the digits model: shapes already compiled
  with pytest.raises(ValueError, match=r"expected input of shape \(batch, 64\).*\(5, 63\)"):
    mlp(jnp.ones((5, 63)))
  with pytest.raises(ValueError, match=r"\(batch, 64\)"):
    mlp(jnp.ones((64,)))
  with pytest.raises(ValueError, match=r"\(batch, height, width, 1\).*\(3, 6, 8, 2\)"):
    built["cnn"](jnp.ones((3, 6, 8, 2)))
  with pytest.raises(ValueError, match="too small"):
    built["cnn"](jnp.ones((3, 1, 8, 1)))
  with pytest.raises(ValueError, match=r"\(batch, 6, 8, 1\)"):
    built["cnn_flatten_avg"](jnp.ones((3, 8, 8, 1)))
  with pytest.raises(ValueError, match=r"\(batch, time, 8\).*\(3, 6, 5\)"):
    built["rnn_classifier_gru_features"](jnp.ones((3, 6, 5)))
  with pytest.raises(ValueError, match="max_len=8"):
    built["transformer_lm"](jnp.zeros((1, 9), jnp.int32))
  with pytest.raises(ValueError, match=r"\(batch, time\)"):
    built["char_rnn_lm"](jnp.zeros((1, 2, 3), jnp.int32))


@pytest.mark.parametrize(
  "name",
  [
    "transformer_lm",
    "char_rnn_lm",
    "rnn_classifier_lstm_tokens",
    "transformer_classifier_cls_tokens",
  ],
)
def test_token_models_reject_float_inputs(built, name):
  with pytest.raises(TypeError, match="integer token ids"):
    built[name](jnp.ones((BATCH, TIME)))


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="'batch'"):
    MLP(2, [2], 2, normalization="btach", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
    MLP(2, [2], 2, dropout=1.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="hidden_sizes"):
    MLP(2, [0], 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="'lstm'"):
    RNNClassifier(2, 2, 2, cell="lstn", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_heads=3 must divide d_model=8"):
    TransformerLM(5, 4, d_model=8, num_heads=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="'mean'"):
    TransformerClassifier(5, 2, 4, pooling="maen", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="pooling"):
    CNN(1, 2, pooling="min", rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match=r"nnx\.Rngs"):
    MLP(2, [2], 2, rngs=0)


# ---- learning ----------------------------------------------------------------------------


def test_mlp_learns_digits():
  """200 full-batch Adam steps on standardized digits reach ≥ 95% held-out accuracy."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  images, labels = load_digits(return_X_y=True)
  x_train, x_test, y_train, y_test = train_test_split(
    images.astype(np.float32), labels, test_size=0.25, random_state=0, stratify=labels
  )
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
  model = MLP(64, [32], 10, rngs=nnx.Rngs(0))
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adam(1e-2)

  @_jit
  def fit(params, rest, x, y):
    def step(carry, _):
      params, rest, opt_state = carry

      def loss_fn(params):
        merged = nnx.merge(graphdef, params, rest, copy=True)
        logits = merged(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, nnx.split(merged, nnx.Param, ...)[2]

      (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), rest, opt_state), loss

    (params, rest, _), losses = jax.lax.scan(step, (params, rest, tx.init(params)), length=200)
    return params, rest, losses

  params, rest, losses = fit(params, rest, jnp.asarray(x_train), jnp.asarray(y_train))
  assert losses[-1] < 0.1 * losses[0]
  model.eval()
  logits = nnx.merge(nnx.graphdef(model), params, rest)(jnp.asarray(x_test))
  accuracy = float(np.mean(np.argmax(logits, -1) == y_test))
  assert accuracy >= 0.95, accuracy
