"""Tests of optlab.tune.search (hyperparameter search on Optuna) and optlab.tune.report."""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import optax
import optuna
import pytest
from flax import nnx

from optlab import train
from optlab.optim.space import Choice, Conditional, IntUniform, LogUniform, SearchSpace, Uniform
from optlab.tune.search import PruningCallback, SearchResult, search

SPACE = {"lr": LogUniform(1e-5, 1.0), "m": Uniform(0.0, 1.0)}


def bowl(config, trial):
  """Minimum 0 at lr = 1e-2, m = 0.9."""
  del trial
  return (math.log10(config["lr"]) + 2) ** 2 + (config["m"] - 0.9) ** 2


# Budgets and tolerances: the worst best value over seeds 0-4 was grid 0.010 (the
# grid holds lr=1e-2, m=0.8), random 0.091, quasi_random 0.018, tpe 0.021; gp (12 trials, seeds
# 0-2) 0.032. GPSampler needs torch, which is skipped where it is not installed.
@pytest.mark.parametrize(("strategy", "n_trials", "tol"), [
    ("grid", None, 0.0101), ("random", 60, 0.15), ("quasi_random", 64, 0.05),
    ("tpe", 40, 0.05), ("gp", 12, 0.05),
])
def test_each_strategy_finds_the_minimum(strategy, n_trials, tol):
  if strategy == "gp" and importlib.util.find_spec("torch") is None:
    pytest.skip("GPSampler needs torch")
  result = search(bowl, SPACE, strategy=strategy, n_trials=n_trials, grid_points=6)
  assert len(result.study.trials) == (36 if strategy == "grid" else n_trials)
  assert result.best_value <= tol
  assert result.best_value == pytest.approx(bowl(result.best_config, None))
  assert result.study.trials[result.best_trial].value == result.best_value


def test_halton_and_maximize():
  def peak(config, trial):
    del trial
    return -bowl(config, None)

  result = search(peak, SPACE, strategy="quasi_random", quasi_random="halton", n_trials=64,
                  direction="maximize")
  assert result.direction == "maximize"
  assert result.best_value >= -0.05
  best = result.best_so_far()
  assert best.shape == (64,) and np.all(np.diff(best) >= 0) and best[-1] == result.best_value


def branchy(config, trial):
  """The optimum (0) is in branch "b" with width 3; branch "a" never goes below 0.5."""
  del trial
  if config["kind"] == "a":
    return 0.5 + (config["scale"] - 0.5) ** 2
  return ((config["width"] - 3) / 4) ** 2 + ((math.log10(config["lr"]) + 2) / 2) ** 2


BRANCHY = SearchSpace({
    "kind": Choice(("a", "b")),
    "scale": Conditional(Uniform(0.0, 1.0), parent="kind", values=("a",)),
    "width": Conditional(IntUniform(1, 8), parent="kind", values=("b",)),
    "lr": LogUniform(1e-4, 1.0),
})


@pytest.mark.parametrize("strategy", ["grid", "random", "tpe"])
def test_conditional_space(strategy):
  result = search(branchy, BRANCHY, strategy=strategy, n_trials=None if strategy == "grid" else 40,
                  grid_points={"scale": 3, "width": 8, "lr": 5})
  if strategy == "grid":  # the space's own expansion: 3*5 + 8*5 configurations, each once
    assert len(result.study.trials) == len(BRANCHY.grid({"scale": 3, "width": 8, "lr": 5})) == 55
    configs = {tuple(sorted(r.items())) for r in (
        {k: v for k, v in row.items() if k in BRANCHY and v is not None}
        for row in result.trials())}
    assert len(configs) == 55
    assert result.best_value == pytest.approx(0.0)
  assert result.best_config["kind"] == "b" and "scale" not in result.best_config
  assert result.best_value < 0.5  # below everything branch "a" can give
  for row in result.trials():  # inactive children are None
    assert (row["scale"] is None) == (row["kind"] == "b")
    assert (row["width"] is None) == (row["kind"] == "a")


def test_choice_of_unhashable_values_round_trips():
  space = {"sizes": Choice(((32,), (64, 64), (16, 16, 16))), "lr": LogUniform(1e-3, 1.0)}

  def objective(config, trial):
    del trial
    assert isinstance(config["sizes"], tuple)
    return len(config["sizes"]) + config["lr"]

  result = search(objective, space, strategy="grid", grid_points=2)
  assert result.best_config == {"sizes": (32,), "lr": pytest.approx(1e-3)}
  assert {row["sizes"] for row in result.trials()} == {(32,), (64, 64), (16, 16, 16)}


def test_median_pruner_prunes_bad_curves():
  def objective(config, trial):
    for step in range(10):  # curves level off at the final value; bad configs stay bad
      value = bowl(config, None) + 1.0 / (step + 1)
      trial.report(value, step)
    return value

  result = search(objective, SPACE, strategy="random", n_trials=30, pruner="median")
  states = [row["state"] for row in result.trials()]
  assert states.count("pruned") >= 5 and states.count("complete") >= 5
  for row in result.trials():
    assert row["n_intermediate"] == 10 or row["state"] == "pruned"
  assert not any(t.state.name == "PRUNED" for t in result.study.trials[:5])  # startup trials


def test_pruning_callback_with_fit():
  x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)

  def objective(config, trial):
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    fit = train.fit(model, optax.sgd(config["lr"]), (x, y), validation=(x, y), epochs=3,
                    batch_size=16, callbacks=[PruningCallback(trial)], progress=False)
    return fit.history[-1]["val_loss"]

  # Each fit compiles anew (~0.8 s), so two trials of the shuffled grid (1.0 then 0.0316): the
  # second curve is worse than the first's at epoch 0 and is pruned there.
  result = search(objective, {"lr": LogUniform(1e-3, 1.0)}, strategy="grid", grid_points=3,
                  n_trials=2, pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
  rows = result.trials()
  assert [r["state"] for r in rows] == ["complete", "pruned"]
  assert all(r["n_intermediate"] == 3 for r in rows if r["state"] == "complete")
  assert all(r["n_intermediate"] == 1 for r in rows if r["state"] == "pruned")
  assert result.best_config["lr"] == pytest.approx(1.0)


def test_pruning_callback_names_missing_monitor():
  def objective(config, trial):
    PruningCallback(trial, monitor="val_acc").on_evaluation(0, {"val_loss": 1.0})
    return config["m"]

  with pytest.raises(KeyError, match=r"val_acc.*val_loss"):
    search(objective, SPACE, strategy="random", n_trials=1)


def test_nonfinite_and_caught_failures_do_not_crash_or_win():
  def objective(config, trial):
    del trial
    if config["m"] < 0.3:
      return math.nan  # a diverged run
    if config["m"] < 0.5:
      return -math.inf
    if config["m"] < 0.6:
      raise FloatingPointError("boom")
    return config["m"]

  result = search(objective, SPACE, strategy="random", n_trials=30, catch=(FloatingPointError,))
  states = [row["state"] for row in result.trials()]
  assert len(states) == 30 and states.count("fail") >= 10
  assert result.best_value >= 0.6 and result.best_config["m"] == result.best_value
  failed = [t for t in result.study.trials if t.state.name == "FAIL"]
  assert all("optlab_fail_reason" in t.user_attrs for t in failed)

  def uncaught(config, trial):
    raise FloatingPointError("uncaught")

  with pytest.raises(FloatingPointError, match="uncaught"):
    search(uncaught, SPACE, strategy="random", n_trials=3)


def test_objective_must_return_a_number():
  with pytest.raises(TypeError, match=r"must return a float.*str"):
    search(lambda c, t: "oops", SPACE, strategy="random", n_trials=2)


def test_all_failed_gives_an_empty_best():
  result = search(lambda c, t: math.nan, SPACE, strategy="random", n_trials=3)
  assert result.best_config == {} and math.isnan(result.best_value) and result.best_trial == -1
  assert result.best_so_far().size == 0 and result.importances() == {}


@pytest.mark.parametrize("suffix", [".log", pytest.param(".db", marks=pytest.mark.slow)])
def test_two_processes_share_one_study(tmp_path, suffix):
  storage = tmp_path / f"study{suffix}"
  worker = pathlib.Path(__file__).with_name("_shared_study_worker.py")
  env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1]),
         "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen([sys.executable, str(worker), str(storage), "random", "0", "20",
                             str(i), "2"], env=env, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  for proc in procs:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
  result = _resume(storage, 20)
  trials = result.study.trials
  assert sorted(t.number for t in trials) == list(range(20))
  assert all(t.state.name == "COMPLETE" for t in trials)
  assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
  # Same seed in both workers, yet no configuration is evaluated twice.
  assert len({(t.params["x"], t.params["lr"]) for t in trials}) == 20
  # Resuming with a larger budget adds only the missing trials; a full study does nothing.
  assert len(_resume(storage, 25).study.trials) == 25
  assert len(_resume(storage, 25).study.trials) == 25


def _resume(storage, n_trials) -> SearchResult:
  sys.path.insert(0, str(pathlib.Path(__file__).parent))
  try:
    from _shared_study_worker import SPACE as space
    from _shared_study_worker import objective
  finally:
    sys.path.pop(0)
  return search(objective, space, strategy="random", n_trials=n_trials, storage=storage,
                study_name="shared")


def test_grid_resume_continues_the_same_grid(tmp_path):
  storage = tmp_path / "grid.log"
  first = search(bowl, SPACE, strategy="grid", grid_points=4, n_trials=10, storage=storage, seed=3)
  assert len(first.study.trials) == 10
  full = search(bowl, SPACE, strategy="grid", grid_points=4, storage=storage, seed=7)
  points = {(t.params["lr"], t.params["m"]) for t in full.study.trials}
  assert len(full.study.trials) == 16 and len(points) == 16


def test_resume_refuses_another_space_or_direction(tmp_path):
  storage = tmp_path / "s.db"
  search(bowl, SPACE, strategy="random", n_trials=2, storage=storage)
  other = {"lr": LogUniform(1e-4, 1.0), "m": Uniform(0.0, 1.0)}
  with pytest.raises(ValueError, match=r"different space(.|\n)*1e-05(.|\n)*0.0001"):
    search(bowl, other, strategy="random", n_trials=4, storage=storage)
  with pytest.raises(ValueError, match=r"direction 'minimize'.*'maximize'"):
    search(bowl, SPACE, strategy="random", n_trials=4, storage=storage, direction="maximize")
  # A different strategy may continue the same study (e.g. TPE after random start-up).
  assert len(search(bowl, SPACE, strategy="tpe", n_trials=4, storage=storage).study.trials) == 4


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"strategy": "tpee", "n_trials": 3}, ValueError,
     "unknown strategy 'tpee'.*did you mean 'tpe'"),
    ({"strategy": "random"}, ValueError, "'random' needs n_trials"),
    ({"strategy": "random", "n_trials": 0}, ValueError, "n_trials must be an integer ≥ 1, got 0"),
    ({"n_trials": 3, "direction": "min"}, ValueError, "direction must be 'minimize' or "
     "'maximize', got 'min'"),
    ({"n_trials": 3, "pruner": "medain"}, ValueError, "unknown pruner 'medain'"),
    ({"n_trials": 3, "quasi_random": "lattice"}, ValueError, "quasi_random must be"),
    ({"n_trials": 3, "seed": -1}, ValueError, "seed must be an integer ≥ 0"),
    ({"n_trials": 3, "storage": "/nonexistent/dir/s.db"}, ValueError,
     "directory '/nonexistent/dir' does not exist"),
    ({"n_trials": 3, "storage": "study.txt"}, ValueError, "must end in .db"),
    ({"strategy": "grid", "grid_points": {"nope": 2}}, ValueError, "nope"),
])
def test_argument_errors(kwargs, error, match):
  calls = []
  with pytest.raises(error, match=match):
    search(lambda c, t: calls.append(c) or 0.0, SPACE, **kwargs)
  assert not calls  # raised before any trial ran


@pytest.mark.parametrize(("make", "match"), [
    (lambda: search(bowl, {}, n_trials=2), "at least one dimension"),
    (lambda: Uniform(1.0, 1.0), "low must be < high"),
    (lambda: Uniform(2.0, 1.0), "low must be < high, got low=2.0, high=1.0"),
    (lambda: LogUniform(0.0, 1.0), "log scale needs low > 0"),
    (lambda: IntUniform(0, 8, log=True), "log scale needs low > 0"),
    (lambda: Choice(()), "must not be empty"),
    (lambda: search(bowl, {"m": Conditional(Uniform(0, 1), parent="opt", values=("sgd",))},
                    n_trials=2), "conditional on 'opt', which is defined nowhere"),
])
def test_invalid_spaces_raise_clear_errors(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_result_reports_and_plot(tmp_path):
  pytest.importorskip("matplotlib")
  from optlab.tune.report import plot_search

  def objective(config, trial):
    trial.report(bowl(config, None), 0)
    if config["m"] < 0.1:
      raise optuna.TrialPruned()
    return math.nan if config["m"] > 0.95 else bowl(config, None)

  result = search(objective, SPACE, strategy="random", n_trials=25, seed=1)
  rows = result.trials()
  assert len(rows) == 25 and set(rows[0]) >= {"number", "state", "value", "lr", "m",
                                              "duration_seconds", "n_intermediate"}
  assert {"complete", "pruned", "fail"} <= {r["state"] for r in rows}
  table = result.table(top=5).splitlines()
  assert len(table) == 6 and table[0].split()[:3] == ["number", "state", "value"]
  assert table[1].split()[0] == str(result.best_trial)
  assert len(result.table().splitlines()) == 26
  best = result.best_so_far()
  assert best.shape == (sum(r["state"] == "complete" for r in rows),)
  assert np.all(np.diff(best) <= 0) and best[-1] == result.best_value
  importances = result.importances()
  assert set(importances) == {"lr", "m"} and sum(importances.values()) == pytest.approx(1.0)
  fig = plot_search(result, tmp_path / "search.png", title="bowl")
  assert (tmp_path / "search.png").stat().st_size > 10_000 and len(fig.axes) == 3


def test_plot_without_importances(tmp_path):
  pytest.importorskip("matplotlib")
  from optlab.tune.report import plot_search

  result = search(lambda c, t: c["lr"], {"lr": LogUniform(1e-5, 1.0)}, strategy="random",
                  n_trials=1)
  assert result.importances() == {}
  fig = plot_search(result, tmp_path / "one.png")
  assert (tmp_path / "one.png").exists() and len(fig.axes) == 3


def test_gp_without_torch_says_what_to_install(monkeypatch):
  # The package exports the function `search`, which shadows the module of that name.
  search_module = importlib.import_module("optlab.tune.search")

  real = importlib.util.find_spec
  monkeypatch.setattr(search_module.importlib.util, "find_spec",
                      lambda name, *a: None if name == "torch" else real(name, *a))
  with pytest.raises(ImportError, match="pip install torch"):
    search(bowl, SPACE, strategy="gp", n_trials=3)


def test_optuna_logging_is_restored():
  before = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.INFO)
  try:
    search(bowl, SPACE, strategy="random", n_trials=2, show_progress=True)
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
  finally:
    optuna.logging.set_verbosity(before)
