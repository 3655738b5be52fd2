"""The bad-input catalogue: each case is a call with one wrong argument, the exception it
must raise, and a pattern the message must match: the argument's name, the bad value
and what is accepted (suggestions for unknown names). Never a deep JAX traceback, a
silent NaN or a hang.

`CASES` (hand-written, across the public API) and `OPTIMIZER_RANGE_CASES` (every
range-checked hyperparameter of the twelve classic optimizers) are counted in the
README's reliability section. A case marked ``xfail(strict=True)`` documents a gap
whose fix belongs to a module this catalogue does not own; the reason says what fix.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optlab import cli, data, metrics, models, optim, problems, results, studies, train
from optlab.optim import schedules
from optlab.optim.space import Choice, IntUniform, LogUniform, SearchSpace, Uniform
from optlab.train import steps

search_lib = importlib.import_module("optlab.tune.search")
sweep_lib = importlib.import_module("optlab.tune.sweep")
cv_lib = importlib.import_module("optlab.tune.cv")

CLASSIC = ("sgd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "amsgrad",
           "adamax", "nadam", "radam", "adadelta")

X = np.linspace(-1.0, 1.0, 40, dtype=np.float32).reshape(10, 4)
Y = np.arange(10, dtype=np.int32) % 3
PARAMS = {"w": jnp.ones((3,)), "b": jnp.zeros((2,))}


def _mlp(rngs: nnx.Rngs | None = None) -> models.MLP:
  return models.MLP(4, [8], 3, rngs=rngs or nnx.Rngs(0))


def _fit(x=X, y=Y, **kwargs):
  kwargs = {"epochs": 1, "batch_size": 2, "progress": False, **kwargs}
  return train.fit(_mlp(), optim.get("sgd", learning_rate=0.1), (x, y), **kwargs)


def _update(name: str, grads, params=PARAMS):
  tx = optim.get(name)
  return tx.update(grads, tx.init(params), params)


def _lm(**kwargs):
  return models.TransformerLM(10, 8, d_model=8, num_heads=2, num_layers=1, rngs=nnx.Rngs(0),
                              **kwargs)


def _write_idx(path, array, cut: int = 0, replace_head: bytes | None = None):
  data.write_idx(path, array)
  raw = path.read_bytes()
  if replace_head is not None:
    raw = replace_head + raw[len(replace_head):]
  path.write_bytes(raw[:len(raw) - cut])
  return path


def _idx_directory(tmp, *, bad_labels: bool = False):
  """An MNIST-style directory of tiny IDX files; `bad_labels` truncates the train labels."""
  for prefix in ("train", "t10k"):
    _write_idx(tmp / f"{prefix}-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8))
    _write_idx(tmp / f"{prefix}-labels-idx1-ubyte", np.arange(4, dtype=np.uint8),
               cut=2 if bad_labels and prefix == "train" else 0)
  return tmp


def _corrupted_results(tmp):
  """A results file whose second of three lines is torn: skipped, the other two kept."""
  path = tmp / "runs.jsonl"
  results.append_records(path, [{"run": 1}])
  with open(path, "a", encoding="utf-8") as f:
    f.write('{"run": 2, "loss": 0.\n')
  results.append_records(path, [{"run": 3}])
  kept = results.read_records(path)
  assert [r["run"] for r in kept] == [1, 3]


def _non_object_results(tmp):
  path = tmp / "runs.jsonl"
  path.write_text('{"run": 1}\n[1, 2]\n{"run": 3}\n', encoding="utf-8")
  assert [r["run"] for r in results.read_records(path)] == [1, 3]


def _config():
  return studies.load_module(
    "optlab_decoupled_weight_decay_config",
    cli.experiments_dir() / "decoupled_weight_decay" / "config.py",
  ).QUICK


def _config_file(tmp, text: str, suffix: str = ".json"):
  path = tmp / f"overrides{suffix}"
  path.write_text(text, encoding="utf-8")
  return studies.apply_overrides(_config(), studies.read_config_file(path), source=str(path))


def _study_command_line(tmp, argv):
  """A study runner's command line; a usage error exits with status 2 and the message."""
  parser = studies.study_parser("test", tmp / "r.jsonl", tmp / "f.png", tmp)
  args = parser.parse_args(argv)
  return studies.config_from_args(parser, args, {"quick": _config()})


def _search(**kwargs):
  space = SearchSpace({"lr": Uniform(0.0, 1.0)})
  return search_lib.search(lambda config, trial: 0.0, space, **{"n_trials": 1, **kwargs})


def _sweep(**kwargs):
  kwargs = {"hyperparams": {"learning_rate": [0.1]}, "epochs": 1, "batch_size": 2, **kwargs}
  return sweep_lib.sweep(_mlp, "sgd", (X, Y), **kwargs)


def _xfail(reason: str):
  return pytest.mark.xfail(strict=True, reason=reason)


# (callable of tmp_path, expected exception or warning, pattern the message must match)
CASES = [
  # Optimizers: values of the wrong kind, unknown names and hyperparameters.
  pytest.param(lambda t: optim.get("adam", learning_rate="fast"), TypeError,
               r"learning_rate must be a number ≥ 0 or a schedule.*got the string 'fast'",
               id="optimizer-learning_rate-string"),
  pytest.param(lambda t: optim.get("adam", b1="0.9"), TypeError,
               r"b1 must be a number, got the string '0\.9'", id="optimizer-b1-string"),
  pytest.param(lambda t: optim.get("adam", learning_rate=True), TypeError,
               r"learning_rate expected a number, got the bool True", id="optimizer-lr-bool"),
  pytest.param(lambda t: optim.get("sgd", learning_rate=1 + 2j), TypeError,
               r"learning_rate expected a real number, got the complex value \(1\+2j\)",
               id="optimizer-lr-complex"),
  pytest.param(lambda t: optim.get("adamax", b1=math.nan), ValueError,
               r"b1 must be a finite number in \[0, 1\), got nan", id="optimizer-b1-nan"),
  pytest.param(lambda t: optim.get("nadam", learning_rate=math.inf), ValueError,
               r"learning_rate must be a finite number in \[0, inf\], got inf",
               id="optimizer-lr-inf"),
  pytest.param(lambda t: optim.get("sgd", inject=True, momentum=-1.0).init(PARAMS), ValueError,
               r"momentum must be in \[0, 1\), got -1\.0", id="optimizer-injected-momentum"),
  pytest.param(lambda t: optim.get("adamw", decay_convention="torchy"), ValueError,
               r"decay_convention must be one of 'paper', 'lr', got 'torchy'",
               id="optimizer-choice-argument"),
  pytest.param(lambda t: optim.get("adam", beta1=0.9), TypeError,
               r"unknown hyperparameter 'beta1'.*Accepted: learning_rate, b1, b2",
               id="optimizer-unknown-hyperparameter"),
  pytest.param(lambda t: optim.get("adamm"), ValueError,
               r"unknown optimizer 'adamm'\. Did you mean: adam", id="optimizer-unknown-name"),
  pytest.param(lambda t: optim.get("optax.adam", learning_rate=-0.1), ValueError,
               r"learning_rate must be in \[0, inf\], got -0\.1", id="optax-optimizer-lr"),
  # Gradients and parameters that do not match.
  pytest.param(lambda t: _update("adam", {"w": jnp.ones((3,))}), ValueError,
               r"updates do not have the tree structure of the first-moment buffer.*"
               r"updates: PyTreeDef\(\{'w': \*\}\).*\{'b': \*, 'w': \*\}",
               id="gradients-tree-structure"),
  pytest.param(lambda t: _update("sgd", {"w": jnp.ones((4,)), "b": jnp.zeros((2,))}),
               ValueError, r"leaf 1 of the updates has shape \(4,\) but the momentum buffer "
               r"has shape \(3,\)", id="gradients-leaf-shape"),
  pytest.param(lambda t: optim.get("sgd").init({"w": jnp.ones(3, jnp.int32)}), TypeError,
               r"leaf 0 of the params has dtype int32.*accepts real floating-point arrays only",
               id="params-integer"),
  pytest.param(lambda t: optim.get("adam").init({"w": jnp.ones(3, jnp.complex64)}), TypeError,
               r"leaf 0 of the params has dtype complex64.*real floating-point.*"
               r"split_real_and_imaginary", id="params-complex"),
  pytest.param(lambda t: _update("adam", jax.tree.map(lambda p: p.astype(jnp.int32), PARAMS)),
               TypeError, r"updates has dtype int32.*floating", id="gradients-integer"),
  pytest.param(lambda t: (lambda tx: tx.update(PARAMS, tx.init(PARAMS)))(optim.get("adamw")),
               ValueError, r"weight decay needs the parameters: call update\(updates, state, "
               r"params\)", id="adamw-update-without-params"),
  # Schedules: negative or inconsistent step counts, unknown names and arguments.
  pytest.param(lambda t: schedules.warmup_stable_decay_schedule(1.0, total_steps=-10),
               ValueError, r"total_steps must be an integer ≥ 1, got -10", id="wsd-negative"),
  pytest.param(lambda t: schedules.warmup_stable_decay_schedule(
                 1.0, total_steps=10, warmup_steps=5, decay_steps=8), ValueError,
               r"warmup_steps \+ decay_steps must be ≤ total_steps = 10, got warmup_steps=5 "
               r"\+ decay_steps=8", id="wsd-inconsistent"),
  pytest.param(lambda t: schedules.warmup_stable_decay_schedule(1.0, total_steps=10.5),
               TypeError, r"total_steps must be an integer number of steps, got 10\.5",
               id="wsd-float-steps"),
  pytest.param(lambda t: schedules.cyclical_schedule(0.1, 1.0, step_size=0), ValueError,
               r"step_size must be an integer ≥ 1, got 0", id="cyclical-step-size"),
  pytest.param(lambda t: schedules.inverse_sqrt_schedule(1.0, warmup_steps=-1), ValueError,
               r"warmup_steps must be an integer ≥ 0, got -1", id="inverse-sqrt-warmup"),
  pytest.param(lambda t: schedules.get_schedule("linear", init_value=1.0, end_value=0.0,
                                                transition_steps=-1), ValueError,
               r"transition_steps must be an integer ≥ 1, got -1", id="optax-linear-negative"),
  pytest.param(lambda t: schedules.get_schedule("exponential_decay", init_value=1.0,
                                                transition_steps=0, decay_rate=0.5),
               ValueError, r"transition_steps must be an integer ≥ 1, got 0",
               id="optax-exponential-zero"),
  pytest.param(lambda t: schedules.get_schedule("warmup_cosine_decay", init_value=0.0,
                                                peak_value=1.0, warmup_steps=100,
                                                decay_steps=50), ValueError,
               r"decay_steps.*must be > warmup_steps = 100, got decay_steps=50",
               id="optax-warmup-cosine-inconsistent"),
  pytest.param(lambda t: schedules.get_schedule("piecewise_constant", init_value=1.0,
                                                boundaries_and_scales={-5: 0.1}), ValueError,
               r"boundaries_and_scales \(a boundary\) must be an integer ≥ 0, got -5",
               id="optax-piecewise-negative-boundary"),
  pytest.param(lambda t: schedules.get_schedule("join", schedules=[lambda s: 1.0] * 3,
                                                boundaries=[50, 10]), ValueError,
               r"boundaries must be non-decreasing step counts, got \[50, 10\]",
               id="optax-join-unsorted"),
  pytest.param(lambda t: schedules.get_schedule("cosin"), ValueError,
               r"unknown schedule 'cosin'\. Did you mean 'cosine_decay'", id="schedule-unknown"),
  pytest.param(lambda t: schedules.get_schedule("cosine_decay", init_value=1.0, decay_step=5),
               TypeError, r"unexpected argument\(s\) decay_step.*It accepts: init_value, "
               r"decay_steps", id="schedule-unknown-argument"),
  # Models: hyperparameters, inputs of the wrong shape, dtype or range, unknown names.
  pytest.param(lambda t: _mlp()(jnp.ones((2, 5))), ValueError,
               r"MLP: expected input of shape \(batch, 4\).*got shape \(2, 5\)",
               id="mlp-input-shape"),
  pytest.param(lambda t: _mlp()(np.full((2, 4), "a")), TypeError,
               r"MLP: expected a real numeric array \(float, int or bool\), got dtype <U1",
               id="mlp-input-strings"),
  pytest.param(lambda t: _mlp()(jnp.ones((2, 4), jnp.complex64)), TypeError,
               r"MLP: expected a real numeric array.*got dtype complex64", id="mlp-input-complex"),
  pytest.param(lambda t: models.MLP(4, [0], 3, rngs=nnx.Rngs(0)), ValueError,
               r"hidden_sizes must hold positive integers, got \[0\]", id="mlp-hidden-sizes"),
  pytest.param(lambda t: models.MLP(4, [8], 3, dropout=1.5, rngs=nnx.Rngs(0)), ValueError,
               r"dropout must lie in \[0, 1\), got 1\.5", id="mlp-dropout"),
  pytest.param(lambda t: models.MLP(4, [8], 3, activation="relux", rngs=nnx.Rngs(0)),
               ValueError, r"unknown activation 'relux'\. Did you mean 'relu'.*Choices:",
               id="mlp-activation"),
  pytest.param(lambda t: models.MLP(4, [8], 3, rngs=0), TypeError,
               r"rngs must be an nnx\.Rngs \(e\.g\. nnx\.Rngs\(0\).*got int", id="mlp-rngs"),
  pytest.param(lambda t: models.CNN(3, 3, channels=(4,), hidden=(8,), rngs=nnx.Rngs(0))(
                 jnp.ones((2, 8, 8, 1))), ValueError,
               r"CNN: expected input of shape \(batch, height, width, 3\), got shape "
               r"\(2, 8, 8, 1\)", id="cnn-input-channels"),
  pytest.param(lambda t: models.RNNClassifier(4, 8, 3, rngs=nnx.Rngs(0))(jnp.ones((2, 5, 3))),
               ValueError, r"RNNClassifier: expected input of shape \(batch, time, 4\), got "
               r"shape \(2, 5, 3\)", id="rnn-input-features"),
  pytest.param(lambda t: models.RNNClassifier(4, 8, 3, cell="lstn", rngs=nnx.Rngs(0)),
               ValueError, r"cell='lstn' is not supported\. Did you mean 'lstm'\? Choices: "
               r"'lstm', 'gru'", id="rnn-cell"),
  pytest.param(lambda t: models.RNNClassifier(10, 8, 3, embedding_dim=4, rngs=nnx.Rngs(0))(
                 jnp.full((2, 5), 50, jnp.int32)), ValueError,
               r"token ids must lie in \[0, vocab_size=10\), got ids in \[50, 50\]",
               id="rnn-token-out-of-range"),
  pytest.param(lambda t: _lm()(jnp.ones((2, 4))), TypeError,
               r"TransformerLM: expected integer token ids of shape \(batch, time\), got dtype "
               r"float32", id="transformer-float-tokens"),
  pytest.param(lambda t: _lm()(jnp.ones((2, 9), jnp.int32)), ValueError,
               r"sequence length 9 exceeds max_len=8", id="transformer-too-long"),
  pytest.param(lambda t: _lm()(jnp.full((2, 4), -1, jnp.int32)), ValueError,
               r"token ids must lie in \[0, vocab_size=10\), got ids in \[-1, -1\]",
               id="transformer-token-out-of-range"),
  pytest.param(lambda t: models.TransformerLM(10, 8, d_model=8, num_heads=3, num_layers=1,
                                              rngs=nnx.Rngs(0)), ValueError,
               r"num_heads=3 must divide d_model=8", id="transformer-heads"),
  pytest.param(lambda t: models.get("mlpp"), ValueError,
               r"name 'mlpp' is not a registered model\. Did you mean 'mlp'\? Known: ",
               id="model-unknown-name"),
  pytest.param(lambda t: models.get("mlp", in_feature=4, hidden_sizes=[8], out_features=3),
               TypeError, r"model 'mlp' \(MLP\) has no argument 'in_feature' \(did you mean "
               r"'in_features'\?\)\. Accepted: in_features", id="model-unknown-argument"),
  # Datasets: missing, truncated or corrupted files, empty sets, unknown names.
  pytest.param(lambda t: data.load("mnist", directory=t / "nowhere"), FileNotFoundError,
               r"no train-images-idx3-ubyte\[\.gz\] in .*nowhere", id="idx-missing"),
  pytest.param(lambda t: data.read_idx(_write_idx(t / "a-idx2-ubyte", np.zeros((3, 2), np.uint8),
                                                  replace_head=b"\x01\x02")), ValueError,
               r"bad IDX magic number 01 02 08 02: expected 00 00, a type code in \{08",
               id="idx-bad-magic"),
  pytest.param(lambda t: data.read_idx(_write_idx(t / "a-idx2-ubyte",
                                                  np.zeros((10, 3), np.uint8), cut=5)),
               ValueError, r"IDX file truncated: expected 42 bytes .*got 37", id="idx-truncated"),
  pytest.param(lambda t: data.load_idx_dataset(_idx_directory(t, bad_labels=True)), ValueError,
               r"train-labels-idx1-ubyte: IDX file truncated: expected 12 bytes .*got 10",
               id="idx-short-labels-in-directory"),
  pytest.param(lambda t: data.read_idx(_gzip_torn(t)), ValueError,
               r"not a readable gzip file \(truncated or corrupt\)", id="idx-corrupt-gzip"),
  pytest.param(lambda t: data.load("digitz"), ValueError,
               r"unknown dataset 'digitz'\. Did you mean 'digits'\? Known datasets:",
               id="dataset-unknown-name"),
  pytest.param(lambda t: data.load("digits", flaten=True), TypeError,
               r"dataset 'digits' has no argument 'flaten' \(did you mean 'flatten'\?\)\. "
               r"Accepted: flatten", id="dataset-unknown-argument"),
  pytest.param(lambda t: data.load("synthetic_classification", n=0, dim=3), ValueError,
               r"n must be a positive int, got 0", id="dataset-empty-synthetic"),
  pytest.param(lambda t: data.train_val_test_split((X[:0], Y[:0])), ValueError,
               r"of 0 examples give 0 train.*each requested set needs at least one",
               id="split-empty"),
  pytest.param(lambda t: data.train_val_test_split((X, Y), test_fraction=1.5), ValueError,
               r"test_fraction must be in \(0, 1\), got 1\.5", id="split-fraction"),
  pytest.param(lambda t: data.batch_indices(jax.random.key(0), 10, 0), ValueError,
               r"batch_size must be >= 1, got 0", id="batching-batch-size-zero"),
  pytest.param(lambda t: data.batch_indices(jax.random.key(0), 10, 20), ValueError,
               r"batch_size=20 exceeds the dataset size n=10", id="batching-batch-size-large"),
  pytest.param(lambda t: data.iterate_batches(X[:0], Y[:0], 2), ValueError,
               r"the dataset is empty \(n=0\)", id="batching-empty"),
  pytest.param(lambda t: data.one_hot(np.array([0, 5]), 3), ValueError,
               r"labels must lie in \[0, num_classes=3\), got range \[0, 5\]",
               id="one-hot-range"),
  pytest.param(lambda t: data.make_sequences(np.arange(5), seq_len=10), ValueError,
               r"tokens has 5 entries; seq_len=10 needs at least 11", id="sequences-too-short"),
  # Training: batch sizes, empty or mismatched data, unknown losses and metrics.
  pytest.param(lambda t: _fit(batch_size=0), ValueError, r"fit: batch_size must be ≥ 1, got 0",
               id="fit-batch-size-zero"),
  pytest.param(lambda t: _fit(batch_size=20), ValueError,
               r"fit: batch_size 20 is larger than the 10 training examples",
               id="fit-batch-size-large"),
  pytest.param(lambda t: _fit(X[:0], Y[:0]), ValueError, r"fit: train is empty", id="fit-empty"),
  pytest.param(lambda t: _fit(X, Y[:5]), ValueError, r"fit: train has 10 inputs but 5 targets",
               id="fit-length-mismatch"),
  pytest.param(lambda t: _fit(epochs=0), ValueError, r"fit: epochs must be ≥ 1, got 0",
               id="fit-epochs"),
  pytest.param(lambda t: _fit(np.zeros((10, 5), np.float32)), ValueError,
               r"MLP: expected input of shape \(batch, 4\).*got shape \(2, 5\)",
               id="fit-input-shape"),
  pytest.param(lambda t: _fit(metrics=("acuracy",)), ValueError,
               r"'acuracy' is not a registered metric\. Did you mean 'accuracy'",
               id="fit-metric-unknown"),
  pytest.param(lambda t: _fit(loss="crossentropy"), ValueError,
               r"unknown loss 'crossentropy'\. Did you mean: cross_entropy", id="fit-loss-unknown"),
  pytest.param(lambda t: _fit(y=Y.astype(np.float32)), TypeError,
               r"fit: .*labels.*float32.*integer", id="fit-float-labels"),
  pytest.param(lambda t: _fit(y=Y + 7), ValueError,
               r"fit: .*labels.*\[7, 9\].*\[0, 3\)", id="fit-labels-out-of-range"),
  pytest.param(lambda t: steps.get_loss("crossentropy"), ValueError,
               r"unknown loss 'crossentropy'\. Did you mean: cross_entropy.*Known: ",
               id="loss-unknown"),
  pytest.param(lambda t: metrics.get("acuracy"), ValueError,
               r"'acuracy' is not a registered metric\. Did you mean 'accuracy'.*Known: ",
               id="metric-unknown"),
  pytest.param(lambda t: metrics.get("accuracy")(jnp.ones((4, 3)), jnp.ones((5,), jnp.int32)),
               ValueError, r"predictions of shape \(4, 3\) do not match labels of shape \(5,\); "
               r"expected predictions of shape \(5,\)", id="metric-shape"),
  pytest.param(lambda t: metrics.get("accuracy")(jnp.ones((4, 3)), jnp.ones((4,))), TypeError,
               r"labels must be integer class ids, got dtype float32", id="metric-float-labels"),
  pytest.param(lambda t: problems.get("rosenbrok"), ValueError,
               r"'rosenbrok' is not a registered problem\. Did you mean 'rosenbrock'",
               id="problem-unknown"),
  # Cross-validation and splits.
  pytest.param(lambda t: data.stratified_kfold(Y, k=1), ValueError,
               r"k must be an int >= 2, got k=1", id="kfold-k-one"),
  pytest.param(lambda t: data.stratified_kfold(Y, k=11), ValueError,
               r"k=11 folds need at least k examples, got n_samples=10", id="kfold-k-large"),
  pytest.param(lambda t: cv_lib.cross_validate(_mlp, "sgd", (X, Y), k=1,
                                               hyperparams={"learning_rate": 0.1}),
               ValueError, r"cross_validate: k must be an int ≥ 2, got k=1", id="cv-k-one"),
  pytest.param(lambda t: cv_lib.cross_validate(_mlp, "sgd", (X, Y), k=50,
                                               hyperparams={"learning_rate": 0.1}),
               ValueError, r"k=50 folds need at least k examples, got 10", id="cv-k-large"),
  # Search spaces and tuners.
  pytest.param(lambda t: LogUniform(1.0, 0.1), ValueError,
               r"LogUniform: low must be < high, got low=1\.0, high=0\.1", id="space-reversed"),
  pytest.param(lambda t: Uniform(1.0, 1.0), ValueError,
               r"Uniform: low must be < high, got low=1\.0, high=1\.0", id="space-empty-range"),
  pytest.param(lambda t: LogUniform(0.0, 1.0), ValueError,
               r"a log scale needs low > 0, got low=0\.0", id="space-log-zero"),
  pytest.param(lambda t: IntUniform(5, 2), ValueError,
               r"IntUniform: low must be < high, got low=5, high=2", id="space-int-reversed"),
  pytest.param(lambda t: Choice([]), ValueError, r"Choice: values must not be empty",
               id="space-empty-choice"),
  pytest.param(lambda t: LogUniform(0.1, 1.0).grid(0), ValueError,
               r"number of points must be an integer ≥ 1, got 0", id="space-grid-zero"),
  pytest.param(lambda t: SearchSpace({"lr": (0.1, 1.0)}), TypeError,
               r"'lr' must be a LogUniform, Uniform, IntUniform, Choice or Conditional, got "
               r"tuple", id="space-not-a-dimension"),
  pytest.param(lambda t: _search(strategy="rnd"), ValueError,
               r"unknown strategy 'rnd'; accepted: grid, random.*did you mean 'random'",
               id="search-strategy"),
  pytest.param(lambda t: _search(n_trials=0), ValueError,
               r"n_trials must be an integer ≥ 1, got 0", id="search-n-trials"),
  pytest.param(lambda t: _sweep(hyperparams={"lr": [0.1]}), TypeError,
               r"hyperparams \['lr'\] are not hyperparameters of optimizer 'sgd'; it accepts: "
               r"learning_rate", id="sweep-unknown-hyperparameter"),
  pytest.param(lambda t: _sweep(hyperparams={"learning_rate": []}), ValueError,
               r"hyperparams\['learning_rate'\] is empty; give at least one value",
               id="sweep-empty-axis"),
  pytest.param(lambda t: _sweep(batch_size=20), ValueError,
               r"batch_size 20 is larger than the 10 training examples", id="sweep-batch-size"),
  pytest.param(lambda t: _sweep(hyperparams={"learning_rate": [0.1, -0.1]}), ValueError,
               r"learning_rate must be in \[0, inf\], got -0\.1", id="sweep-negative-lr"),
  # Results files and study configurations.
  pytest.param(_corrupted_results, UserWarning,
               r"runs\.jsonl:2: skipping corrupted record", id="results-corrupted-line"),
  pytest.param(_non_object_results, UserWarning,
               r"runs\.jsonl:2: skipping corrupted record \(a JSON list, not an object\)",
               id="results-non-object-line"),
  pytest.param(lambda t: results.append_records(t / "r.jsonl", [1]), TypeError,
               r"record 0 must be a mapping, got int", id="results-append-non-mapping"),
  pytest.param(lambda t: results.append_records(t / "r.jsonl", [{"f": object()}]), TypeError,
               r"cannot store a value of type object in JSON", id="results-append-unstorable"),
  pytest.param(lambda t: studies.apply_overrides(_config(), {"epoch": 3}), ValueError,
               r"unknown config key 'epoch'\. Did you mean 'epochs'\? Keys of Config: ",
               id="config-unknown-key"),
  pytest.param(lambda t: studies.apply_overrides(_config(), {"epochs": "three"}), TypeError,
               r"epochs='three' has the wrong type: expected an integer", id="config-wrong-type"),
  pytest.param(lambda t: _config_file(t, json.dumps({"batch_sizes": 64})), ValueError,
               r"overrides\.json: unknown config key 'batch_sizes'\. Did you mean 'batch_size'",
               id="config-file-unknown-key"),
  pytest.param(lambda t: _config_file(t, 'epochs = 3\nlr_decay = [0.1]\n', ".toml"), ValueError,
               r"overrides\.toml: unknown config key 'lr_decay'\. Did you mean 'lr_decays'",
               id="config-toml-unknown-key"),
  pytest.param(lambda t: _config_file(t, '{"epochs": 3,'), ValueError,
               r"overrides\.json: not valid JSON \(line 1, column", id="config-file-corrupted"),
  pytest.param(lambda t: _study_command_line(t, ["--set", "epoch=3"]), SystemExit,
               r"2", id="study-command-line-unknown-key"),
  pytest.param(lambda t: cli.check_studies(["decoupled_weight_decy"]), ValueError,
               r"unknown study 'decoupled_weight_decy'\. Did you mean: decoupled_weight_decay\? "
               r"Available: ", id="study-unknown"),
]


def _gzip_torn(tmp):
  path = tmp / "a-idx2-ubyte.gz"
  data.write_idx(path, np.zeros((10, 3), np.uint8))
  raw = path.read_bytes()
  path.write_bytes(raw[:len(raw) // 2])
  return path


BAD_VALUES = {
  "learning_rate": -0.1, "momentum": 1.0, "b1": 1.0, "b2": 1.5, "eps": -1e-8, "eps_root": -1.0,
  "decay": -0.1, "rho": 1.0, "weight_decay": -0.01, "initial_accumulator_value": -1.0,
  "momentum_decay": -0.004, "threshold": 2.0,
}
OPTIMIZER_RANGE_CASES = [
  pytest.param(name, arg, id=f"{name}-{arg}")
  for name in CLASSIC for arg in optim.info(name).defaults if arg in BAD_VALUES
]


@pytest.mark.parametrize(("call", "expected", "pattern"), CASES)
def test_bad_input(call, expected, pattern, tmp_path):
  if issubclass(expected, Warning):
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      call(tmp_path)
    messages = [str(w.message) for w in caught if issubclass(w.category, expected)]
    assert any(re.search(pattern, m, re.S) for m in messages), messages
    return
  with pytest.raises(expected) as error:
    call(tmp_path)
  assert re.search(pattern, str(error.value), re.S), str(error.value)


def test_study_command_line_error_names_the_key(tmp_path, capsys):
  with pytest.raises(SystemExit):
    _study_command_line(tmp_path, ["--set", "epoch=3"])
  assert "unknown config key 'epoch'. Did you mean 'epochs'?" in capsys.readouterr().err
  cfg = _study_command_line(tmp_path, ["--set", "epochs=3", "--set", "hidden_sizes=[16]",
                                       "--set", "schedule=constant"])
  assert (cfg.epochs, cfg.hidden_sizes, cfg.schedule) == (3, (16,), "constant")
  saved = tmp_path / "saved.json"  # a record's "config" reruns that configuration
  saved.write_text(json.dumps(results.to_jsonable(cfg._asdict())), encoding="utf-8")
  assert _study_command_line(tmp_path, ["--config", str(saved)]) == cfg
  assert _study_command_line(tmp_path, ["--config", str(saved), "--set", "epochs=4"]).epochs == 4


@pytest.mark.parametrize(("name", "arg"), OPTIMIZER_RANGE_CASES)
def test_optimizer_hyperparameter_out_of_range(name, arg):
  bad = BAD_VALUES[arg]
  with pytest.raises(ValueError) as error:
    optim.get(name, **{arg: bad})
  pattern = rf"\b{arg} must be in [\[(]-?[\d.]+, (inf|[\d.]+)[\])], got {re.escape(repr(bad))}"
  assert re.search(pattern, str(error.value)), str(error.value)


def test_catalogue_size():
  """The catalogue the README counts: at least 30 distinct hand-written cases."""
  ids = [case.id for case in CASES]
  assert len(ids) == len(set(ids)) and len(ids) >= 30
  assert len(OPTIMIZER_RANGE_CASES) >= 40
