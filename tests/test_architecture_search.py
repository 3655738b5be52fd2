"""Tests of the architecture_search study: the runner end to end on a tiny space, the
figure redrawn from its records alone, and the regret summary on known numbers."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest
from _resume import die_at_call

from optlab import results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("architecture_search_run_under_test",
            REPO / "experiments" / "architecture_search" / "run.py")
FIGURE = load_module("architecture_search_figure_under_test",
               REPO / "paper_figures" / "architecture_search.py")

# 2 activations × (2 + 4) = 12 architectures, one epoch: one small compilation.
TINY = RUN.config.QUICK.replace(name="tiny", max_depth=2, widths=(8, 16),
                                activations=("relu", "tanh"), epochs=1, budget=5, verify=0,
                                methods=("random", "bayesian"))


_TABLES = {}


def _tabulate_once(cfg, task):
  """`RUN.tabulate`, kept per config: the runs of this module with one config share the
  table, which is then trained (and compiled) once."""
  if cfg not in _TABLES:
    _TABLES[cfg] = _tabulate_once.real(cfg, task)
  return _TABLES[cfg]


_tabulate_once.real = RUN.tabulate


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("architecture_search")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    patch.setattr(RUN, "tabulate", _tabulate_once)
    assert RUN.main(["--quick", "--seeds", "3", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  kinds = [r["kind"] for r in records]
  assert kinds == ["table"] + ["search"] * 6 + ["summary"]
  assert len({r["run_id"] for r in records}) == 1
  for r in records:
    json.dumps(r, allow_nan=False)
    assert r["study"] == "architecture_search" and r["config"]["name"] == "tiny"
    assert r["provenance"]["versions"]["jax"] == jax.__version__
  table, summary = records[0], records[-1]
  assert len(table["configs"]) == len(table["scores"]) == 12
  assert table["optimum"] == max(table["scores"])
  for r in records[1:-1]:
    assert len(r["scores"]) == len(r["best_so_far"]) == TINY.budget
    assert [table["scores"][i] for i in r["table_index"]] == r["scores"]
    assert r["regret"] == pytest.approx(table["optimum"] - max(r["scores"]))
    assert np.all(np.diff(r["best_so_far"]) >= 0)
  assert summary["seeds"] == [0, 1, 2] and set(summary["methods"]) == {"random", "bayesian"}
  assert set(summary["versus_random"]) == {"bayesian"}
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path, capsys):
  path, _ = tiny_run
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(path), "--out", str(out)]) == 0
  assert str(out) in capsys.readouterr().out
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_text_reports_every_method(tiny_run):
  text = RUN.table_text(results.read_records(tiny_run[0]))
  assert "random search" in text and "TPE (Optuna)" in text and "optimum" in text


def test_a_killed_run_resumes_from_its_saved_table_and_searches(tiny_run, tmp_path,
                                                                 monkeypatch, capsys):
  """A run that dies in its second searcher keeps the table and the first searcher's
  searches (saved at once); run again, it neither re-trains the table nor re-runs those
  searches, and ends with the records of the uninterrupted run (`tiny_run`: the same
  config and seeds) bit for bit."""
  calls = []

  def counted_tabulate(*args):
    calls.append("table")
    return _tabulate_once(*args)  # tiny_run's table (trained once per config)

  monkeypatch.setattr(RUN, "tabulate", counted_tabulate)
  die_at_call(monkeypatch, RUN, "method_searches", 2, lambda cfg, table, space, method, seeds:
              method, calls=calls)
  path, cfg = tmp_path / "results.jsonl", TINY.replace(num_seeds=3)
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(cfg, path)
  assert not path.exists()
  RUN.run(cfg, path)
  assert calls == ["table", "random", "bayesian", "bayesian"]
  out = capsys.readouterr().out
  assert "resuming run" in out and out.rstrip().endswith(": table, search/random)")

  def science(r):  # without identity, provenance and timings
    r = {k: v for k, v in r.items() if k not in ("run_id", "provenance", "timing", "seconds")}
    if "settings" in r:
      r["settings"] = {k: v for k, v in r["settings"].items() if not k.endswith("seconds")}
    if "methods" in r:
      for m in r["methods"].values():
        m.pop("mean_seconds_per_search")
    return r

  want = results.read_records(tiny_run[0])
  assert [science(r) for r in results.read_records(path)] == [science(r) for r in want]


def test_summary_on_known_searches():
  class Table:  # the two attributes summarize reads
    scores = np.array([0.5, 0.7, 0.9, 1.0])
    best_score = 1.0

    def __len__(self):
      return 4

  searches = {
      "random": [{"best_so_far": [0.5, 0.7, 0.7], "seconds": 0.1},
                 {"best_so_far": [0.7, 0.9, 0.9], "seconds": 0.1}],
      "bayesian": [{"best_so_far": [0.9, 1.0, 1.0], "seconds": 0.2},
                   {"best_so_far": [0.7, 0.9, 1.0], "seconds": 0.2}],
  }
  s = RUN.summarize(Table(), searches)
  random, bayes = s["methods"]["random"], s["methods"]["bayesian"]
  assert random["at_budget"]["mean"] == pytest.approx(0.2)
  assert random["mean_regret_per_trial"] == pytest.approx([0.4, 0.2, 0.2])
  assert bayes["at_budget"]["found_optimum"] == 1.0 and bayes["at_budget"]["max"] == 0.0
  assert random["fraction_better_than_pick"]["mean"] == pytest.approx((0.5 + 0.25) / 2)
  versus = s["versus_random"]["bayesian"]
  assert versus["regret_reduction_vs_random"] == pytest.approx(0.2)
  assert versus["better_on_average"]
  assert s["within_half_point_of_optimum"] == 1


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_unknown_methods_are_rejected():
  with pytest.raises(ValueError, match="unknown method"):
    RUN.run(TINY.replace(methods=("evolution",)), None)


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "architecture_search" in cli.study_names()
