"""Vectorized sweeps: the same numbers as each run alone, chunking, seeds, divergence, checks."""

import numpy as np
import pytest
from flax import nnx

from optlab import data, models, optim
from optlab.train import fit
from optlab.tune.sweep import sweep

LEARNING_RATES = [0.05, 0.2, 0.5, 50.0]  # the last one diverges


@pytest.fixture(scope="module")
def iris():
  ds = data.iris()
  x = data.Standardizer.fit(ds.x).apply(ds.x).astype(np.float32)
  return x, ds.y


def _mlp(rngs):
  return models.MLP(4, [8], 3, rngs=rngs)


def _sweep(iris, **kwargs):
  return sweep(_mlp, "sgd", iris, hyperparams={"learning_rate": LEARNING_RATES},
               fixed={"momentum": 0.9}, seeds=[0, 1], validation=iris, epochs=2,
               batch_size=16, **kwargs)


@pytest.fixture(scope="module")
def grid(iris):
  return _sweep(iris, keep_params=True, workers=1)


def test_one_run_of_the_sweep_equals_fit(iris, grid):
  config, seed = 1, 1
  result = fit(_mlp(nnx.Rngs(seed)), optim.get("sgd", learning_rate=LEARNING_RATES[config],
                                                momentum=0.9),
               iris, validation=iris, epochs=2, batch_size=16, seed=seed, progress=False)
  for e, logs in enumerate(result.history):
    for key in ("train_loss", "val_loss", "val_accuracy"):
      np.testing.assert_allclose(grid[key][config, 1, e], logs[key], rtol=1e-5, err_msg=key)
  final = nnx.state(result.model, nnx.Param)
  kernel = final["layers"][0]["kernel"][...]
  np.testing.assert_allclose(grid.params["layers"][0]["kernel"][config, 1], kernel, rtol=1e-5,
                             atol=1e-6)


def test_chunked_sweep_equals_the_single_program(iris, grid):
  chunked = _sweep(iris, chunk_size=3)  # 8 runs: chunks of 3, 3 and 2 (+1 padding)
  assert chunked.num_chunks == 3 and chunked.chunk_size == 3 and grid.num_chunks == 1
  np.testing.assert_array_equal(chunked.status, grid.status)
  ok = grid.status == "completed"
  for key in ("train_loss", "val_loss", "val_accuracy"):
    np.testing.assert_allclose(chunked[key][ok], grid[key][ok], rtol=1e-5, err_msg=key)


def test_concurrent_chunks_equal_the_single_program(iris, grid):
  both = _sweep(iris, workers=2, keep_params=True)  # two chunks of 4, trained side by side
  assert both.num_chunks == 2 and both.chunk_size == 4
  np.testing.assert_array_equal(both.status, grid.status)
  np.testing.assert_array_equal(both.skipped_steps, grid.skipped_steps)
  ok = grid.status == "completed"
  for key in ("train_loss", "val_loss", "val_accuracy"):
    np.testing.assert_allclose(both[key][ok], grid[key][ok], rtol=1e-5, err_msg=key)
  np.testing.assert_allclose(both.params["layers"][0]["kernel"][ok],
                             grid.params["layers"][0]["kernel"][ok], rtol=1e-5, atol=1e-6)


def test_groups_of_other_batch_sizes_train_side_by_side_with_the_same_numbers(iris):
  def run(**kwargs):
    return sweep(_mlp, "sgd", iris, hyperparams={"learning_rate": [0.1, 0.3]},
                 fixed={"momentum": 0.9}, seeds=[0], validation=iris, epochs=1, **kwargs)

  together = run(batch_sizes=[16, 32], chunk_size=2, workers=2)  # two programs side by side
  assert together.num_chunks == 2 and [c["batch_size"] for c in together.configs] == [16, 32] * 2
  for column, batch_size in enumerate([16, 32]):
    alone = run(batch_size=batch_size, workers=1)
    for key in ("train_loss", "val_loss", "val_accuracy"):
      assert np.isfinite(together[key]).all()
      np.testing.assert_allclose(together[key][column::2], alone[key], rtol=1e-6, err_msg=key)


def test_sweeps_called_from_two_threads_at_once_give_the_single_call_numbers(iris, grid):
  from concurrent.futures import ThreadPoolExecutor

  with ThreadPoolExecutor(2) as pool:  # e.g. an Optuna study with n_jobs=2, a sweep per trial
    results = list(pool.map(lambda _: _sweep(iris, workers=1), range(2)))
  ok = grid.status == "completed"
  for result in results:
    np.testing.assert_array_equal(result.status, grid.status)
    np.testing.assert_array_equal(result["val_loss"][ok], grid["val_loss"][ok])


def test_default_workers_follow_the_cores(monkeypatch):
  import importlib

  sweep_module = importlib.import_module("optlab.tune._chunks")
  monkeypatch.setattr(sweep_module.os, "sched_getaffinity", lambda _: set(range(4)),
                      raising=False)
  assert sweep_module.default_workers() == 4
  assert sweep_module.default_workers(devices_per_chunk=2) == 2
  assert sweep_module.default_workers(devices_per_chunk=8) == 1


def test_a_failing_chunk_stops_the_sweep():
  import functools
  import threading

  from optlab.tune._chunks import _run_chunks

  started, stopped = [], []

  def fails_second(chunk, stop):
    started.append(chunk)
    if chunk == 1:
      raise RuntimeError("chunk 1 failed")

  def tasks(fn, count):
    return [functools.partial(fn, chunk) for chunk in range(count)]

  with pytest.raises(RuntimeError, match="chunk 1 failed"):
    _run_chunks(tasks(fails_second, 3), workers=1)
  assert started == [0, 1]  # one after another: chunk 2 never starts
  started.clear()
  first_failed = threading.Event()

  def train_chunk(chunk, stop):
    started.append(chunk)
    if chunk == 1:
      first_failed.set()
      raise RuntimeError("chunk 1 failed")
    first_failed.wait(10)
    assert stop.wait(10)  # long chunks still running when chunk 1 fails: told to stop
    stopped.append(chunk)

  with pytest.raises(RuntimeError, match="chunk 1 failed"):
    _run_chunks(tasks(train_chunk, 4), workers=2)
  # Chunk 2 may start on the failed chunk's thread; chunk 3 waits for a free one: dropped.
  assert 0 in stopped and {0, 1} <= set(started) and 3 not in started


def test_seeds_differ_and_divergence_stays_in_its_run(grid):
  assert grid["val_loss"].shape == (4, 2, 2)
  np.testing.assert_array_equal(grid.epochs, [0, 1])
  assert not np.allclose(grid["val_loss"][:3, 0], grid["val_loss"][:3, 1])
  assert (grid.status[:3] == "completed").all() and (grid.status[3] == "diverged").all()
  assert np.isfinite(grid["val_accuracy"][:3]).all()
  assert np.isnan(grid["val_accuracy"][3, :, -1]).all()
  config, value = grid.best("val_accuracy")
  assert config["learning_rate"] in LEARNING_RATES[:3]
  assert value == pytest.approx(np.nanmax(grid.mean("val_accuracy")[:, -1]))
  assert grid.mean("val_loss").shape == grid.std("val_loss").shape == (4, 2)
  assert grid.best("val_loss")[1] == pytest.approx(np.nanmin(grid.mean("val_loss")[:, -1]))
  records = grid.to_records()
  assert len(records) == 4 * 2 * 2
  assert {"learning_rate", "seed", "epoch", "val_accuracy", "status"} <= set(records[0])
  assert grid.compile_seconds > 0 and grid.train_seconds > 0


def test_bad_inputs_raise_clear_errors(iris):
  def run(**kwargs):
    args = {"hyperparams": {"learning_rate": [0.1]}, "epochs": 1, "batch_size": 16, **kwargs}
    optimizer = args.pop("optimizer", "sgd")
    return sweep(_mlp, optimizer, iris, **args)

  with pytest.raises(ValueError, match="hyperparams is empty"):
    run(hyperparams={})
  with pytest.raises(ValueError, match=r"hyperparams\['learning_rate'\] is empty"):
    run(hyperparams={"learning_rate": []})
  with pytest.raises(TypeError, match="mixes numbers with non-numeric"):
    run(hyperparams={"learning_rate": [0.1, "fast"]})
  with pytest.raises(TypeError, match=r"'betta'.*accepts: learning_rate"):
    run(hyperparams={"learning_rate": [0.1], "betta": [0.9]})
  with pytest.raises(TypeError, match="not hyperparameters of optimizer"):
    run(optimizer=lambda learning_rate: optim.get("sgd", learning_rate=learning_rate),
        fixed={"momentum": 0.9})
  with pytest.raises(ValueError, match="seeds is empty"):
    run(seeds=[])
  with pytest.raises(ValueError, match="chunk_size must be"):
    run(chunk_size=0)
  with pytest.raises(ValueError, match="workers must be"):
    run(workers=0)
  with pytest.raises(ValueError, match="batch_size 200 is larger than the 150"):
    run(batch_size=200)
  with pytest.raises(ValueError, match="both swept"):
    run(fixed={"learning_rate": 0.1})


@pytest.mark.slow
def test_batch_size_axis_and_static_hyperparameters(iris):
  result = sweep(_mlp, "sgd", iris, hyperparams={"learning_rate": [0.1], "nesterov": [False, True]},
                 fixed={"momentum": 0.9}, batch_sizes=[16, 32], validation=iris, epochs=1)
  assert [c["batch_size"] for c in result.configs] == [16, 32, 16, 32]
  assert result.num_chunks == 4 and (result.status == "completed").all()
  alone = sweep(_mlp, "sgd", iris, hyperparams={"learning_rate": [0.1]},
                fixed={"momentum": 0.9, "nesterov": True}, batch_size=32, validation=iris,
                epochs=1)
  np.testing.assert_allclose(result["val_loss"][3], alone["val_loss"][0], rtol=1e-5)


@pytest.mark.slow  # two compilations: ~5 s on an idle 2-core machine, twice that under load
def test_sweep_benchmark_reports_a_ratio():
  from optlab.benchmarks import sweeps

  values = sweeps.sweep_vectorized_vs_sequential(num_learning_rates=2, num_seeds=2, epochs=1,
                                                 hidden=8, repeats=1)
  assert values["ratio_vectorized_speedup"] > 0
  assert values["max_val_accuracy_difference"] < 0.05
  # The roofline: 2 runs × 1 epoch of the 64-8-10 MLP on digits' 1,437 training images.
  from optlab.benchmarks.sweeps import _matmul_flop_per_run_epoch

  assert _matmul_flop_per_run_epoch(1437, 64, 8) == 22 * (4 * 64 * (64 * 8 + 80) + 2 * 64 * 80)
  assert values["matmul_peak_gflops"] > 0 and values["speedup_bound_at_matmul_peak"] > 0
  assert values["xla_products_ms_per_run_epoch"] > 0 and values["speedup_bound_at_xla_products"] > 0
  if "ratio_all_cores_sharded_speedup" in values:  # a child process with one device per core
    assert values["all_cores_devices"] >= 2 and values["ratio_all_cores_sharded_speedup"] > 0
    assert values["all_cores_max_val_accuracy_difference"] < 0.05
    assert values["all_cores_sharded_max_val_accuracy_difference"] < 0.05
