"""Tests of the adversarial_training study: the runner end to end on a tiny configuration,
the figure from the records alone, and the summary on hand-made inputs."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from optlab import results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("adversarial_training_run_under_test",
            REPO / "experiments" / "adversarial_training" / "run.py")
FIGURE = load_module("adversarial_training_figure_under_test",
               REPO / "paper_figures" / "adversarial_training.py")

# A linear model, 2 epochs, 2-step attacks, 3 radii, one TRADES β: one small program.
TINY = RUN.config.QUICK.replace(name="tiny", hidden_sizes=(), epochs=2, train_steps=2,
                                eval_steps=2, trades_betas=(6.0,),
                                eval_epsilons=(0.0, 0.1, 0.2))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("adversarial_training")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--seeds", "2", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  (record,) = results.read_records(path)
  json.dumps(record, allow_nan=False)
  assert record["study"] == "adversarial_training" and record["seeds"] == [0, 1]
  assert record["provenance"]["versions"]["jax"] == jax.__version__
  assert record["config"]["name"] == "tiny" and record["sizes"] == {"train": 1348, "test": 449}
  labels = [RUN.model_label(r) for r in record["runs"]]
  assert labels == ["standard"] * 2 + ["madry"] * 2 + ["trades β=6"] * 2
  accuracy = np.asarray(record["accuracy"])
  assert accuracy.shape == (6, 3) and np.all((accuracy >= 0) & (accuracy <= 1))
  assert np.all(np.diff(accuracy, axis=1) <= 1e-9)  # a larger ε never helps (same start)
  assert all(len(r["train_loss"]) == 2 for r in record["runs"])
  assert set(record["summary"]["models"]) == {"standard", "madry", "trades β=6"}
  assert record["timing"]["compile_s"] > 0
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  path, _ = tiny_run
  copy = tmp_path / "copy.jsonl"
  copy.write_text(path.read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarize_by_hand():
  runs = ([{"method": "standard", "beta": None}] * 2 + [{"method": "madry", "beta": None}] * 2
          + [{"method": "trades", "beta": 6.0}, {"method": "trades", "beta": 1.0}])
  accuracy = np.array([[0.96, 0.50, 0.10], [0.98, 0.40, 0.00],    # standard
                       [0.95, 0.80, 0.40], [0.93, 0.70, 0.30],    # madry
                       [0.92, 0.85, 0.50], [0.96, 0.75, 0.30]])   # trades β=6, β=1
  s = RUN.summarize(runs, accuracy, [0.0, 0.1, 0.2], 0.1, n_test=1000)
  assert s["train_epsilon_column"] == 1
  assert s["clean_binomial_standard_error"] == pytest.approx(np.sqrt(0.97 * 0.03 / 1000))
  assert s["clean_cost_significant"]  # 0.03 > 2 × 0.0054
  assert s["models"]["standard"]["clean"] == pytest.approx(0.97)
  assert s["models"]["madry"]["robust"] == pytest.approx(0.75)
  assert s["models"]["madry"]["robust_spread"] == pytest.approx(0.10)
  assert s["madry_robust_gain"] == pytest.approx(0.30)
  assert s["madry_clean_cost"] == pytest.approx(0.03)
  assert s["madry_more_robust"] and s["madry_costs_clean"] and s["trades_more_robust"]
  assert s["trades_beta_monotone"] and s["held"]  # β 1 → 6: clean 0.96 → 0.92, robust up
  noisy = RUN.summarize(runs, accuracy, [0.0, 0.1, 0.2], 0.1, n_test=10)  # s.e. 0.054
  assert noisy["madry_costs_clean"] and not noisy["clean_cost_significant"]
  assert noisy["robustness_reproduced"] and not noisy["held"]
  swapped = accuracy[[0, 1, 2, 3, 5, 4]]  # now β=6 is the cleaner, less robust one
  assert not RUN.summarize(runs, swapped, [0.0, 0.1, 0.2], 0.1)["held"]
  with pytest.raises(ValueError, match="training ε"):
    RUN.summarize(runs, accuracy, [0.0, 0.1, 0.2], 0.15)


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "adversarial_training" in cli.study_names()
