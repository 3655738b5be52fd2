"""Tests of the trajectories study: its machinery (scan = Python loop, selection, target,
subsampling), claims that hold exactly, and the runner end to end on a tiny config."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import optim, problems
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]




RUN = load_module("trajectories_run_under_test", REPO / "experiments" / "trajectories" / "run.py")
QUICK = RUN.config.QUICK


@pytest.mark.parametrize("method", RUN.METHODS)
def test_scan_matches_a_python_loop(method):
  steps, lr = 12, 2e-4 if method in ("gd", "heavy_ball", "nesterov") else 1e-2
  fixed = RUN.fixed_hyperparameters(QUICK, method)
  with jax.enable_x64(True):
    problem = problems.rosenbrock()
    x0 = jnp.asarray(RUN.as_float64(problem.init))
    tx = optim.get(method, learning_rate=lr, **fixed)
    x, state = x0, tx.init(x0)
    expected = [np.asarray(x0)]
    for _ in range(steps):
      updates, state = tx.update(problem.grad(x), state, x)
      x = x + updates
      point = optim.nesterov_iterate(x, state, fixed["momentum"]) if method == "nesterov" else x
      expected.append(np.asarray(point))
    expected = np.stack(expected)
    expected_values = [float(problem.value(p)) for p in expected]
    points, values = RUN.trajectory_program(problem, method, steps, fixed)(
      jnp.asarray([lr, 10 * lr]), x0)
  assert points.shape == (2, steps + 1, 2) and values.shape == (2, steps + 1)
  assert points.dtype == jnp.float64
  np.testing.assert_allclose(points[0], expected, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(values[0], expected_values, rtol=1e-12)
  assert not np.allclose(points[1, -1], points[0, -1])  # the second row used its own step


@pytest.mark.parametrize("name", ["rosenbrock", "beale"])
def test_gd_with_a_small_step_never_increases_f(name):
  # Below 1/L along the path, the descent lemma makes f non-increasing at every step.
  with jax.enable_x64(True):
    problem = problems.get(name)
    _, values = RUN.trajectory_program(problem, "gd", 300)(
      jnp.asarray([1e-4]), jnp.asarray(RUN.as_float64(problem.init)))
  values = np.asarray(values[0])
  assert np.all(np.diff(values) <= 0)
  assert values[-1] < values[0]


@pytest.mark.parametrize("method", RUN.SECOND_ORDER)
def test_second_order_scan_matches_a_python_loop_and_counts_evaluations(method):
  steps = 8
  with jax.enable_x64(True):
    problem = problems.rosenbrock()
    x = jnp.asarray(RUN.as_float64(problem.init))
    (points, values, counts), _ = RUN._timed(
      RUN.second_order_program(problem, method, steps), x,
      compiler_options=RUN.SECOND_ORDER_COMPILER_OPTIONS)
    tx = optim.get(method)

    def step(x, state):  # one step at a time: no scan, no reuse of the last f and ∇f
      value, grad = jax.value_and_grad(problem.value)(x)
      updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=problem.value)
      return x + updates, state

    state = tx.init(x)
    step = jax.jit(step).lower(x, state).compile(RUN.SECOND_ORDER_COMPILER_OPTIONS)
    expected = [np.asarray(x)]
    for _ in range(steps):
      x, state = step(x, state)
      expected.append(np.asarray(x))
  np.testing.assert_allclose(points, np.stack(expected), rtol=1e-10, atol=1e-14)
  assert points.shape == (steps + 1, 2) and values.shape == (steps + 1,)
  counts = np.asarray(counts)
  assert counts[0].tolist() == [0, 0, 0] and np.all(np.diff(counts, axis=0) >= 0)
  if method == "newton":  # one ∇f and one ∇²f per iteration, ≥ 1 f per line search
    assert counts[-1, 0] == counts[-1, 2] == steps and counts[-1, 1] >= steps
  else:  # f and ∇f together: x_0's, then ≥ 1 per line search
    assert counts[-1, 0] == counts[-1, 1] >= steps + 1 and counts[-1, 2] == 0


@pytest.mark.parametrize("name", ["rosenbrock", "beale"])
def test_newton_and_lbfgs_reach_the_minimizer_in_tens_of_iterations(name):
  with jax.enable_x64(True):
    problem = problems.get(name)
    for method in RUN.SECOND_ORDER:
      record = RUN.run_second_order(QUICK, problem, method)
      assert record["final_gap"] < 1e-20 and record["final_distance"] < 1e-9, method
      assert record["iterations_to_target"] <= 35, method
      assert record["gradient_evaluations_to_target"] >= record["iterations_to_target"]


def test_bfgs_reaches_1e_minus_10_on_rosenbrock():
  with jax.enable_x64(True):
    record = RUN.run_bfgs(QUICK, problems.rosenbrock())
  assert record["scipy"]["success"]
  assert record["final_gap"] < 1e-10
  assert record["final_distance"] < 1e-4
  assert record["iterations_to_target"] is not None
  assert record["iterations_to_target"] <= record["scipy"]["nit"]
  assert record["gradient_evaluations_to_target"] >= record["iterations_to_target"]
  path = record["path"]
  assert path["iterations"][0] == 0 and path["iterations"][-1] == record["scipy"]["nit"]
  assert [path["x"][0], path["y"][0]] == [-1.2, 1.0]


def test_float32_problem_data_is_read_as_its_literals():
  np.testing.assert_array_equal(RUN.as_float64(problems.rosenbrock().init), [-1.2, 1.0])
  np.testing.assert_array_equal(RUN.as_float64(problems.beale().minimizer), [3.0, 0.5])
  assert RUN.as_float64(np.array([0.1])).tolist() == [0.1]  # float64 passes through


def test_selection_rules():
  gaps = np.array([np.nan, 1e-3, 5e-25, 1e-22, 50.0, 1e-4])
  hits = [None, None, 300, 100, None, None]
  best, diverged = RUN.select(gaps, hits, initial_gap=10.0, tie_level=1e-20)
  assert best == 3  # 5e-25 and 1e-22 tie below 1e-20; 1e-22 got there first
  assert diverged.tolist() == [True, False, False, False, True, False]
  best, _ = RUN.select(np.array([1e-3, 1e-4, 1e-2]), [None] * 3, 10.0, 1e-20)
  assert best == 1  # no tie: the lowest gap
  best, diverged = RUN.select(np.array([np.inf, 20.0]), [None, None], 10.0, 1e-20)
  assert best == 0 and diverged.all()


def test_iterations_to_target_means_staying_below():
  assert RUN.iterations_to(np.array([1.0, 1e-7, 1e-5, 1e-7, 1e-8]), 1e-6) == 3
  assert RUN.iterations_to(np.array([1.0, 1e-7, 1e-5]), 1e-6) is None
  assert RUN.iterations_to(np.array([1e-7, 1e-8]), 1e-6) == 0
  assert RUN.iterations_to(np.array([1.0, np.nan]), 1e-6) is None


def test_subsample_path_keeps_the_ends_within_the_budget():
  t = np.linspace(0, 20 * np.pi, 5001)
  points = np.stack([np.cos(t) * np.exp(-t / 30), np.sin(t)], axis=1)
  gaps = np.exp(-t)
  path = RUN.subsample_path(points, gaps, ((-1, 1), (-1, 1)), 400)
  ks = path["iterations"]
  assert len(ks) <= 400 and ks[0] == 0 and ks[-1] == 5000
  assert ks == sorted(set(ks)) and ks[:5] == [0, 1, 2, 3, 4]
  np.testing.assert_allclose(path["x"], points[ks, 0], rtol=1e-9)
  np.testing.assert_allclose(path["gap"], gaps[ks], rtol=1e-9)
  # Arc length is what a plotted path shows: the subsample keeps almost all of it.
  length = lambda p: np.linalg.norm(np.diff(p, axis=0), axis=1).sum()  # noqa: E731
  assert length(np.stack([path["x"], path["y"]], axis=1)) > 0.98 * length(points)


def test_main_writes_serializable_records_and_a_figure(tmp_path, monkeypatch, capsys):
  pytest.importorskip("matplotlib")
  tiny = QUICK.replace(optimizers=("gd", "nesterov"), rosenbrock_steps=40, beale_steps=30,
                       learning_rates=(1e-4, 1e-3, 1e-2), second_order=("newton",),
                       second_order_steps=6)
  monkeypatch.setitem(RUN.config.CONFIGS, "quick", tiny)
  path = tmp_path / "results" / "trajectories.jsonl"
  figure = tmp_path / "trajectories.png"
  assert RUN.main(["--quick", "--seeds", "3", "--results", str(path), "--figure", str(figure)]) == 0
  records = [json.loads(line) for line in path.read_text().splitlines()]
  assert [(r["problem"], r["method"]) for r in records] == [
    (p, m) for p in ("rosenbrock", "beale") for m in ("gd", "nesterov", "newton", "bfgs")]
  assert [r["kind"] for r in records[:4]] == ["first_order", "first_order", "second_order",
                                               "reference"]
  newton = records[2]
  assert newton["num_steps"] == 6 and newton["learning_rate"] is None
  assert newton["hyperparameters"]["learning_rate"] == 1.0
  assert newton["evaluations"]["hessians"] == 6 and len(newton["path"]["iterations"]) == 7
  assert len({r["run_id"] for r in records}) == 1
  first = records[0]
  for field in ("study", "run_id", "config", "provenance", "problem", "method", "hyperparameters",
                "learning_rate", "selection", "num_steps", "initial_gap", "final_gap",
                "final_distance", "final_point", "iterations_to_target", "path", "timing"):
    assert field in first, field
  assert first["config"]["rosenbrock_steps"] == 40 and first["provenance"]["versions"]["jax"]
  assert first["selection"]["grid"] == [1e-4, 1e-3, 1e-2]
  assert len(first["selection"]["final_gaps"]) == 3
  assert first["learning_rate"] in first["selection"]["grid"]
  assert first["hyperparameters"]["learning_rate"] == first["learning_rate"]
  assert records[1]["hyperparameters"]["momentum"] == 0.9
  assert {"compile_s", "run_s"} <= set(first["timing"])
  assert len(first["path"]["iterations"]) <= QUICK.max_path_points
  assert first["path"]["iterations"][-1] == 40
  out = capsys.readouterr().out
  assert "final f − f*" in out and "--seeds 3 ignored" in out
  assert figure.stat().st_size > 10_000
