"""trajectories: first-order methods, Newton and L-BFGS on Rosenbrock and Beale.

Each first-order method (GD, heavy ball, Nesterov, AdaGrad, RMSProp, Adam) runs from the
standard start of each problem (Moré, Garbow & Hillstrom 1981) for the same number of
steps, with the learning rate picked from one log-spaced grid shared by all methods (the
lowest final f − f*; see `select`), and its path x_0, x_1, ... is recorded for a figure
over the contours of f. optlab's second-order entries, Newton's method and L-BFGS
(`optlab.optim.get("newton" | "lbfgs")`, registry defaults, nothing tuned), run from the
same start with their evaluations of f, ∇f and ∇²f counted; scipy's BFGS is the external
reference (Nocedal & Wright 2006, Ch. 3, 6, 7): they need tens of iterations where the
first-order methods need hundreds to thousands.

Every path is one compiled `jax.lax.scan` over the steps, `vmap`-ped over the grid, in
float64. For Nesterov's method the recorded iterate is his x_k (Sutskever's θ,
`optlab.optim.nesterov_iterate`), not the look-ahead point where the gradient is taken.

Usage:
  python experiments/trajectories/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PATH] [--no-figure]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import pathlib
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import optim, problems, results  # noqa: E402
from optlab.studies import check_output_paths, load_module  # noqa: E402

STUDY = "trajectories"
METHODS = ("gd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam")
SECOND_ORDER = ("newton", "lbfgs")
MOMENTUM_METHODS = ("heavy_ball", "nesterov")
REFERENCE = "bfgs"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "trajectories.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "trajectories.png"
# Compiling is most of the study's time. Newton's and L-BFGS's programs (line searches,
# eigh, the zoom search's nested loops) compile about twice as fast without XLA's backend
# optimizations, at no measurable run-time cost (60 iterations of a 2-D problem). The
# first-order programs keep the default, so their numbers stay bit-for-bit what they were.
SECOND_ORDER_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


config = load_module("optlab_trajectories_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Paths: one compiled lax.scan per (problem, method), vmapped over learning rates.


def as_float64(values) -> np.ndarray:
  """float32 values as the float64 numbers they were written as: (−1.2, 1) stays (−1.2, 1).

  `optlab.problems.rosenbrock()` and `beale()` store their start and minimizer in
  float32 (they take no dtype), and float32 −1.2 is −1.2000000477 in float64. The
  shortest decimal that round-trips in float32 is the literal the problem was defined
  with, so the float64 study starts from exactly (−1.2, 1.0).
  """
  array = np.asarray(values)
  if array.dtype != np.float32:
    return array.astype(np.float64)
  return np.array([float(np.format_float_positional(v, unique=True)) for v in array.ravel()],
                  dtype=np.float64).reshape(array.shape)


def fixed_hyperparameters(cfg, method: str) -> dict[str, Any]:
  """The hyperparameters other than the learning rate that the study sets (momentum)."""
  return {"momentum": cfg.momentum} if method in MOMENTUM_METHODS else {}


def trajectory_program(problem: problems.Problem, method: str, num_steps: int,
                       fixed: dict[str, Any] | None = None):
  """A jitted function (learning_rates (G,), x0 (d,)) → (points (G, K+1, d), f (G, K+1)).

  Row g is the path of `method` with learning rate ``learning_rates[g]`` (and the
  `fixed` hyperparameters) from x0: x_0 = x0 and x_1 … x_K after K = `num_steps`
  gradient steps, with f(x_k). For Nesterov, x_k is Sutskever's θ (the iterate of
  Nesterov's method), recovered from the look-ahead parameters.
  """
  fixed = dict(fixed or {})

  def one(learning_rate, x0):
    tx = optim.get(method, learning_rate=learning_rate, **fixed)

    def iterate(x, state):
      if method == "nesterov":
        return optim.nesterov_iterate(x, state, fixed["momentum"])
      return x

    def step(carry, _):
      x, state = carry
      updates, state = tx.update(problem.grad(x), state, x)
      x = optax.apply_updates(x, updates)
      point = iterate(x, state)
      return (x, state), (point, problem.value(point))

    _, (points, values) = jax.lax.scan(step, (x0, tx.init(x0)), length=num_steps)
    return (jnp.concatenate([x0[None], points]),
            jnp.concatenate([problem.value(x0)[None], values]))

  return jax.jit(jax.vmap(one, in_axes=(0, None)))


def second_order_program(problem: problems.Problem, method: str, num_steps: int):
  """A jitted function x0 (d,) → (points (K+1, d), f (K+1,), counts (K+1, 3)).

  `method` is ``"newton"`` or ``"lbfgs"``, built by the registry with its defaults.
  ``counts[k]`` is the cumulative number of (gradients, f values, Hessians) evaluated to
  reach x_k. Newton: one ∇f (its f comes with it, passed as ``value``) and one ∇²f per
  iteration, plus the f values of its backtracking. L-BFGS: each trial of the zoom line
  search evaluates f and ∇f together, and the last one, at x_{k+1}, is reused for the
  next iteration (``optax.value_and_grad_from_state``); x_0's is the one extra.
  """
  if method not in SECOND_ORDER:
    raise ValueError(f"second_order_program: method must be one of {SECOND_ORDER}, got "
                     f"{method!r}")
  tx = optim.get(method)

  def step(carry, _):
    x, state = carry
    if method == "lbfgs":
      value, grad = optax.value_and_grad_from_state(problem.value)(x, state=state)
      first = jnp.isinf(optax.tree.get(state, "value")).astype(jnp.int32)
      updates, state = tx.update(grad, state, x, value=value, grad=grad,
                                 value_fn=problem.value)
      trials = optax.tree.get(state, "info").num_linesearch_steps + first
      counts = jnp.stack([trials, trials, jnp.zeros_like(trials)])
    else:
      value, grad = jax.value_and_grad(problem.value)(x)
      updates, state = tx.update(grad, state, x, value=value, value_fn=problem.value)
      counts = jnp.stack([jnp.ones([], jnp.int32), state.value_evaluations,
                          jnp.ones([], jnp.int32)])
    x = optax.apply_updates(x, updates)
    return (x, state), (x, problem.value(x), counts)

  def run(x0):
    _, (points, values, counts) = jax.lax.scan(step, (x0, tx.init(x0)), length=num_steps)
    zeros = jnp.zeros((1, 3), jnp.int32)
    return (jnp.concatenate([x0[None], points]),
            jnp.concatenate([problem.value(x0)[None], values]),
            jnp.concatenate([zeros, jnp.cumsum(counts, axis=0)]))

  return jax.jit(run)


def _timed(program, *args, compiler_options=None) -> tuple[Any, dict[str, float]]:
  """Runs `program`, timing compilation (lower + compile) and execution separately."""
  start = time.perf_counter()
  compiled = program.lower(*args).compile(compiler_options=compiler_options)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  run_s = time.perf_counter() - start
  return jax.tree.map(np.asarray, out), {"compile_s": compile_s, "run_s": run_s}


# ----------------------------------------------------------------------------------
# Measurement and selection (NumPy, on the full paths).


def iterations_to(gaps: np.ndarray, target: float) -> int | None:
  """The first k from which f(x_k) − f* < target holds to the end of the run, or None.

  "Stays below", not "first dips below": a momentum method can swing through the
  target on its way past x* (Nesterov on Beale with α = 0.0056 dips below 1e-6 at
  k = 63, then climbs back to 2e-5), and that crossing is not convergence.
  """
  above = np.flatnonzero(~(np.asarray(gaps, dtype=np.float64) < target))
  if above.size == 0:
    return 0
  k = int(above[-1]) + 1
  return k if k < len(gaps) else None


def select(final_gaps: np.ndarray, iterations: Sequence[int | None], initial_gap: float,
           tie_level: float) -> tuple[int, np.ndarray]:
  """The grid index with the lowest final f − f*, and the mask of diverged runs.

  A run has diverged if its final gap is not finite or exceeds the initial one; a
  diverged run is picked only when all have diverged (then the first, smallest step).
  Gaps ≤ `tie_level` tie; a tie goes to the fewest `iterations` to the target (None:
  never), then to the earlier index (the smaller step).
  """
  gaps = np.asarray(final_gaps, dtype=np.float64)
  diverged = ~np.isfinite(gaps) | (gaps > initial_gap)
  if diverged.all():
    return 0, diverged

  def key(i):
    hits = iterations[i] if iterations[i] is not None else math.inf
    return (diverged[i], max(gaps[i], tie_level) if not diverged[i] else math.inf, hits, i)

  return min(range(len(gaps)), key=key), diverged


def subsample_path(points: np.ndarray, gaps: np.ndarray, bounds, max_points: int) -> dict:
  """At most `max_points` indices of a path, with their points and f − f*.

  Half the budget is log-spaced in k (the large early moves), a quarter evenly spaced
  in k, and the rest, topped up until the budget is used, evenly spaced in arc length
  measured in units of the plot's width and height (so that zig-zags across a valley
  survive). The first and last points are always kept. Values keep 10 digits.
  """
  if max_points < 8:
    raise ValueError(f"subsample_path: max_points must be at least 8, got {max_points}")
  points = np.asarray(points, dtype=np.float64)
  last = len(points) - 1
  half, quarter = max_points // 2, max_points // 4
  base = np.unique(np.concatenate([
    np.geomspace(1, max(last, 1), half).round(), np.linspace(0, last, quarter).round(), [0, last],
  ]).astype(int))
  ks = base
  if bounds is not None and last > 0:
    scale = np.array([hi - lo for lo, hi in bounds], dtype=np.float64)
    steps = np.linalg.norm(np.nan_to_num(np.diff(points, axis=0) / scale), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    count = max_points - len(base)
    for _ in range(20):  # grow the arc-length share until the budget is used
      if arc[-1] <= 0 or count <= 0:
        break
      spaced = np.searchsorted(arc, np.linspace(0, arc[-1], count)).clip(0, last)
      candidate = np.union1d(base, spaced)
      if len(candidate) > max_points:
        break
      ks = candidate
      if len(ks) == max_points or count >= 4 * len(points):
        break
      count += max_points - len(ks)
  fmt = lambda v: float(f"{v:.10g}")  # noqa: E731
  return {
    "iterations": ks.tolist(),
    "x": [fmt(v) for v in points[ks, 0]],
    "y": [fmt(v) for v in points[ks, 1]],
    "gap": [fmt(v) for v in gaps[ks]],
  }


# ----------------------------------------------------------------------------------
# The study.


def _problem_fields(problem: problems.Problem) -> dict[str, Any]:
  return {
    "problem": problem.name,
    "start": as_float64(problem.init),
    "minimizer": as_float64(problem.minimizer),
    "optimal_value": problem.optimal_value,
    "bounds": problem.bounds,
  }


def run_method(cfg, problem: problems.Problem, method: str) -> dict:
  """The grid runs of `method` on `problem` (one program), reduced to one record."""
  num_steps = cfg.num_steps(problem.name)
  fixed = fixed_hyperparameters(cfg, method)
  dtype = jnp.dtype(cfg.dtype)
  grid = jnp.asarray(cfg.learning_rates, dtype)
  x0 = jnp.asarray(as_float64(problem.init), dtype)
  program = trajectory_program(problem, method, num_steps, fixed)
  (points, values), timing = _timed(program, grid, x0)
  timing["runs_in_program"] = len(cfg.learning_rates)
  gaps = values - problem.optimal_value
  initial_gap = float(gaps[0, 0])
  hits = [iterations_to(row, cfg.target) for row in gaps]
  best, diverged = select(gaps[:, -1], hits, initial_gap, cfg.tie_level)
  lr = cfg.learning_rates[best]
  final = points[best, -1]
  minimizer = as_float64(problem.minimizer)
  return {
    **_problem_fields(problem),
    "kind": "first_order",
    "method": method,
    "hyperparameters": {**optim.info(method).defaults, **fixed, "learning_rate": lr},
    "learning_rate": lr,
    "num_steps": num_steps,
    "dtype": cfg.dtype,
    "selection": {
      "criterion": ("lowest final f − f* (non-finite or above f(x_0) = diverged; gaps "
                    f"≤ {cfg.tie_level:g} tie, then fewest iterations to {cfg.target:g})"),
      "grid": list(cfg.learning_rates),
      "final_gaps": gaps[:, -1],
      "diverged": diverged,
      "iterations_to_target": hits,
      "index": best,
      "learning_rate": lr,
      "at_grid_edge": best in (0, len(cfg.learning_rates) - 1),
      "all_diverged": bool(diverged.all()),
    },
    "initial_gap": initial_gap,
    "final_gap": float(gaps[best, -1]),
    "final_point": final,
    "final_distance": float(np.linalg.norm(final - minimizer)),
    "target": cfg.target,
    "target_rule": "first k after which f − f* < target holds to the end of the run",
    "iterations_to_target": hits[best],
    "gradient_evaluations_to_target": hits[best],  # one gradient per step
    "path": subsample_path(points[best], gaps[best], problem.bounds, cfg.max_path_points),
    "timing": timing,
  }


def run_second_order(cfg, problem: problems.Problem, method: str) -> dict:
  """Newton or L-BFGS (registry defaults) from the standard start, one record."""
  num_steps = cfg.second_order_steps
  dtype = jnp.dtype(cfg.dtype)
  x0 = jnp.asarray(as_float64(problem.init), dtype)
  (points, values, counts), timing = _timed(second_order_program(problem, method, num_steps),
                                            x0, compiler_options=SECOND_ORDER_COMPILER_OPTIONS)
  timing["runs_in_program"] = 1
  gaps = values - problem.optimal_value
  hit = iterations_to(gaps, cfg.target)
  final = points[-1]
  minimizer = as_float64(problem.minimizer)
  at_hit = (lambda column: None if hit is None else int(counts[hit, column]))  # noqa: E731
  return {
    **_problem_fields(problem),
    "kind": "second_order",
    "method": method,
    "hyperparameters": dict(optim.info(method).defaults),
    "learning_rate": None,  # not tuned: α = 1 and the line search picks the step
    "num_steps": num_steps,
    "dtype": cfg.dtype,
    "selection": None,
    "initial_gap": float(gaps[0]),
    "final_gap": float(gaps[-1]),
    "final_point": final,
    "final_distance": float(np.linalg.norm(final - minimizer)),
    "target": cfg.target,
    "target_rule": "first k after which f − f* < target holds to the end of the run",
    "iterations_to_target": hit,
    "gradient_evaluations_to_target": at_hit(0),
    "value_evaluations_to_target": at_hit(1),
    "hessian_evaluations_to_target": at_hit(2) if method == "newton" else None,
    "evaluations": {"gradients": int(counts[-1, 0]), "values": int(counts[-1, 1]),
                    "hessians": int(counts[-1, 2]),
                    "note": ("L-BFGS evaluates f and ∇f together; Newton's f values are "
                             "its backtracking trials (f(x_k) comes with ∇f(x_k))")},
    "path": subsample_path(points, gaps, problem.bounds, cfg.max_path_points),
    "timing": timing,
  }


def run_bfgs(cfg, problem: problems.Problem) -> dict:
  """scipy's BFGS from the same start in float64, its iterates recorded by a callback."""
  dtype = jnp.dtype(cfg.dtype)
  value_and_grad = jax.jit(jax.value_and_grad(problem.value))
  x0 = as_float64(problem.init).astype(dtype)
  start = time.perf_counter()
  jax.block_until_ready(value_and_grad(jnp.asarray(x0)))
  compile_s = time.perf_counter() - start
  evaluations = [0]

  def fun(x):
    evaluations[0] += 1
    value, grad = value_and_grad(jnp.asarray(x, dtype))
    return float(value), np.asarray(grad, np.float64)

  iterates, counts = [x0.astype(np.float64)], [0]

  def callback(xk):
    iterates.append(np.array(xk, dtype=np.float64))
    counts.append(evaluations[0])

  start = time.perf_counter()
  result = scipy.optimize.minimize(
    fun, x0, jac=True, method="BFGS", callback=callback,
    options={"gtol": cfg.bfgs_gtol, "maxiter": cfg.bfgs_maxiter},
  )
  run_s = time.perf_counter() - start
  points = np.stack(iterates)
  gaps = np.array([float(value_and_grad(jnp.asarray(x, dtype))[0]) for x in points])
  gaps -= problem.optimal_value
  hit = iterations_to(gaps, cfg.target)
  minimizer = as_float64(problem.minimizer)
  return {
    **_problem_fields(problem),
    "kind": "reference",
    "method": REFERENCE,
    "hyperparameters": {"gtol": cfg.bfgs_gtol, "maxiter": cfg.bfgs_maxiter, "jac": "jax.grad"},
    "learning_rate": None,
    "num_steps": int(result.nit),
    "dtype": cfg.dtype,
    "scipy": {"nit": int(result.nit), "nfev": int(result.nfev), "njev": int(result.njev),
              "success": bool(result.success), "message": str(result.message)},
    "initial_gap": float(gaps[0]),
    "final_gap": float(result.fun) - problem.optimal_value,
    "final_point": result.x,
    "final_distance": float(np.linalg.norm(result.x - minimizer)),
    "target": cfg.target,
    "target_rule": "first k after which f − f* < target holds to the end of the run",
    "iterations_to_target": hit,
    # value and gradient come together (jac=True), so evaluations = gradients
    "gradient_evaluations_to_target": None if hit is None else counts[hit],
    "path": subsample_path(points, gaps, problem.bounds, cfg.max_path_points),
    "timing": {"compile_s": compile_s, "run_s": run_s, "runs_in_program": 1},
  }


def run(
  cfg,
  results_path: str | pathlib.Path | None = None,
  *,
  methods: Sequence[str] | None = None,
  reference: bool = True,
) -> list[dict]:
  """Runs the study, appends its records to `results_path` (if given) and returns them.

  Args:
    cfg: a `config.Config` (``config.QUICK`` or ``config.FULL``).
    results_path: the JSONL file to append to; None writes nothing.
    methods: a subset of `METHODS` (default: the config's optimizers).
    reference: also run scipy's BFGS on each problem.

  Returns:
    Per problem in the config's order: one record per first-order method, then one per
    second-order method (``cfg.second_order``), then BFGS's.
  """
  methods = tuple(cfg.optimizers if methods is None else methods)
  unknown = [m for m in methods if m not in METHODS]
  unknown += [m for m in cfg.second_order if m not in SECOND_ORDER]
  unknown += [p for p in cfg.problems if p not in ("rosenbrock", "beale")]
  if unknown:
    raise ValueError(f"run: unknown methods or problems {unknown}; expected methods from "
                     f"{METHODS}, second-order ones from {SECOND_ORDER} and problems from "
                     "('rosenbrock', 'beale')")
  run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
  common = {"study": STUDY, "run_id": run_id, "config": cfg, "provenance": results.provenance()}
  records = []
  with jax.enable_x64(cfg.dtype == "float64"):
    for name in cfg.problems:
      problem = problems.get(name)
      for method in methods:
        records.append({**common, **run_method(cfg, problem, method)})
      for method in cfg.second_order:
        records.append({**common, **run_second_order(cfg, problem, method)})
      if reference:
        records.append({**common, **run_bfgs(cfg, problem)})
  if results_path is not None:
    results.append_records(results_path, records)
  return records


# ----------------------------------------------------------------------------------
# Report.


def _sci(value: float | None) -> str:
  return "—" if value is None else f"{value:.2e}"


def _second_order_cost(r: dict) -> str:
  """Iterations to target with what they cost: gradients, f values, Hessians."""
  hits = r["iterations_to_target"]
  if hits is None:
    return "not reached"
  if r["method"] == "newton":
    return (f"{hits} ({r['gradient_evaluations_to_target']} ∇f+∇²f, "
            f"{r['value_evaluations_to_target']} f)")
  return f"{hits} ({r['gradient_evaluations_to_target']} f+∇f)"


def table(records: list[dict]) -> str:
  """One row per (problem, method): the chosen step, f − f*, ‖x − x*‖, iterations to target."""
  r0 = records[0]
  target = r0["target"]
  lines = [f"Trajectories from the standard starts, {r0['dtype']}; step size from one "
           "log-spaced grid per first-order method (lowest final f − f*); * = pick at the "
           "grid's edge; Newton and L-BFGS: registry defaults (α = 1, line search)"]
  header = (f"{'problem':<11}{'method':<12}{'steps':>7}{'learning rate':>15}{'final f − f*':>14}"
            f"{'‖x − x*‖':>11}{'iters to stay < ' + format(target, 'g'):>30}")
  for problem in dict.fromkeys(r["problem"] for r in records):
    lines.append(header)
    for r in (r for r in records if r["problem"] == problem):
      if r["method"] == REFERENCE:
        lr = "—"
        hits = r["iterations_to_target"]
        reached = ("not reached" if hits is None
                   else f"{hits} ({r['gradient_evaluations_to_target']} f+∇f)")
        name = "BFGS*" if not r["scipy"]["success"] else "BFGS"
      elif r["method"] in SECOND_ORDER:
        lr, reached, name = "— (LS)", _second_order_cost(r), r["method"]
      else:
        edge = "*" if r["selection"]["at_grid_edge"] else " "
        lr = f"{r['learning_rate']:.3g}{edge}"
        hits = r["iterations_to_target"]
        reached = "not reached" if hits is None else str(hits)
        name = r["method"]
      lines.append(f"{problem:<11}{name:<12}{r['num_steps']:>7}{lr:>15}"
                   f"{_sci(r['final_gap']):>14}{_sci(r['final_distance']):>11}{reached:>30}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                    help="the quick configuration (default)")
  mode.add_argument("--full", dest="mode", action="store_const", const="full",
                    help="the full configuration")
  parser.add_argument("--seeds", type=int, default=None,
                      help="accepted for `optlab reproduce` and ignored: the study is "
                      "deterministic (fixed starts, exact gradients)")
  parser.add_argument("--results", type=pathlib.Path, default=DEFAULT_RESULTS,
                      help=f"JSONL file to append to (default {DEFAULT_RESULTS.relative_to(REPO)})")
  parser.add_argument("--figure", type=pathlib.Path, default=None,
                      help=f"PNG to draw (default {DEFAULT_FIGURE.relative_to(REPO)} with the "
                      "default results, else the results path with .png)")
  parser.add_argument("--no-figure", action="store_true", help="do not draw the figure")
  parser.add_argument("--restart", action="store_true",
                      help="accepted for `optlab reproduce` and ignored: nothing to resume")
  args = parser.parse_args(argv)
  check_output_paths(args.results, None if args.no_figure else args.figure)  # before the run
  cfg = config.CONFIGS[args.mode or "quick"]
  if args.seeds is not None:
    print(f"note: --seeds {args.seeds} ignored: this study is deterministic (fixed starts, "
          "exact gradients)")

  start = time.perf_counter()
  records = run(cfg, args.results)
  elapsed = time.perf_counter() - start
  print(table(records))
  compile_s = sum(r["timing"]["compile_s"] for r in records)
  print(f"\n{len(records)} records appended to {args.results} "
        f"({cfg.name} mode, {elapsed:.1f} s, of which ~{compile_s:.1f} s compiling)")
  for r in records:
    selection = r.get("selection") or {}
    if selection.get("all_diverged"):
      print(f"note: {r['method']} on {r['problem']} diverged at every step size of the grid")
    elif selection.get("at_grid_edge"):
      print(f"note: {r['method']} on {r['problem']} picked α={r['learning_rate']:g}, at the "
            "edge of its grid")
    if r["method"] == REFERENCE and not r["scipy"]["success"]:
      print(f"note: BFGS on {r['problem']}: {r['scipy']['message']}")
  if not args.no_figure:
    figure_path = args.figure
    if figure_path is None:
      default = args.results.resolve() == DEFAULT_RESULTS.resolve()
      figure_path = DEFAULT_FIGURE if default else args.results.with_suffix(".png")
    figure = load_module("optlab_paper_figure_trajectories",
                           REPO / "paper_figures" / "trajectories.py")
    print(f"figure: {figure.draw(args.results, figure_path, run_id=records[0]['run_id'])}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
