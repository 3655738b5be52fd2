"""Tests of the distillation study: the runner end to end on a tiny configuration (the
vmapped students checked against fit), the figure from the records alone, the summary."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from optlab import results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("distillation_run_under_test", REPO / "experiments" / "distillation" / "run.py")
FIGURE = load_module("distillation_figure_under_test", REPO / "paper_figures" / "distillation.py")

# One small teacher (the more-data one: the other branch only changes the images), a few
# epochs, two temperatures, two seeds, and the fit check on.
TINY = RUN.config.QUICK.replace(
  name="tiny",
  teachers=("more_data",),
  teacher_hidden=(32,),
  teacher_epochs=3,
  more_data_epochs=1,
  student_epochs=4,
  eval_every=2,
  temperatures=(1.0, 4.0),
  fit_seeds=1,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("distillation")
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
  assert r["study"] == "distillation" and r["seeds"] == [0, 1]
  assert r["provenance"]["versions"]["jax"] == jax.__version__
  assert r["config"]["name"] == "tiny" and r["sizes"] == {"train": 100, "pool": 1348, "test": 449}
  assert [s["teacher"] for s in r["settings"]] == [None, "more_data", "more_data"]
  assert r["settings"][0]["alpha"] == 0.0  # the student alone
  assert np.asarray(r["final_test_accuracy"]).shape == (3, 2)  # setting × seed
  assert np.asarray(r["curves"]["test_accuracy"]).shape == (3, 2, 2)  # … × evaluation
  assert r["eval_epochs"] == [2, 4]
  assert set(r["summary"]) == set(r["teachers"]) == {"more_data"}
  assert r["teachers"]["more_data"]["train_size"] == 1348
  assert 0.0 < r["teachers"]["more_data"]["test_accuracy"] <= 1.0
  assert len(r["example"]["teacher_logits"]) == 10
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vmapped_students_give_fits_numbers(tiny_run):
  # The first seed's distilled student at the best T, trained again through
  # fit(student, tx, (x, pack_targets(...)), loss=distillation_loss_fn(T, α)).
  (r,) = results.read_records(tiny_run[0])
  (check,) = r["fit_checks"]
  assert check["agrees_with_sweep"], check
  assert check["train_loss"] == pytest.approx(check["sweep_train_loss"], abs=1e-4)


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  path, _ = tiny_run
  copy = tmp_path / "copy.jsonl"
  copy.write_text(path.read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_summarize():
  alone = np.array([0.80, 0.82, 0.84])
  distilled = np.array([[0.80, 0.82, 0.84],   # T = 1: no change
                        [0.83, 0.84, 0.86],   # T = 4: +2.33 points, best
                        [0.81, 0.83, 0.85]])  # T = 16: +1
  s = RUN.summarize([1.0, 4.0, 16.0], alone, distilled, teacher_accuracy=0.92)
  assert s["best_temperature"] == 4.0 and s["intermediate_best"]
  assert s["gain"] == pytest.approx(0.07 / 3)
  assert s["gain_per_temperature"] == pytest.approx([0.0, 0.07 / 3, 0.01])
  assert s["seeds_distilled_better"] == 3 and s["seeds_tied"] == 0
  assert s["gain_standard_error"] == pytest.approx(np.std([0.03, 0.02, 0.02], ddof=1) / np.sqrt(3))
  assert s["significant"]
  assert s["gap_closed"] == pytest.approx((0.07 / 3) / (0.92 - 0.82))
  worse = RUN.summarize([1.0, 4.0], alone, np.stack([alone - 0.01, alone]), 0.92)
  assert worse["best_temperature"] == 4.0 and worse["gain"] == 0.0
  assert not worse["significant"] and not worse["intermediate_best"]


def test_soft_targets_of_the_figure_match_the_library():
  from optlab.structure.distillation import soft_targets

  z = [3.0, 1.0, -2.0, 0.5]
  np.testing.assert_allclose(FIGURE.soft(z, 4.0), soft_targets(np.asarray(z), 4.0), rtol=1e-6)


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "distillation" in cli.study_names()
