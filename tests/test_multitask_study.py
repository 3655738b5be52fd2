"""Tests of the multitask study: the runner end to end on a tiny configuration, its
vectorized program against fit_multitask, and the summary on hand-made inputs."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import optax
import pytest

from optlab import results
from optlab.strategies import multitask as mt
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("multitask_run_under_test", REPO / "experiments" / "multitask" / "run.py")
FIGURE = load_module("multitask_figure_under_test", REPO / "paper_figures" / "multitask.py")

# A few epochs on 100 images: the same single compiled program as the quick run.
TINY = RUN.config.QUICK.replace(name="tiny", train_size=100, epochs=3, hidden=16)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("multitask")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--seeds", "2", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  (r,) = results.read_records(path)
  json.dumps(r, allow_nan=False)
  assert r["study"] == "multitask" and r["seeds"] == [0, 1] and r["config"]["name"] == "tiny"
  assert r["provenance"]["versions"]["jax"] == jax.__version__
  assert r["sizes"]["train"] == 100
  assert set(r["methods"]) == {m.name for m in RUN.METHODS}
  for name, m in r["methods"].items():
    assert np.asarray(m["curves"]["test_accuracy"]).shape == (2, 3, 2)  # seed × epoch × task
    assert set(r["final_test_accuracy"][name]) == set(m["tasks"])
  # Single-task runs: the other task's weight is exactly 0, the own task's 1.
  np.testing.assert_array_equal(np.asarray(r["methods"]["single_digit"]["curves"]["weights"])
                                [:, -1], [[1.0, 0.0]] * 2)
  gradnorm = np.asarray(r["methods"]["gradnorm"]["curves"]["weights"])
  np.testing.assert_allclose(gradnorm.sum(-1), 2.0, rtol=1e-5)  # GradNorm: Σ w = T
  assert r["timing"]["runs"] == 12 and r["timing"]["compile_s"] > 0
  assert set(r["summary"]["tasks"]) == {"digit", "coarse"}
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  copy = tmp_path / "copy.jsonl"
  copy.write_text(tiny_run[0].read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_vectorized_program_is_fit_multitask(tiny_run):
  # GradNorm (per-task gradients, weights updated by their own Adam): the runner's one
  # program over (method, seed) gives fit_multitask's numbers for the same seed.
  (r,) = results.read_records(tiny_run[0])
  workload = RUN.load_workload(TINY)
  weighting = RUN.weightings(TINY)[RUN.WEIGHTINGS.index("gradnorm")]
  result = mt.fit_multitask(RUN.build_model(TINY, workload, 0), optax.adam(TINY.learning_rate),
                            workload.train, weighting=weighting, test=workload.test,
                            epochs=TINY.epochs, batch_size=TINY.batch_size, seed=0,
                            skip_nonfinite=False)
  curves = r["methods"]["gradnorm"]["curves"]
  for i, task in enumerate(RUN.TASKS):
    np.testing.assert_allclose(result.curve(f"test_{task}_loss")[1],
                               np.asarray(curves["test_loss"])[0, :, i], rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(result.curve(f"weight_{task}")[1],
                               np.asarray(curves["weights"])[0, :, i], rtol=2e-4)


def test_summarize():
  acc = {"single_digit": {"digit": [0.90, 0.92]}, "single_coarse": {"coarse": [0.95, 0.95]},
         "fixed": {"digit": [0.93, 0.93], "coarse": [0.96, 0.96]},
         "pcgrad": {"digit": [0.80, 0.80], "coarse": [0.955, 0.955]}}
  s = RUN.summarize(acc, n_test=400)
  d = s["tasks"]["digit"]
  assert d["single"] == pytest.approx(0.91)
  assert d["methods"]["fixed"]["difference"] == pytest.approx(0.02)
  assert d["binomial_se"] == pytest.approx(np.sqrt(0.91 * 0.09 / 400))
  assert d["methods"]["fixed"]["matches_or_beats"]
  assert not d["methods"]["pcgrad"]["matches_or_beats"]  # 11 points below
  assert d["spread"] == pytest.approx(0.13) and not d["spread_within_noise"]
  assert s["tasks"]["coarse"]["spread_within_noise"] and s["tasks"]["coarse"]["best"] == "fixed"
  assert not s["multi_task_matches_or_beats_single"] and not s["methods_differ_little"]


def test_workload_and_bad_arguments():
  w = RUN.load_workload(TINY)
  np.testing.assert_array_equal(w.train[1]["coarse"], w.train[1]["digit"] % 2)
  high = RUN.load_workload(TINY.replace(coarse="high"))
  np.testing.assert_array_equal(high.test[1]["coarse"], high.test[1]["digit"] >= 5)
  with pytest.raises(ValueError, match="coarse must be one of"):
    RUN.load_workload(TINY.replace(coarse="vowels"))
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "multitask" in cli.study_names()
