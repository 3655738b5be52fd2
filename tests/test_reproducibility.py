"""Same seed, same machine: the same numbers, bit for bit. Different seeds: different runs.

For each model family (MLP with dropout, CNN, LSTM classifier, Transformer) a tiny
one-epoch ``fit`` run twice from the same seed gives identical losses and parameters;
a different seed gives a different initialization (GRU included) and a different
batch order. A vectorized sweep is reproducible in the same way. Every history file
starts with a record that says how the run was made.
"""

from __future__ import annotations

import importlib

import jax
import numpy as np
import pytest
from flax import nnx

from optlab import models, optim, results, train
from optlab.train import steps

sweep_lib = importlib.import_module("optlab.tune.sweep")

N = 48
BATCH = 8


def _labels(seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 3, N).astype(np.int32)


def _features(*shape: int) -> np.ndarray:
  return np.random.default_rng(1).normal(size=(N, *shape)).astype(np.float32)


# name -> (model factory of an nnx.Rngs, training inputs)
FAMILIES = {
  "mlp": (lambda r: models.MLP(6, [16], 3, dropout=0.1, rngs=r), _features(6)),
  "cnn": (lambda r: models.CNN(1, 3, channels=(4,), hidden=(8,), rngs=r), _features(6, 6, 1)),
  "lstm": (lambda r: models.RNNClassifier(3, 8, 3, cell="lstm", rngs=r), _features(5, 3)),
  "gru": (lambda r: models.RNNClassifier(3, 8, 3, cell="gru", rngs=r), _features(5, 3)),
  "transformer": (
    lambda r: models.TransformerClassifier(11, 3, 6, d_model=8, num_heads=2, num_layers=1,
                                           rngs=r),
    np.random.default_rng(2).integers(0, 11, (N, 6)).astype(np.int32),
  ),
}


@pytest.fixture(scope="module", autouse=True)
def _each_run_compiles_its_own_programs():
  """The test processes' compilation cache (conftest.py) stores nothing in this module.

  So the second run of a pair is compiled again, as it is in a fresh process without
  a cache: the bit-for-bit checks cover the compilation too, not one binary run twice.
  """
  name = "jax_persistent_cache_min_compile_time_secs"
  before = getattr(jax.config, name)
  jax.config.update(name, float("inf"))
  yield
  jax.config.update(name, before)


def _params(model: nnx.Module) -> list[np.ndarray]:
  return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _run(family: str, seed: int, init_seed: int | None = None, **kwargs):
  """One epoch of `family`; no validation set, whose evaluation would double the compile."""
  build, x = FAMILIES[family]
  model = build(nnx.Rngs(seed if init_seed is None else init_seed))
  return train.fit(
    model, optim.get("adam", learning_rate=3e-3), (x, _labels()), epochs=1,
    batch_size=BATCH, seed=seed, progress=False, **kwargs,
  )


def _logged(result) -> list[dict]:
  """The history without wall-clock times."""
  return [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in result.history]


def _assert_same_run(first, second):
  assert first.status == second.status == "completed"
  assert _logged(first) == _logged(second)  # exact float equality, not closeness
  for a, b in zip(_params(first.model), _params(second.model), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def mlp_runs(tmp_path_factory):
  """Three MLP runs from one initialization: seed 0, seed 0 again (writing its history),
  and seed 1."""
  path = tmp_path_factory.mktemp("history") / "history.jsonl"
  first = _run("mlp", seed=0)
  again = _run("mlp", seed=0, history_path=path, run_name="repro")
  other = _run("mlp", seed=1, init_seed=0)
  return first, again, other, results.read_records(path)


def test_mlp_same_seed_gives_identical_losses_and_parameters(mlp_runs):
  first, again, _, _ = mlp_runs
  _assert_same_run(first, again)


@pytest.mark.parametrize("family", ["cnn", "lstm", "transformer"])
def test_same_seed_gives_identical_losses_and_parameters(family):
  _assert_same_run(_run(family, seed=3), _run(family, seed=3))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_different_seeds_give_different_initializations(family):
  build, _ = FAMILIES[family]
  zero, one = _params(build(nnx.Rngs(0))), _params(build(nnx.Rngs(1)))
  assert any(not np.array_equal(a, b) for a, b in zip(zero, one, strict=True))
  again = _params(build(nnx.Rngs(0)))
  assert all(np.array_equal(a, b) for a, b in zip(zero, again, strict=True))


def test_different_seeds_give_different_data_orders(mlp_runs):
  orders = [np.asarray(steps.epoch_batch_indices(jax.random.fold_in(jax.random.key(s), 0), N,
                                                 BATCH)) for s in (0, 1, 0)]
  assert not np.array_equal(orders[0], orders[1])
  np.testing.assert_array_equal(orders[0], orders[2])
  # The same initialization trained with another seed sees another batch order.
  first, _, other, _ = mlp_runs
  assert first.history[0]["train_loss"] != other.history[0]["train_loss"]
  assert any(not np.array_equal(a, b)
             for a, b in zip(_params(first.model), _params(other.model), strict=True))


def _sweep(seeds, dropout: float = 0.0):
  _, x = FAMILIES["mlp"]
  return sweep_lib.sweep(
    lambda r: models.MLP(6, [16], 3, dropout=dropout, rngs=r), "sgd", (x, _labels()),
    hyperparams={"learning_rate": [0.05, 0.2]}, seeds=seeds, epochs=2, batch_size=BATCH,
    keep_params=True,
  )


@pytest.fixture(scope="module")
def swept():
  return _sweep((0, 1))


def test_sweep_is_reproducible_and_seeds_differ(swept):
  again = _sweep((0, 1))
  assert swept.keys() == again.keys()
  for key in swept.keys():
    np.testing.assert_array_equal(swept[key], again[key])
  for a, b in zip(jax.tree.leaves(swept.params), jax.tree.leaves(again.params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  losses = swept["train_loss"]  # [config, seed, evaluation]
  assert not np.array_equal(losses[:, 0], losses[:, 1])


def test_sweep_of_a_model_with_dropout_is_reproducible():
  first, second = _sweep((0,), dropout=0.1), _sweep((0,), dropout=0.1)
  np.testing.assert_array_equal(first["train_loss"], second["train_loss"])


def test_history_file_says_how_to_rerun(mlp_runs):
  _, again, _, (start, *evaluations) = mlp_runs
  assert start["kind"] == "run_start" and start["run"] == "repro"
  assert {"seed": 0, "epochs": 1, "batch_size": BATCH, "loss": "cross_entropy"}.items() <= (
    start.items())
  provenance = start["provenance"]
  assert {"optlab", "jax", "jaxlib", "optax", "flax", "numpy"} <= set(provenance["versions"])
  assert all(provenance["versions"][k] for k in ("jax", "optax", "flax", "numpy"))
  assert {"python", "platform", "device_kind", "git_commit", "timestamp"} <= set(provenance)
  assert [e["train_loss"] for e in evaluations] == [h["train_loss"] for h in again.history]


def test_history_records_the_optimizer_and_model(mlp_runs):
  start = mlp_runs[3][0]
  assert start["optimizer"]["name"] == "adam" and not start["optimizer"]["inject"]
  assert {"learning_rate": 3e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}.items() <= (
    start["optimizer"]["hyperparams"].items())
  assert optim.get("adam", **start["optimizer"]["hyperparams"]) is not None  # rebuildable
  assert start["model"] == {"class": "optlab.models.mlp.MLP", "num_params": 163,
                            "arguments": None}
  assert start["config"] == {}



def test_sweep_records_say_how_to_rerun(swept):
  record = swept.to_records()[0]
  assert {"optimizer", "batch_size", "epochs", "provenance"} <= set(record)
