"""Tests of the adam_logistic study: the runner end to end on tiny data, the vectorized
sweep against single runs, the step-size selection, and the dropout masks."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _resume import die_at_call

from optlab import results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load_runner():
  return load_module("adam_logistic_run_under_test",
                     REPO / "experiments" / "adam_logistic" / "run.py")


RUN = _load_runner()

# Two epochs of a tiny sparse problem (with feature dropout, so every code path runs)
# and two methods with two-point grids: one compile per method, a second or two each.
TINY = RUN.config.QUICK.replace(
  name="tiny",
  datasets=("sparse",),
  methods=(("nesterov", "nesterov", "inverse_sqrt"), ("adagrad", "adagrad", "constant")),
  target_methods=("nesterov", "adagrad"),
  epochs=2,
  num_seeds=5,
  sparse_n=800,
  sparse_dim=64,
  sparse_density=0.1,
  nesterov_learning_rates=(0.1, 1.0),
  adagrad_learning_rates=(0.03, 0.3),
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("adam_logistic")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    argv = ["--quick", "--seeds", "2", "--seed", "3", "--results", str(path), "--figure",
            str(figure)]
    assert RUN.main(argv) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  assert len(records) == 2 * 2  # methods × seeds (--seeds 2 overrides the config's 5)
  assert {r["method"] for r in records} == {"nesterov", "adagrad"}
  assert sorted({r["seed"] for r in records}) == [3, 4]
  assert len({r["run_id"] for r in records}) == 1
  for r in records:
    json.dumps(r, allow_nan=False)  # strict JSON: no NaN or inf slipped through
    assert r["study"] == "adam_logistic" and r["tuning_seed"] == 3
    assert r["provenance"]["versions"]["jax"] == jax.__version__
    assert r["config"]["name"] == "tiny" and r["config"]["num_seeds"] == 2
    steps = r["steps_per_epoch"]
    assert r["curve"]["iterations"] == [0, steps, 2 * steps]
    assert len(r["curve"]["train_cost"]) == TINY.epochs + 1
    assert r["curve"]["train_cost"][0] == pytest.approx(np.log(2.0), rel=1e-5)  # W = 0
    assert r["final_train_cost"] <= r["target"] * (1 + 1e-6)  # the target rule
    assert r["iterations_to_target"] is not None and r["seconds_to_target"] >= 0
    assert 0.0 <= r["test_accuracy"] <= 1.0
    assert r["timing"]["compile_s"] > 0 and r["timing"]["runs_in_program"] == 4
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_selection_picks_the_lowest_validation_loss(tiny_run):
  path, _ = tiny_run
  for r in results.read_records(path):
    selection = r["selection"]
    losses = np.array(selection["val_loss"], dtype=np.float64)
    assert selection["index"] == int(np.argmin(losses))
    assert r["hyperparameters"]["learning_rate"] == selection["grid"][selection["index"]]
    if r["seed"] == r["tuning_seed"]:  # the tuning run is the reported run of that seed
      assert r["val_loss"] == pytest.approx(losses[selection["index"]], rel=1e-6)


def test_select_skips_diverged_points_and_flags_edges():
  picked = RUN.select([0.1, 0.3, 1.0, 3.0], [0.5, 0.2, np.nan, 0.4])
  assert picked["learning_rate"] == 0.3 and picked["index"] == 1
  assert not picked["at_grid_edge"]
  assert picked["val_loss"][2] is None
  assert RUN.select([0.1, 0.3], [np.inf, 0.2])["at_grid_edge"]
  with pytest.raises(ValueError, match="every α diverged"):
    RUN.select([0.1, 0.3], [np.nan, np.inf])


def test_vmapped_sweep_matches_single_runs():
  # The sweep vmaps over α and seeds; each (α, seed) must be the run it stands for.
  # Nesterov: the schedule inside the velocity, the momentum state, and dropout masks.
  method = "nesterov"
  workload = RUN.load_workload(TINY, "sparse")
  arrays = workload.arrays()
  alphas, seeds = TINY.learning_rates(method), [5, 9]
  swept, _ = RUN.sweep(TINY, method, workload, alphas, seeds, arrays)
  single = jax.jit(RUN.make_train(TINY, method, workload))
  for i, j in [(1, 1), (0, 1)]:
    alone = single(jnp.float32(alphas[i]), jnp.uint32(seeds[j]), *arrays)
    for name, value in alone.items():
      np.testing.assert_allclose(swept[name][i, j], np.asarray(value), rtol=2e-5, atol=1e-6,
                                 err_msg=f"{method} α={alphas[i]} seed={seeds[j]}: {name}")
  # Seeds change the minibatch order (and dropout masks): the runs must differ.
  assert not np.allclose(swept["train_cost"][1, 0], swept["train_cost"][1, 1])


def test_step_size_schedule_is_inside_the_optimizer():
  # AdaGrad with α/√t and a constant gradient g: the k-th update is α/√k (the schedule)
  # times |g|/√(k g²) = 1/√k (the accumulator), α/k in all.
  cfg = TINY.replace(methods=(("adagrad_sqrt", "adagrad", "inverse_sqrt"),))
  tx = RUN.make_optimizer(cfg, "adagrad_sqrt", 0.8)
  params = jnp.zeros(2)
  state = tx.init(params)
  steps = []
  for _ in range(4):
    updates, state = tx.update(jnp.ones(2), state, params)
    steps.append(float(-updates[0]))
  np.testing.assert_allclose(steps, [0.8, 0.8 / 2, 0.8 / 3, 0.8 / 4], rtol=1e-5)
  with pytest.raises(ValueError, match="unknown method"):
    RUN.make_optimizer(cfg, "adam", 0.1)


@pytest.mark.parametrize("keep", [0.5, 0.75])
def test_dropout_mask_rate(keep, key):
  mask = np.asarray(RUN.dropout_mask(key, keep, (64, 1000)))
  assert mask.shape == (64, 1000) and mask.dtype == np.bool_
  assert mask.mean() == pytest.approx(keep, abs=0.01)
  with pytest.raises(ValueError, match="multiple of 1/256"):
    RUN.dropout_mask(key, 0.3, (4, 4))


def test_fixed_dropout_is_deterministic_and_unbiased():
  x = np.ones((300, 50), np.float32)
  a, b = RUN.fixed_dropout(x, 0.5, 0, chunk=64), RUN.fixed_dropout(x, 0.5, 0)
  np.testing.assert_array_equal(a, b)  # chunking does not change the draw
  assert set(np.unique(a).tolist()) == {0.0, 2.0}
  assert a.mean() == pytest.approx(1.0, abs=0.03)


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "adam_logistic" in cli.study_names()


def test_a_dataset_missing_from_the_machine_is_skipped_with_its_install_message(
    tmp_path, monkeypatch, capsys):
  def missing(*args, **kwargs):
    raise FileNotFoundError("Fashion-MNIST not found; apt-get install dataset-fashion-mnist")

  monkeypatch.setattr(RUN.data, "fashion_mnist", missing)
  cfg = TINY.replace(datasets=("fashion_mnist", "sparse"), num_seeds=1)
  records = RUN.run(cfg, tmp_path / "results.jsonl")
  assert {r["dataset"] for r in records} == {"sparse"}
  assert "skipping fashion_mnist" in capsys.readouterr().err


def test_a_killed_run_resumes_from_its_saved_sweeps(tiny_run, tmp_path, monkeypatch, capsys):
  """A run that dies in its second (dataset, method) sweep keeps the first (saved at once);
  run again, it reads that one back, computes only the other, and ends with the records of
  the uninterrupted run (`tiny_run`: the same config and seed) bit for bit."""
  calls = die_at_call(monkeypatch, RUN, "method_outcome", 2, lambda cfg, method, *a, **k: method)
  path = tmp_path / "results.jsonl"
  cfg = TINY.replace(num_seeds=2)  # what tiny_run's `--seeds 2 --seed 3` ran
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(cfg, path, seed=3)
  assert not path.exists()
  records = RUN.run(cfg, path, seed=3)
  assert calls == ["nesterov", "adagrad", "adagrad"]  # the first sweep was not run again
  out = capsys.readouterr().out
  assert "resuming run" in out and out.rstrip().endswith("sparse/nesterov)")
  assert results.read_records(path) == json.loads(json.dumps(results.to_jsonable(records)))

  def science(r):  # without what differs between runs: identity, timing and provenance
    drop = ("run_id", "provenance", "timing", "seconds_to_target")
    return {k: v for k, v in r.items() if k not in drop}

  want = results.read_records(tiny_run[0])
  assert [science(r) for r in results.read_records(path)] == [science(r) for r in want]
