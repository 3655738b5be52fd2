"""Tests of the quadratic_rates study: measured rates against theory, and its building blocks.

"Within 3%" means the relative error of the convergence *exponent*,

    |log ρ̂ − log ρ| / |log ρ| ≤ 0.03,

i.e. the measured number of iterations per decade of error is within 3% of the
predicted one. This is stricter than |ρ̂ − ρ|/ρ ≤ 0.03, which any ρ̂ passes when ρ is
close to 1 (at κ=1000, GD's ρ = 0.998 and ρ̂ = 0.97 would be "within 3%" while
converging 15× faster).
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _resume import die_at_call

from optlab import optim, problems
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]
THEORY_METHODS = ("gd", "heavy_ball", "nesterov")


def _load_runner():
  return load_module("quadratic_rates_run_under_test",
                     REPO / "experiments" / "quadratic_rates" / "run.py")


RUN = _load_runner()
QUICK = RUN.config.QUICK


@pytest.fixture(scope="module")
def rate_records():
  # The quick configuration itself (d=100, linear spectrum), theory methods only: ~2 s.
  records = RUN.run(QUICK, None, methods=THEORY_METHODS, variants=("deterministic",))
  return {(r["method"], r["kappa"]): r for r in records}


@pytest.mark.parametrize("kappa", [10.0, 100.0, 1000.0])
@pytest.mark.parametrize("method", THEORY_METHODS)
def test_measured_rate_within_3_percent_of_theory(rate_records, method, kappa):
  record = rate_records[(method, kappa)]
  rho, rho_hat = record["theory_rate"], record["measured_rate"]
  assert rho_hat is not None, f"{method} at κ={kappa}: no fit window"
  exponent_error = abs(math.log(rho_hat) - math.log(rho)) / abs(math.log(rho))
  assert exponent_error <= 0.03, f"{method} κ={kappa}: ρ̂={rho_hat:.6f}, ρ={rho:.6f}"
  assert record["exponent_rel_error"] == pytest.approx(exponent_error)


def test_theory_rates_are_the_textbook_ones():
  _, rho_gd, _ = RUN.theory("gd", 1.0, 100.0)
  hyper_hb, rho_hb, _ = RUN.theory("heavy_ball", 1.0, 100.0)
  hyper_n, rho_n, _ = RUN.theory("nesterov", 1.0, 100.0)
  assert rho_gd == pytest.approx(99 / 101)
  assert rho_hb == pytest.approx(9 / 11)
  assert hyper_hb == pytest.approx({"learning_rate": 4 / 121, "momentum": (9 / 11) ** 2})
  assert rho_n == pytest.approx(0.9)
  assert hyper_n == pytest.approx({"learning_rate": 0.01, "momentum": 9 / 11})
  assert RUN.theory("adam", 1.0, 100.0) == ({}, None, "grid")
  with pytest.raises(ValueError, match="unknown method"):
    RUN.theory("lbfgs", 1.0, 10.0)


def test_gradient_oracle_matches_the_problems_api(getkey):
  with jax.enable_x64(True):
    problem = problems.quadratic(12, 50.0, key=getkey(), dtype=jnp.float64)
    x = jax.random.normal(getkey(), (12,), jnp.float64)
    exact = RUN.quadratic_gradient(problem.hessian, problem.minimizer, x)
    np.testing.assert_array_equal(exact, problem.grad(x))
    key = getkey()
    noisy = RUN.quadratic_gradient(problem.hessian, problem.minimizer, x, key, 0.3)
    np.testing.assert_allclose(noisy, problems.noisy(problem, 0.3).stochastic_grad(x, key),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("method", ["gd", "heavy_ball", "nesterov", "adam"])
def test_scan_matches_a_python_loop(method, getkey):
  steps = 25
  with jax.enable_x64(True):
    problem = problems.quadratic(6, 20.0, key=getkey(), dtype=jnp.float64)
    hyper, _, _ = RUN.theory(method, problem.mu, problem.L)
    hyper = hyper or {"learning_rate": 0.05}
    tx = optim.get(method, **hyper)
    x, state = problem.init, tx.init(problem.init)
    expected = [1.0]
    for _ in range(steps):
      updates, state = tx.update(problem.grad(x), state, x)
      x = x + updates
      iterate = optim.nesterov_iterate(x, state, hyper["momentum"]) if method == "nesterov" else x
      expected.append(float(problem.distance_to_minimizer(iterate)
                            / problem.distance_to_minimizer(problem.init)))
    batch = {k: jnp.asarray([v]) for k, v in hyper.items()}
    got = RUN.relative_errors(method, steps)(
      batch, problem.hessian[None], problem.minimizer[None], problem.init[None],
      jax.random.key(0)[None],
    )
  assert got.shape == (1, steps + 1)
  np.testing.assert_allclose(got[0], expected, rtol=1e-10)


def test_fit_rate_recovers_exact_geometric_curves():
  k = np.arange(2000, dtype=np.float64)
  single = RUN.fit_rate(0.9**k, double_root=False, upper=1e-3, lower=1e-30, late_fraction=0.5)
  assert single["rate"] == pytest.approx(0.9, rel=1e-12)
  assert single["model"] == "C rho^k"
  k_end = single["window"][1]
  assert 0.9**k_end > 1e-30 >= 0.9 ** (k_end + 1)  # ends just before the lower bound
  curve = np.where(k == 0, 1.0, 3 * k * 0.8**k)  # e_0 = 1, then the double root's C k ρ^k
  double = RUN.fit_rate(curve, double_root=True, upper=1e-3, lower=1e-30, late_fraction=0.5)
  assert double["rate"] == pytest.approx(0.8, rel=1e-12)
  assert double["intercept"] == pytest.approx(math.log(3.0), rel=1e-9)


def test_fit_rate_stops_at_a_floor_and_gives_up_when_there_is_no_window():
  k = np.arange(500, dtype=np.float64)
  floored = np.maximum(0.9**k, 1e-16)  # a rounding floor below the window's lower end
  fit = RUN.fit_rate(floored, double_root=False, upper=1e-3, lower=1e-12, late_fraction=0.5)
  assert fit["rate"] == pytest.approx(0.9, rel=1e-12)
  slow = 0.9999**k  # never reaches 1e-3
  assert RUN.fit_rate(slow, double_root=False, upper=1e-3, lower=1e-30, late_fraction=0.5) is None
  diverging = np.where(k < 100, 0.9**k, np.nan)  # stops at the first non-finite value
  assert RUN.fit_rate(diverging, double_root=False, upper=1e-3, lower=1e-30,
                      late_fraction=0.5)["window"][1] == 99


def test_iterations_to_target():
  errors = 0.5 ** np.arange(40)
  assert RUN.iterations_to(errors, 1e-6) == 20  # 2^-20 ≈ 9.5e-7
  assert RUN.iterations_to(errors[:10], 1e-6) is None
  assert RUN.predicted_iterations(0.5, 1e-6) == 20
  assert RUN.predicted_iterations(None, 1e-6) is None
  assert RUN.predicted_iterations(1.0, 1e-6) is None


def test_subsample_keeps_the_ends_and_the_budget():
  errors = 0.99 ** np.arange(20_001)
  curve = RUN.subsample(errors, 500)
  assert len(curve["iterations"]) <= 500
  assert curve["iterations"][0] == 0 and curve["iterations"][-1] == 20_000
  assert curve["iterations"][:10] == list(range(10))  # dense where fast methods converge
  np.testing.assert_allclose(curve["errors"], errors[curve["iterations"]], rtol=1e-5)
  stopped = RUN.subsample(errors, 500, stop=1e-10)
  assert stopped["iterations"][-1] == int(np.argmax(errors <= 1e-10))


def test_stationary_error_of_gd_has_its_closed_form():
  alpha, sigma = 0.1, 0.3
  eigenvalues = np.linspace(1.0, 10.0, 7)
  expected = math.sqrt(sum(alpha**2 * sigma**2 / (1 - (1 - alpha * lam) ** 2)
                           for lam in eigenvalues))
  got = RUN.stationary_error("gd", {"learning_rate": alpha}, eigenvalues, sigma)
  assert got == pytest.approx(expected, rel=1e-12)
  # Heavy ball with β = 0 is GD; Adam has no linear theory.
  assert RUN.stationary_error("heavy_ball", {"learning_rate": alpha, "momentum": 0.0},
                              eigenvalues, sigma) == pytest.approx(expected, rel=1e-12)
  assert RUN.stationary_error("adam", {"learning_rate": alpha}, eigenvalues, sigma) is None


def test_noise_floors_match_the_stationary_prediction():
  cfg = QUICK.replace(condition_numbers=(10.0, 100.0), noisy_num_iterations=3000,
                      num_noisy_seeds=3)
  records = RUN.run(cfg, None, methods=THEORY_METHODS, variants=("noisy",))
  assert len(records) == 3 * 2 * 3
  for kappa in cfg.condition_numbers:
    for method in THEORY_METHODS:
      group = [r for r in records if r["kappa"] == kappa and r["method"] == method]
      measured = math.sqrt(np.mean([r["noise_floor_measured"] ** 2 for r in group]))
      assert measured == pytest.approx(group[0]["noise_floor_predicted"], rel=0.1), (method, kappa)


TINY = QUICK.replace(condition_numbers=(10.0,), dim=8, num_iterations=400,
                     noisy_num_iterations=200, num_noisy_seeds=2,
                     adam_learning_rates=(1e-2, 1e-1), adagrad_learning_rates=(0.1, 1.0))


def test_main_writes_serializable_records(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(RUN.config.CONFIGS, "quick", TINY)
  path = tmp_path / "results" / "quadratic_rates.jsonl"
  assert RUN.main(["--results", str(path), "--no-figure"]) == 0
  lines = path.read_text().splitlines()
  assert len(lines) == 5 * (1 + 2)  # five methods; one seed without noise, two with
  records = [json.loads(line) for line in lines]
  first = records[0]
  for field in ("study", "run_id", "method", "kappa", "seed", "hyperparameters", "theory_rate",
                "measured_rate", "iterations_to_target", "iterations_to_target_predicted",
                "final_error", "curve", "timing", "config", "provenance"):
    assert field in first
  assert first["config"]["dim"] == 8 and first["provenance"]["versions"]["jax"]
  assert {"compile_s", "run_s", "runs_in_program"} <= set(first["timing"])
  assert "measured ρ" in capsys.readouterr().out


def test_a_killed_run_resumes_from_its_saved_units(tmp_path, monkeypatch, capsys):
  """A run that dies in its second batch of runs keeps Adam's step-size grid and GD's runs
  (saved at once); run again, it computes only Adam's runs, and ends with the records of an
  uninterrupted run, bit for bit."""
  from optlab import results

  # The reference run's two calls, then the second of the killed run.
  calls = die_at_call(monkeypatch, RUN, "method_records", 4, lambda cfg, method, *a: method)
  kwargs = {"methods": ("gd", "adam"), "variants": ("deterministic",), "seed": 1}
  reference = tmp_path / "reference.jsonl"
  RUN.run(TINY, reference, **kwargs)
  path = tmp_path / "resumed.jsonl"
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(TINY, path, **kwargs)
  assert not path.exists()
  RUN.run(TINY, path, **kwargs)
  assert calls == ["gd", "adam", "gd", "adam", "adam"]
  out = capsys.readouterr().out
  assert "(2 units already done" in out and "deterministic/adam/step_sizes" in out

  def science(r):
    return {k: v for k, v in r.items() if k not in ("run_id", "provenance", "timing")}

  got, want = results.read_records(path), results.read_records(reference)
  assert len(got) == 2 and len({r["run_id"] for r in got}) == 1
  for r in (*got, *want):
    r.get("selection", {}).pop("timing", None)  # the grid's timing (in the selection)
  assert [science(r) for r in got] == [science(r) for r in want]

@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
  pytest.importorskip("matplotlib")
  path = tmp_path / "quadratic_rates.jsonl"
  assert RUN.main(["--quick", "--results", str(path), "--no-figure"]) == 0
  figure = RUN.load_module("quadratic_rates_figure_under_test",
                             REPO / "paper_figures" / "quadratic_rates.py")
  written = figure.draw(path, tmp_path / "fig.png")
  assert [p.name for p in written] == ["fig.png", "fig_noisy.png"]
