"""Tests of the early_stopping_cv study: the runner end to end on a tiny configuration,
early stopping replayed against fit's, and the summaries on hand-made inputs."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from optlab import results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("early_stopping_cv_run_under_test",
            REPO / "experiments" / "early_stopping_cv" / "run.py")
FIGURE = load_module("early_stopping_cv_figure_under_test",
               REPO / "paper_figures" / "early_stopping_cv.py")

# A few epochs of a linear model (the MLP without hidden layers compiles fastest), two λ,
# two folds: three small compiled programs (the sweep, fit, the cross-validation sweep).
TINY = RUN.config.QUICK.replace(
  name="tiny",
  train_size=100,
  hidden_sizes=(),
  epochs=6,
  patience=2,
  weight_decays=(1e-5, 1e-2),
  folds=2,
  fit_seeds=1,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("early_stopping_cv")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--seeds", "2", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  assert [r["part"] for r in records] == ["early_stopping", "cross_validation"]
  assert len({r["run_id"] for r in records}) == 1
  for r in records:
    json.dumps(r, allow_nan=False)
    assert r["study"] == "early_stopping_cv" and r["seeds"] == [0, 1]
    assert r["provenance"]["versions"]["jax"] == jax.__version__
    assert r["config"]["name"] == "tiny" and r["sizes"]["train"] == 100
    assert r["noisy_labels"] == 30
  a, b = records
  assert np.asarray(a["full_budget"]["val_loss"]).shape == (2, 6)  # seed × epoch
  for run in a["early_stopped"]:
    assert 0 <= run["best_epoch"] <= run["stop_epoch"] < 6
    assert run["test_accuracy"] == a["full_budget"]["test_accuracy"][run["seed"]][run["best_epoch"]]
  check = a["fit_checks"][0]
  assert check["agrees_with_sweep"], check  # the replay is what fit + EarlyStopping does
  assert check["max_abs_val_loss_difference"] < 1e-3
  assert a["timing"]["compile_s"] > 0
  assert np.asarray(b["per_fold"]).shape == (2, 2)  # λ × fold
  assert np.asarray(b["retrained_test_accuracy"]).shape == (2, 2)  # λ × seed
  assert b["best_config"]["weight_decay"] == b["summary"]["chosen_weight_decay"]
  assert b["timing"]["cv_compile_s"] > 0 and b["timing"]["retrain_train_s"] > 0
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  path, _ = tiny_run
  copy = tmp_path / "copy.jsonl"
  copy.write_text(path.read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_records_rebuild_a_selection_for_plot_validation_curve(tiny_run, tmp_path):
  from optlab.tune.cv import plot_validation_curve

  record = results.read_records(tiny_run[0])[1]
  selection = FIGURE.selection_from_record(record)
  np.testing.assert_allclose(selection.mean, record["cv_mean"])
  assert selection.best_config == record["best_config"]
  plot_validation_curve(selection, "weight_decay", path=tmp_path / "curve.png")
  assert (tmp_path / "curve.png").stat().st_size > 1_000


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_replay_early_stopping():
  # Improves at epochs 0-2, then 2 evaluations without improvement: stops at epoch 4.
  assert RUN.replay_early_stopping([1.0, 0.8, 0.7, 0.75, 0.9, 0.6], patience=2) == (2, 4, True)
  # Never stopped: the final model is kept, so its "best epoch" is the last one.
  assert RUN.replay_early_stopping([1.0, 0.9, 0.8, 0.85], patience=2) == (3, 3, False)


def test_flip_labels_flips_the_fraction_to_other_classes():
  y = np.arange(100) % 10
  noisy, flipped = RUN.flip_labels(y, 0.3, 10, seed=0)
  assert flipped.sum() == 30
  assert np.all(noisy[flipped] != y[flipped]) and np.all(noisy[~flipped] == y[~flipped])
  assert noisy.min() >= 0 and noisy.max() <= 9
  with pytest.raises(ValueError, match="fraction"):
    RUN.flip_labels(y, 1.0, 10, seed=0)


def test_summarize_early_stopping():
  runs = [{"test_loss": 0.5, "test_accuracy": 0.9, "best_epoch": 4, "epochs_run": 10},
          {"test_loss": 0.7, "test_accuracy": 0.8, "best_epoch": 9, "epochs_run": 20}]
  s = RUN.summarize_early_stopping(runs, [0.6, 0.6], [0.85, 0.85], epochs=40)
  assert s["early_stopped_test_accuracy"] == pytest.approx(0.85)
  assert s["accuracy_gain"] == pytest.approx(0.0)
  assert s["seeds_accuracy_at_least_as_good"] == 1 and s["seeds_loss_at_least_as_good"] == 1
  assert s["epoch_fraction"] == pytest.approx(15 / 40)
  assert s["held"]  # means: 0.85 ≥ 0.85 and 0.6 ≤ 0.6


def test_summarize_selection():
  lams = [1e-4, 1e-3, 1e-2]
  cv = np.array([0.5, 0.7, 0.6])
  test = np.array([[0.80, 0.82], [0.86, 0.88], [0.90, 0.90]])  # (λ, seed)
  s = RUN.summarize_selection(lams, cv, test, n_test=100)
  assert s["chosen_weight_decay"] == 1e-3 and s["test_best_weight_decay"] == 1e-2
  assert s["gap"] == pytest.approx(0.03) and s["chosen_test_rank"] == 2
  assert s["binomial_standard_error"] == pytest.approx(np.sqrt(0.9 * 0.1 / 100))  # 0.03
  assert s["seed_standard_error"] == pytest.approx(0.01)  # std(0.04, 0.02) / √2
  assert s["noise"] == pytest.approx(0.03) and s["within_noise"]  # 0.03 ≤ 2 × 0.03
  large = RUN.summarize_selection(lams, cv, test, n_test=10_000)  # binomial s.e. 0.003
  assert large["noise"] == pytest.approx(0.01) and not large["within_noise"]  # 0.03 > 0.02
  same = RUN.summarize_selection(lams, np.array([0.1, 0.2, 0.9]), test, n_test=400)
  assert same["gap"] == 0.0 and same["within_noise"]


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "early_stopping_cv" in cli.study_names()
