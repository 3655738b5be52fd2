"""Tests of the optimizer_benchmark study: the runner end to end on tiny workloads, the
one-program-for-every-optimizer trick against plain optax loops, and the tuning passes."""

from __future__ import annotations

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim, results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]




# The way the `optlab reproduce` CLI loads a study: by path, under its own name.
RUN = load_module("optimizer_benchmark_run_under_test",
            REPO / "experiments" / "optimizer_benchmark" / "run.py")
FIGURE = load_module("optimizer_benchmark_figure_under_test",
               REPO / "paper_figures" / "optimizer_benchmark.py")

# The cheapest workload, three default optimizers (two of them also tuned, 3 trials each),
# two seeds: 5 submissions × 2 seeds = 10 runs, and 6 trials padded to the same 10.
TINY = RUN.config.QUICK.replace(
  name="tiny",
  workloads=("noisy_quadratic",),
  default_optimizers=("sgd", "nesterov", "adam"),
  tuned_optimizers=("adam", "nesterov"),
  n_trials=3,
  num_seeds=2,
  eval_every=5,
  quadratic_dim=4,
  quadratic_steps=20,
  mnist1d_samples=200,
  mnist1d_hidden=(8,),
  mnist1d_batch=16,
  mnist1d_steps=10,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("optimizer_benchmark")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--results", str(path), "--figure", str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  assert len({r["run_id"] for r in records}) == 1
  kinds = [r["kind"] for r in records]
  assert kinds.count("run") == 5 and kinds.count("workload") == 1 and kinds[-1] == "summary"
  for r in records:
    json.dumps(r, allow_nan=False)
    assert r["study"] == "optimizer_benchmark" and r["config"]["name"] == "tiny"
    assert r["provenance"]["versions"]["jax"] == jax.__version__
  for r in (r for r in records if r["kind"] == "run"):
    curves = np.array(r["curves"], dtype=np.float64)
    assert curves.shape == (2, len(r["steps"])) and r["seeds"] == [0, 1]
    assert r["steps"] == [0, 5, 10, 15, 20]
  summary = records[-1]
  assert set(summary["profile"]["scores"]) == {"sgd", "nesterov", "adam", "adam_tuned",
                                               "nesterov_tuned"}
  assert all(0 <= s <= 1 for s in summary["profile"]["scores"].values())
  assert [row["submission"] for row in summary["rank_table_time"]]
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_tuned_baselines_reach_the_target(tiny_run):
  records = results.read_records(tiny_run[0])
  for w in (r for r in records if r["kind"] == "workload"):
    runs = {r["submission"]: r for r in records
            if r["kind"] == "run" and r["workload"] == w["workload"]}
    for name in ("adam_tuned", "nesterov_tuned"):
      best = np.median(np.min(np.array(runs[name]["curves"], dtype=np.float64), axis=1))
      assert best <= w["target"] + 1e-12
      assert runs[name]["target"] == w["target"]


def test_tuning_records_every_trial_and_picks_the_best(tiny_run):
  records = results.read_records(tiny_run[0])
  for w in (r for r in records if r["kind"] == "workload"):
    for name, t in w["tuning"].items():
      assert len(t["trials"]) == TINY.n_trials
      values = [math.inf if x["value"] is None else x["value"] for x in t["trials"]]
      best = t["trials"][int(np.argmin(values))]
      assert t["best_config"] == pytest.approx(best["config"])
      assert t["best_value"] == pytest.approx(min(values))
      assert set(t["best_config"]) == set(optim.info(name).search_space) & set(
          RUN.traced_names(TINY)[name])


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  out = tmp_path / "again.png"
  assert FIGURE.main([str(tiny_run[0]), "--out", str(out)]) == 0
  assert out.stat().st_size > 10_000


def test_every_run_of_the_shared_program_is_its_own_optimizer():
  """Rows of different optimizers in one program match plain optax loops, step for step."""
  workload = RUN.quadratic_workload(TINY)
  trainer = RUN.Trainer(workload, RUN.traced_names(TINY))
  rows = [RUN.Row("adam", {"learning_rate": 0.05}, 3),
          RUN.Row("nesterov", {"learning_rate": 0.02, "momentum": 0.5}, 4),
          RUN.Row("sgd", {}, 5)]
  curves, final = trainer(rows)
  problem = RUN.problems.noisy(
      RUN.problems.quadratic(TINY.quadratic_dim, TINY.quadratic_condition,
                             spectrum="geometric", key=jax.random.key(0)), TINY.quadratic_noise)
  for row, curve, last in zip(rows, curves, final, strict=True):
    tx = optim.get(row.optimizer, **row.hparams)
    x, key = problem.init, jax.random.key(row.seed)
    state, expected = tx.init(x), [problem.value(x) - problem.optimal_value]
    for e in range(workload.num_evals):
      for item in jax.random.split(jax.random.fold_in(key, e), workload.steps_per_eval):
        updates, state = tx.update(problem.stochastic_grad(x, item), state, x)
        x = optax.apply_updates(x, updates)
      expected.append(problem.value(x) - problem.optimal_value)
    np.testing.assert_allclose(curve, np.asarray(expected), rtol=2e-4, err_msg=row.optimizer)
    assert last == pytest.approx(float(expected[-1]), rel=2e-4)


def _missing(*args, **kwargs):
  raise FileNotFoundError("apt-get install dataset-fashion-mnist")


@pytest.mark.parametrize("name", ["mnist1d_mlp", "fashion_mlp", "char_lm"])
def test_data_workloads_build_and_evaluate(name, monkeypatch):
  """The data workloads (trained by the quick run) build, split and score an initial model."""
  monkeypatch.setattr(RUN.data, "fashion_mnist", _missing)  # sklearn digits: loads at once
  cfg = TINY.replace(fashion_train=300, fashion_val=100, fashion_test=100, char_chars=6_000)
  workload = RUN.BUILDERS[name](cfg)
  assert workload.num_evals == {"mnist1d_mlp": 2, "fashion_mlp": 60, "char_lm": 20}[name]
  params = workload.init(0)
  val, test = jax.jit(workload.evaluate)(params, workload.arrays)
  if name == "char_lm":  # an untrained LM is about uniform over the vocabulary
    assert abs(float(val) - math.log(int(workload.arrays[0].max()) + 1)) < 1.0
  else:
    assert 0.5 < float(val) <= 1.0 and 0.5 < float(test) <= 1.0
  key = jax.random.key(0)
  batch = jax.jit(workload.items)(key, workload.arrays)
  assert batch.shape[0] == workload.steps_per_eval
  grads = jax.jit(workload.grad)(params, batch[0], workload.arrays)
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  if name == "fashion_mlp":
    assert "digits" in workload.description


def test_bad_configurations_are_rejected():
  with pytest.raises(ValueError, match="unknown workloads"):
    RUN.run(TINY.replace(workloads=("imagenet",)), None)
  with pytest.raises(ValueError, match="must also be among"):
    RUN.run(TINY.replace(tuned_optimizers=("radam",)), None)
  with pytest.raises(ValueError, match="unknown optimizer"):
    RUN.run(TINY.replace(default_optimizers=("adamm",)), None)
  with pytest.raises(ValueError, match="multiple of eval_every"):
    RUN.quadratic_workload(TINY.replace(quadratic_steps=12))
  with pytest.raises(ValueError, match="exceeds"):
    RUN._shuffled_batches(100, 32, 5, "w")
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_median_steps_counts_misses_as_infinite():
  assert RUN.median_steps([10, None, 30]) == 30
  assert RUN.median_steps([None, None, 30]) == math.inf
  assert jnp.isfinite(RUN.median_steps([5]))


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_configs_fit_their_data(mode):
  """Every workload's steps are whole evaluation intervals that fit in its training set."""
  cfg = RUN.config.CONFIGS[mode]
  train = {"mnist1d_mlp": (cfg.mnist1d_samples * 3 // 5, cfg.mnist1d_batch, cfg.mnist1d_steps),
           "fashion_mlp": (cfg.fashion_train, cfg.fashion_batch, cfg.fashion_steps),
           "char_lm": (int(0.8 * cfg.char_chars // cfg.char_seq_len), cfg.char_batch,
                       cfg.char_steps)}
  for n, batch, steps in train.values():
    assert steps % cfg.eval_every == 0 and cfg.eval_every * batch <= n
  assert cfg.quadratic_steps % cfg.eval_every == 0
  # Tuning trials fill exactly the final runs' batch: one compiled program per workload.
  subs = len(cfg.default_optimizers) + len(cfg.tuned_optimizers)
  assert len(cfg.tuned_optimizers) * cfg.n_trials == subs * cfg.num_seeds
  assert cfg.num_seeds >= 3
