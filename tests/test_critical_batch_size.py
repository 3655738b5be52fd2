"""Tests of the critical_batch_size study: the runner end to end on a tiny configuration,
the one-program-for-every-batch-size SGD against plain minibatch SGD, steps-to-target and
tuning on hand-made curves, and the saved quick run against its own claims."""

from __future__ import annotations

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _resume import die_at_call

from optlab import results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]
SAVED = REPO / "paper_figures" / "results" / "critical_batch_size.jsonl"

RUN = load_module("critical_batch_size_run_under_test",
                  REPO / "experiments" / "critical_batch_size" / "run.py")
FIGURE = load_module("critical_batch_size_figure_under_test",
                     REPO / "paper_figures" / "critical_batch_size.py")

# A linear model, three batch sizes × two rates × one seed, a few dozen steps, a target
# every run reaches: one SGD program, plus the two noise-scale programs.
TINY = RUN.config.QUICK.replace(
    name="tiny", hidden_sizes=(), batch_sizes=(8, 16, 32), learning_rates=(0.1, 0.4),
    targets=(1.0, 0.6), examples_budget=480, min_steps=20, eval_points=12, reference_batch=16,
    noise_every=4, noise_big_batch=64, noise_estimates=2, num_seeds=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("critical_batch_size")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--results", str(path), "--figure", str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run, tmp_path):
  path, figure = tiny_run
  (record,) = results.read_records(path)
  json.dumps(record, allow_nan=False)
  assert record["study"] == "critical_batch_size" and record["config"]["name"] == "tiny"
  assert record["provenance"]["versions"]["jax"] == jax.__version__
  assert [len(ev) for ev in record["eval_steps"]] == [len(v[0][0]) for v in record["losses"]]
  assert np.asarray(record["losses"][0]).shape[:2] == (2, 1)  # (lr, seed, evaluation)
  assert [ev[-1] for ev in record["eval_steps"]] == [60, 30, 20]  # 480/B, at least 20
  for t in record["per_target"]:
    assert [b["batch_size"] for b in t["best"]] == [8, 16, 32]
    assert len(t["b_simple_per_batch"]) == 3
  assert [n["batch_size"] for n in record["noise"]] == [8, 16, 32]
  assert "b_simple_two_batch" in record["noise"][1]  # the reference batch size only
  assert "b_simple_two_batch" not in record["noise"][0]
  assert all(v > 0 for n in record["noise"] for v in n["b_simple"])
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
  copy, out = tmp_path / "copy.jsonl", tmp_path / "redrawn.png"
  copy.write_text(path.read_text())
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_killed_run_resumes_from_its_saved_batch_sizes(tiny_run, tmp_path, monkeypatch,
                                                         capsys):
  """A run that dies in its second batch size keeps the first (saved at once); run again,
  it reads that one back, computes only the others, and ends with the record of the
  uninterrupted run (`tiny_run`: the same config and seed) bit for bit."""
  calls = die_at_call(monkeypatch, RUN, "batch_size_unit", 2, lambda *args: args[4])
  # One program and one data set for both processes stood in for here (compiled once).
  monkeypatch.setattr(RUN, "make_sgd", functools.cache(RUN.make_sgd))
  monkeypatch.setattr(RUN, "load_workload", functools.cache(RUN.load_workload))
  path = tmp_path / "results.jsonl"
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(TINY, path)
  assert not path.exists()
  RUN.run(TINY, path)
  assert calls == [8, 16, 16, 32]  # batch size 8 was read back, not run again
  out = capsys.readouterr().out
  assert "resuming run" in out and out.rstrip().endswith(": batch_size=8)")

  def science(r):
    return {k: v for k, v in r.items() if k not in ("run_id", "provenance", "timing")}

  (got,), (want,) = results.read_records(path), results.read_records(tiny_run[0])
  assert science(got) == science(want)


def test_run_rejects_bad_configurations():
  with pytest.raises(ValueError, match="decreasing order"):
    RUN.run(TINY.replace(targets=(0.5, 1.0)), None)
  with pytest.raises(ValueError, match="reference_batch"):
    RUN.run(TINY.replace(reference_batch=12), None)


def test_micro_batches_make_plain_minibatch_sgd():
  """A step of B = micro × unit is SGD on the union of the micro-batches' indices."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((40, 5)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 3, 40), jnp.int32)
  params = RUN.init_params((5, 4, 3), seed=0)
  stacked = jax.tree.map(lambda a: a[None], params)
  key = jax.random.key(7)
  keys = jax.random.wrap_key_data(jax.random.key_data(key)[None])
  unit, micro, lr, steps = 4, 3, 0.5, 5
  out = RUN.make_sgd(unit, keep_params=True)(
      stacked, jnp.asarray([lr]), keys, x, y, jnp.asarray([2, steps - 2], jnp.int32),
      jnp.int32(micro))

  @jax.jit
  def manual_step(p, t):
    step_key = jax.random.fold_in(key, t)
    idx = jnp.concatenate([jax.random.randint(jax.random.fold_in(step_key, j), (unit,), 0, 40)
                           for j in range(micro)])
    grads = jax.grad(RUN.cross_entropy)(p, x[idx], y[idx])
    return jax.tree.map(lambda w, g: w - lr * g, p, grads)

  manual = params
  for t in range(steps):
    manual = manual_step(manual, t)
    if t == 1:
      np.testing.assert_allclose(out["loss"][0, 0, 0], RUN.cross_entropy(manual, x, y), rtol=1e-5)
  np.testing.assert_allclose(out["loss"][0, 0, 1], RUN.cross_entropy(manual, x, y), rtol=1e-5)
  for got, want in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(manual), strict=True):
    np.testing.assert_allclose(got[0, 0, 1], want, rtol=1e-5, atol=1e-6)


def test_init_is_lecun_normal_with_zero_biases():
  (layer,) = RUN.init_params((400, 300), seed=1)
  kernel = np.asarray(layer["kernel"])
  assert np.std(kernel) == pytest.approx(1 / math.sqrt(400), rel=0.02)
  assert np.max(np.abs(kernel)) <= 2 / 0.87962566 / math.sqrt(400) + 1e-7
  assert not np.any(np.asarray(layer["bias"]))


def test_eval_steps_and_segments():
  ev = RUN.eval_steps(100, 8)
  assert ev[0] == 1 and ev[-1] == 100 and np.all(np.diff(ev) > 0)
  segments = RUN.segments_for(ev, 10)
  assert segments.sum() == 100 and len(segments) == 10 and segments[-1] == 0
  with pytest.raises(ValueError, match="do not fit"):
    RUN.segments_for(ev, 3)
  assert RUN.step_budget(TINY, 8) == 60 and RUN.step_budget(TINY, 32) == 20


def test_steps_to_reach_interpolates_between_evaluations():
  evals = [1, 2, 4, 8]
  curve = [2.0, 1.0, 0.5, 0.25]  # halves per evaluation
  assert RUN.steps_to_reach(curve, evals, 0.5) == 4.0  # hit exactly
  # Between 1.0 (step 2) and 0.5 (step 4), log-linearly: 1/√2 is half-way.
  assert RUN.steps_to_reach(curve, evals, 1 / math.sqrt(2)) == pytest.approx(3.0)
  assert RUN.steps_to_reach(curve, evals, 0.1) is None
  assert RUN.steps_to_reach([np.nan, 0.1], [1, 2], 0.5) == 2.0


def test_tune_picks_the_fastest_rate_per_batch_size():
  evals = [np.array([1, 2, 4, 8])] * 2
  fast, slow, never = [2.0, 1.0, 0.5, 0.25], [2.0, 1.5, 1.0, 0.5], [2.0, 2.0, 2.0, np.nan]
  losses = [np.array([[slow, slow], [fast, fast], [never, never]]),  # B = 8: rate 2 is best
            np.array([[never, never], [never, slow], [never, never]])]  # B = 16: no rate
  out = RUN.tune([8, 16], [0.1, 0.2, 0.4], losses, evals, target=0.5)
  best8, best16 = out["best"]
  assert best8["learning_rate"] == 0.2 and best8["steps"] == 4.0 and not best8["at_grid_edge"]
  assert best8["examples"] == 32.0 and best8["steps_standard_error"] == 0.0
  assert out["steps"][0] == [8.0, 4.0, None]
  assert best16["steps"] is None  # one seed of rate 0.2 never got there
  assert out["steps"][1] == [None, None, None]


def test_fit_recovers_an_exact_trade_off_and_reports_failures():
  b = [8, 16, 32, 64, 128]
  best = [{"batch_size": x, "steps": 20 * (1 + 100 / x)} for x in b]
  f = RUN.fit(best)
  assert f["ok"] and f["b_crit"] == pytest.approx(100) and f["s_min"] == pytest.approx(20)
  assert f["max_relative_residual"] < 1e-9
  assert not RUN.fit(best[:2])["ok"]
  assert not RUN.fit([{"batch_size": x, "steps": float(x)} for x in b])["ok"]  # S rises with B


def test_summarize_compares_within_an_order_of_magnitude():
  per_target = [{"target": 0.2, "fit": {"ok": True, "b_crit": 100.0, "s_min": 5.0,
                                        "e_min": 500.0}, "b_simple_at_target": 300.0},
                {"target": 0.1, "fit": {"ok": True, "b_crit": 200.0, "s_min": 9.0,
                                        "e_min": 1800.0}, "b_simple_at_target": 500.0}]
  s = RUN.summarize(per_target)
  assert s["held"] and s["ratio_range"] == pytest.approx([1 / 3, 0.4])
  assert s["b_crit_grows_as_loss_falls"] and s["b_simple_grows_as_loss_falls"]
  per_target[1]["b_simple_at_target"] = 2001.0  # ratio 0.0999...
  assert not RUN.summarize(per_target)["held"]


@pytest.mark.skipif(not SAVED.is_file(), reason="no saved quick run")
def test_the_saved_quick_run_supports_its_claims():
  record = results.read_records(SAVED)[-1]
  assert record["config"]["name"] == "quick"
  for t in record["per_target"]:  # the fits follow from the saved steps
    again = RUN.fit(t["best"])
    assert again["b_crit"] == pytest.approx(t["fit"]["b_crit"], rel=1e-9)
  s = record["summary"]
  assert s["held"] and all(0.1 <= r["ratio"] <= 10 for r in s["targets"])
  assert s["b_crit_grows_as_loss_falls"]


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "critical_batch_size" in cli.study_names()
