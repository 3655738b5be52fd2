"""Tests of the marginal_value study (Wilson et al. 2017, Sec. 3.3), on tiny problems.

The claim is checked exactly: started at w = 0, gradient descent and heavy ball have
test error 0, and AdaGrad, RMSProp and Adam label every fresh point positive, so their
test error *is* the fraction of negatives in the test set (compared as floats, ==).
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _resume import die_at_call

from optlab import problems
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]
ADAPTIVE = ("adagrad", "rmsprop", "adam")


def _load_runner():
  return load_module("marginal_value_run_under_test",
                     REPO / "experiments" / "marginal_value" / "run.py")


RUN = _load_runner()
Variant = RUN.config.Variant

# n = 30 (d = 153): seeds 0 and 1 have a positive majority and both classes at p = 0.6
# and 0.9. 600 iterations: Adam needs ~450 on the ray whatever n is.
TINY = RUN.config.QUICK.replace(
  name="tiny", ps=(0.6, 0.9), n=30, n_test=500, num_seeds=2, num_iterations=600,
  max_curve_points=50,
  variants=(
    Variant("gd", "gd", (0.1, 0.3, 1.0), per_point=True),
    Variant("heavy_ball", "heavy_ball", (0.1, 0.3, 1.0), per_point=True,
            hyperparameters=(("momentum", 0.5),)),
    Variant("adagrad", "adagrad", (0.03, 0.1, 0.3)),
    Variant("rmsprop", "rmsprop", (1e-3, 3e-3), schedule="cosine"),
    Variant("rmsprop_const", "rmsprop", (1e-3,)),
    Variant("adam", "adam", (3e-3, 1e-2, 3e-2)),
  ),
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  """main() on the tiny config: the records read back from the file, and the paths."""
  pytest.importorskip("matplotlib")
  out = tmp_path_factory.mktemp("marginal_value")
  results_path, figure_path = out / "results" / "marginal_value.jsonl", out / "figure.png"
  configs = RUN.config.CONFIGS
  saved = configs["quick"]
  configs["quick"] = TINY
  try:
    status = RUN.main(["--results", str(results_path), "--figure", str(figure_path)])
  finally:
    configs["quick"] = saved
  assert status == 0
  records = [json.loads(line) for line in results_path.read_text().splitlines()]
  return records, results_path, figure_path


def test_main_writes_records_and_a_figure(study):
  records, _, figure_path = study
  assert len(records) == len(TINY.variants) * len(TINY.ps) * TINY.num_seeds
  first = records[0]
  for field in ("study", "run_id", "config", "provenance", "method", "optimizer", "schedule",
                "hyperparameters", "p", "seed", "final_train_loss", "final_train_loss_relative",
                "test_error", "test_negative_fraction", "one_minus_p", "w_norm",
                "distance_to_min_norm", "distance_to_sign_solution", "selection", "timing",
                "curve"):
    assert field in first, field
  assert first["config"]["n"] == 30 and first["provenance"]["versions"]["jax"]
  assert {"compile_s", "run_s", "runs_in_program"} <= set(first["timing"])
  assert first["hyperparameters"]["learning_rate"] in first["selection"]["grid"]
  assert {r["run_id"] for r in records} == {first["run_id"]}
  assert figure_path.stat().st_size > 10_000


def test_every_method_interpolates(study):
  records, _, _ = study
  for r in records:
    where = (r["method"], r["p"], r["seed"])
    assert r["train_error"] == 0, where
    assert r["lemma_condition"], where
    if r["method"] == "rmsprop_const":  # a constant step stalls at a level ∝ α²
      assert r["final_train_loss_relative"] < 1e-3, where
    else:
      assert r["final_train_loss_relative"] <= TINY.target, where


def test_the_claim_exactly(study):
  records, _, _ = study
  for r in records:
    where = (r["method"], r["p"], r["seed"])
    # The test set, drawn again here from the problem's own API.
    key = jax.random.key(r["seed"])
    with jax.enable_x64(True):  # as the runner: the labels drawn depend on the precision
      problem = problems.wilson_least_squares(TINY.n, r["p"], key=key, dtype=jnp.float64)
      _, y_test = problem.test_set(TINY.n_test, jax.random.fold_in(key, RUN.TEST_STREAM))
    negatives = float(np.mean(np.asarray(y_test) < 0))
    assert r["test_negative_fraction"] == negatives, where
    if r["optimizer"] in ("gd", "heavy_ball"):
      assert r["test_error"] == 0.0, where
      assert r["distance_to_min_norm"] < 1e-8, where
    else:
      assert r["optimizer"] in ADAPTIVE
      assert r["predicts_positive_everywhere"], where
      assert r["test_error"] == negatives, where
      assert r["expected_test_error"] == pytest.approx(1 - r["p"]), where
  assert not RUN.checks(records)


def test_figure_redraws_from_the_results_only(study, tmp_path):
  _, results_path, _ = study
  figure = RUN.load_module("marginal_value_figure_under_test",
                             REPO / "paper_figures" / "marginal_value.py")
  out = figure.draw(results_path, tmp_path / "again.png")
  assert out.stat().st_size > 10_000
  # A later `--eps-ablation` run in the same file is not what the figure draws by default.
  records = [json.loads(line) for line in results_path.read_text().splitlines()]
  mixed = tmp_path / "mixed.jsonl"
  ablation = [{**r, "run_id": "later-ablation", "ablation": "eps"} for r in records]
  mixed.write_text("".join(json.dumps(r) + "\n" for r in records + ablation))
  assert {r["run_id"] for r in figure.load(mixed)} == {records[0]["run_id"]}
  assert {r["run_id"] for r in figure.load(mixed, "later-ablation")} == {"later-ablation"}


def test_a_killed_run_resumes_from_its_saved_variants(study, tmp_path, monkeypatch, capsys):
  """A run that dies in its second variant keeps the first (saved at once); run again, it
  reads that one back and computes only the other. Its records are `study`'s records of
  those two variants (a variant does not depend on which others ran), bit for bit."""
  from optlab import results

  calls = die_at_call(monkeypatch, RUN, "variant_records", 2, lambda cfg, v, *a: v.label)
  cfg, path = TINY.replace(variants=TINY.variants[:2]), tmp_path / "results.jsonl"
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(cfg, path)
  assert not path.exists()
  RUN.run(cfg, path)
  assert calls == ["gd", "heavy_ball", "heavy_ball"]  # gd was read back, not run again
  out = capsys.readouterr().out
  assert "resuming run" in out and out.rstrip().endswith(": gd)")
  got = results.read_records(path)
  assert len({r["run_id"] for r in got}) == 1

  def science(r):  # without identity, timing, provenance and the config (fewer variants)
    return {k: v for k, v in r.items() if k not in ("run_id", "provenance", "timing", "config")}

  want = [r for r in study[0] if r["method"] in ("gd", "heavy_ball")]
  assert [science(r) for r in got] == [science(r) for r in want]


def test_structured_products_match_the_dense_features(getkey):
  with jax.enable_x64(True):
    problem = problems.wilson_least_squares(9, 0.6, key=getkey(), dtype=jnp.float64)
    labels, mask = RUN.structure(problem)
    assert mask.shape == (9, 5)
    np.testing.assert_array_equal(mask.sum(axis=1), np.where(labels > 0, 1, 5))
    w = np.asarray(jax.random.normal(getkey(), (problem.dim,), jnp.float64))
    x = np.asarray(problem.features)
    np.testing.assert_allclose(RUN.features_times(labels, mask, w), x @ w, rtol=1e-13)
    residual = RUN.features_times(labels, mask, w) - labels
    np.testing.assert_allclose(RUN.features_transpose_times(labels, mask, residual),
                               problem.grad(jnp.asarray(w)), rtol=1e-12, atol=1e-12)
    broken = x.copy()
    broken[0, -1] = 1.0  # a unique feature of the last point given to the first
    with pytest.raises(ValueError, match="layout"):
      RUN.structure(problem.__class__(
        name="broken", value=None, init=problem.init, minimizer=problem.minimizer,
        optimal_value=0.0, features=jnp.asarray(broken), labels=problem.labels, p=0.6))


def test_sign_solution_is_lemma_3_1():
  with jax.enable_x64(True):
    problem = problems.wilson_least_squares(20, 0.7, key=jax.random.key(0), dtype=jnp.float64)
    labels, mask = RUN.structure(problem)
    w, c = RUN.sign_solution(labels, mask)
    assert c == 4.0
    np.testing.assert_array_equal(RUN.features_times(labels, mask, w), labels)  # interpolates
    np.testing.assert_array_equal(w[:3], [0.25, 0.25, 0.25])
    # More negatives than positives (seed 7 at p = 0.55): X sign(Xᵀy) is not ∝ y.
    problem = problems.wilson_least_squares(20, 0.55, key=jax.random.key(7), dtype=jnp.float64)
    assert float(problem.labels.sum()) < 0
    assert RUN.sign_solution(*RUN.structure(problem)) == (None, None)


def test_evaluate_agrees_with_the_problems_accuracy():
  with jax.enable_x64(True):
    key = jax.random.key(3)
    data = RUN.dataset(25, 0.7, 3, 400)
    problem = problems.wilson_least_squares(25, 0.7, key=key, dtype=jnp.float64)
    x_test, y_test = problem.test_set(400, jax.random.fold_in(key, RUN.TEST_STREAM))
    for w in (data.minimizer, data.sign_solution):
      metrics = RUN.evaluate(data, w)
      accuracy = float(problem.accuracy(jnp.asarray(w), x_test, y_test))  # float32: compare counts
      assert round(metrics["test_error"] * 400) == round((1.0 - accuracy) * 400)
    assert RUN.evaluate(data, data.minimizer)["test_error"] == 0.0
    at_sign = RUN.evaluate(data, data.sign_solution)
    assert at_sign["test_error"] == at_sign["test_negative_fraction"] > 0
    assert at_sign["distance_to_sign_solution"] == 0.0


@pytest.mark.parametrize("label", ["heavy_ball", "adagrad", "rmsprop"])  # momentum, G, schedule
def test_scan_matches_a_python_loop(label):
  steps = 15
  variant = next(v for v in TINY.variants if v.label == label)
  with jax.enable_x64(True):
    problem = problems.wilson_least_squares(8, 0.7, key=jax.random.key(1), dtype=jnp.float64)
    labels, mask = RUN.structure(problem)
    lr = RUN.learning_rate_of(variant, variant.learning_rates[1], 8)
    tx = RUN.build_optimizer(variant, lr, steps)
    w, state = problem.init, tx.init(problem.init)
    losses = []
    for _ in range(steps):
      losses.append(float(problem.value(w)))
      updates, state = tx.update(problem.grad(w), state, w)
      w = optax.apply_updates(w, updates)
    losses.append(float(problem.value(w)))
    got_w, got_losses = RUN.training(variant, steps)(
      jnp.asarray([lr]), jnp.asarray(labels[None]), jnp.asarray(mask[None]))
    got_w, got_losses, f0 = np.asarray(got_w), np.asarray(got_losses), losses[0]
  np.testing.assert_allclose(got_w[0], w, rtol=1e-10, atol=1e-13)
  np.testing.assert_allclose(got_losses[0] * f0, losses, rtol=1e-10, atol=1e-13)


def test_select_picks_the_smallest_converged_alpha_within_the_tie():
  k = np.arange(101, dtype=np.float64)
  fast, faster = 10.0 ** (-k / 2), 10.0 ** (-k / 1.9)
  stalls, diverges = np.full_like(k, 1e-5), np.where(k < 50, 1.0, np.inf)
  # (α, seed, T+1): α0 stalls, α1 and α2 converge (α2 slightly faster), α3 diverges.
  losses = np.stack([np.stack([c, c]) for c in (stalls, fast, faster, diverges)])
  best, scores = RUN.select(losses, 1e-20, 1e-30, tie=0.5)
  assert best == 1  # α2 is better by less than the tie
  assert [s["converged"] for s in scores] == [False, True, True, False]
  assert scores[3]["mean_log10_loss"] == np.inf
  best, _ = RUN.select(losses, 1e-20, 1e-30, tie=0.0)
  assert best == 2
  best, _ = RUN.select(losses[[0, 3]], 1e-20, 1e-30, tie=0.5)  # none converges: lowest score
  assert best == 0


def test_iterations_to_target():
  losses = np.array([1.0, 1e-3, 1e-21, 1e-19, 1e-22, 1e-25])
  assert RUN.iterations_to(losses, 1e-20) == 4  # stays below from k = 4 on
  assert RUN.iterations_to(losses[:4], 1e-20) is None
  assert RUN.iterations_to(np.array([1e-30]), 1e-20) == 0
  assert RUN.iterations_to(np.array([1.0, np.nan]), 1e-20) is None
