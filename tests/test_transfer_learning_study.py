"""Tests of the transfer_learning study: the runner end to end on a tiny configuration, the
one-program strategies against train_only / per_layer_learning_rates, and the summary."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import results
from optlab.strategies.transfer import per_layer_learning_rates, train_only
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("transfer_learning_run_under_test",
            REPO / "experiments" / "transfer_learning" / "run.py")
FIGURE = load_module("transfer_learning_figure_under_test",
               REPO / "paper_figures" / "transfer_learning.py")

# A one-hidden-layer MLP, short pretraining and target training, two sizes, two seeds.
TINY = RUN.config.QUICK.replace(name="tiny", hidden_sizes=(16,), sizes_per_class=(1, 5),
                                pretrain_steps=40, target_steps=30, num_seeds=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("transfer_learning")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--results", str(path), "--figure", str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  (record,) = results.read_records(path)
  json.dumps(record, allow_nan=False)
  assert record["study"] == "transfer_learning" and record["seeds"] == [0, 1]
  assert record["provenance"]["versions"]["jax"] == jax.__version__
  assert record["config"]["name"] == "tiny" and record["sizes_per_class"] == [1, 5]
  for strategy in RUN.STRATEGIES:
    acc = np.asarray(record["accuracy"][strategy])
    assert acc.shape == (2, 2) and np.all((acc >= 0) & (acc <= 1))  # size × seed
  assert record["probe_backbone_unchanged"]  # a zero learning rate moves nothing
  assert record["learning_rates"]["linear_probe"][1] == 0.0
  assert record["timing"]["target"]["runs"] == 4 * 2 * 2
  assert len(record["source_val_accuracy"]) == 2
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  copy = tmp_path / "copy.jsonl"
  copy.write_text(tiny_run[0].read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_program_strategies_equal_train_only_and_per_layer_learning_rates():
  # The study's optimizer with (η_head, η_backbone) set per run gives the updates of
  # train_only (probe) and per_layer_learning_rates (per-layer), step after step; the
  # training loop around them is shared, so the runs are the same (up to float32 rounding of
  # Adam's bias correction, ~1e-5 relative: inject_hyperparams keeps b1, b2 as arrays).
  cfg = TINY
  params = RUN.nnx.state(RUN.models.MLP(64, cfg.hidden_sizes, 5, rngs=RUN.nnx.Rngs(0)),
                         RUN.nnx.Param)
  rates = RUN.learning_rates(cfg)
  references = {
    "linear_probe": train_only(optax.adam(cfg.probe_learning_rate), "head"),
    "per_layer_lr": per_layer_learning_rates(
        optax.adam, {"head": cfg.head_learning_rate, "layers": cfg.backbone_learning_rate}),
  }
  for strategy, reference in references.items():
    tx = RUN.strategy_optimizer()
    state = RUN.set_learning_rates(tx.init(params), *map(jnp.float32, rates[strategy]))
    ref_state = reference.init(params)
    update, ref_update = jax.jit(tx.update), jax.jit(reference.update)
    for step in range(3):
      grads = jax.tree.map(lambda p, step=step: jnp.cos(p * (step + 1)) + p, params)
      updates, state = update(grads, state, params)
      expected, ref_state = ref_update(grads, ref_state, params)
      jax.tree.map(lambda u, e: np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-9),
                   updates, expected)
    if strategy == "linear_probe":  # exactly zero on the backbone, as with train_only
      assert all(not np.any(np.asarray(u)) for u in RUN._backbone(updates))


def test_target_subsets_are_stratified_and_nested():
  cfg = TINY.replace(sizes_per_class=(1, 3, 7))
  workload = RUN.load_workload(cfg)
  subsets = RUN.target_subsets(cfg, workload, [0, 1])
  assert subsets.shape == (3, 2, 35)
  labels = workload.pool[1]
  for i, k in enumerate(cfg.sizes_per_class):
    for j in range(2):
      chosen = subsets[i, j, : 5 * k]
      assert len(set(chosen)) == 5 * k
      np.testing.assert_array_equal(np.bincount(labels[chosen], minlength=5), [k] * 5)
      if i:
        assert set(subsets[i - 1, j, : 5 * cfg.sizes_per_class[i - 1]]) <= set(chosen)
  assert not np.array_equal(subsets[2, 0], subsets[2, 1])


def test_workload_splits_by_class_and_checks_sizes():
  workload = RUN.load_workload(TINY)
  assert set(np.unique(workload.source_train[1])) == set(range(5))
  assert set(np.unique(workload.pool[1])) == set(range(5))
  assert len(workload.test[1]) > 300
  with pytest.raises(ValueError, match="exceeds"):
    RUN.load_workload(TINY.replace(sizes_per_class=(1, 500)))
  with pytest.raises(ValueError, match="overlap"):
    RUN.load_workload(TINY.replace(target_classes=(4, 5, 6, 7, 8)))


def test_summarize():
  sizes = [1, 10, 100]
  acc = {  # (size, seed)
    "linear_probe": np.array([[0.70, 0.70], [0.80, 0.80], [0.85, 0.85]]),
    "fine_tune": np.array([[0.60, 0.62], [0.82, 0.80], [0.95, 0.95]]),
    "per_layer_lr": np.array([[0.65, 0.65], [0.81, 0.81], [0.94, 0.94]]),
    "scratch": np.array([[0.50, 0.50], [0.70, 0.70], [0.93, 0.93]]),
  }
  s = RUN.summarize(sizes, acc, n_test=400)
  assert s["best_strategy"] == ["linear_probe", "fine_tune", "fine_tune"]
  assert s["transfer_beats_scratch_smallest"] and s["probe_best_smallest"]
  assert s["fine_tuning_catches_up"] and s["fine_tuning_overtakes"]
  assert s["first_size_fine_tuning_not_behind"] == 10
  np.testing.assert_allclose(s["fine_tune_minus_probe"], [-0.05, 0.01, 0.10], atol=1e-12)
  assert s["transfer_gain_over_scratch_smallest"]["linear_probe"] == pytest.approx(0.2)
  acc["scratch"] = acc["scratch"] + 0.2  # now scratch wins at the smallest size
  assert not RUN.summarize(sizes, acc, n_test=400)["transfer_beats_scratch_smallest"]


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "transfer_learning" in cli.study_names()
