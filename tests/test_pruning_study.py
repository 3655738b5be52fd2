"""Tests of the pruning study: the runner end to end on a tiny configuration, exact
non-zero counts in its records, the summary on hand-made inputs, the figure's schedule."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from optlab import results
from optlab.structure import pruning
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("pruning_run_under_test", REPO / "experiments" / "pruning" / "run.py")
FIGURE = load_module("pruning_figure_under_test", REPO / "paper_figures" / "pruning.py")

# A narrow MLP, a few epochs, two levels: one compiled training program.
TINY = RUN.config.QUICK.replace(
    name="tiny", hidden_sizes=(16,), train_epochs=3, finetune_epochs=1,
    sparsities=(0.5, 0.9), prune_begin_epoch=0, prune_end_epoch=2, prune_every=7,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("pruning")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--seeds", "2", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_records_with_exact_sparsities_and_a_figure(tiny_run):
  path, figure = tiny_run
  (record,) = results.read_records(path)
  json.dumps(record, allow_nan=False)
  assert record["study"] == "pruning" and record["seeds"] == [0, 1]
  assert record["config"]["name"] == "tiny"
  assert record["provenance"]["versions"]["jax"] == jax.__version__
  runs = record["runs"]
  assert sorted({r["arm"] for r in runs}) == ["dense", "iterative", "one_shot", "rewind"]
  assert len(runs) == 2 + 3 * 2 * 2  # dense per seed; 3 arms × 2 levels × 2 seeds
  layers = {"layers/0/kernel": 64 * 16, "head/kernel": 16 * 10}
  for r in runs:
    # Per-layer scope: exactly ⌊s·n + ½⌋ zeros in every kernel, whatever the arm.
    expected = {k: int(np.floor(r["sparsity"] * n + 0.5)) / n for k, n in layers.items()}
    assert r["layer_sparsity"] == pytest.approx(expected, abs=1e-12), r
    assert r["pruned"] == sum(int(np.floor(r["sparsity"] * n + 0.5)) for n in layers.values())
    assert 0.0 <= r["test_accuracy"] <= 1.0
  s = record["summary"]
  assert set(s["mean"]) == {"one_shot", "iterative", "rewind"}
  assert len(s["iterative_minus_one_shot"]) == 2
  assert record["timing"]["compile_s"] > 0
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  copy = tmp_path / "copy.jsonl"
  copy.write_text(tiny_run[0].read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_figures_schedule_is_the_librarys():
  schedule = pruning.polynomial_sparsity_schedule(0.9, 42, 294, frequency=20)
  t, s = FIGURE.schedule(400, 0.9, 42, 294, 20)
  np.testing.assert_allclose(s, [float(schedule(i)) for i in t], atol=1e-6)


def test_summarize():
  runs = [{"arm": "dense", "sparsity": 0.0, "test_accuracy": a} for a in (0.97, 0.99)]
  table = {"one_shot": [0.98, 0.95, 0.5], "iterative": [0.98, 0.975, 0.9],
           "rewind": [0.98, 0.975, 0.97]}
  for arm, accs in table.items():
    runs += [{"arm": arm, "sparsity": s, "test_accuracy": a}
             for s, a in zip((0.5, 0.9, 0.99), accs, strict=True)]
  s = RUN.summarize(runs, (0.5, 0.9, 0.99), tolerance=0.01)
  assert s["dense_accuracy"] == pytest.approx(0.98)
  assert s["held"] == {"one_shot": 0.5, "iterative": 0.9, "rewind": 0.99}
  assert s["iterative_minus_one_shot"] == pytest.approx([0.0, 0.025, 0.4])
  assert s["reproduced"]


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "pruning" in cli.study_names()
