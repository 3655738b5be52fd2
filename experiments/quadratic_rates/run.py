"""quadratic_rates: linear convergence rates of gradient methods on quadratics, measured.

On f(x) = ½ (x − x*)ᵀ A (x − x*) with μ I ⪯ A ⪯ L I and κ = L/μ, the error of each
method contracts, asymptotically, by a known factor ρ per step:

  gradient descent, α = 2/(L+μ):                        ρ = (κ−1)/(κ+1)
  heavy ball, α = 4/(√L+√μ)², β = ((√κ−1)/(√κ+1))²:      ρ = (√κ−1)/(√κ+1)
  Nesterov, α = 1/L, β = (√κ−1)/(√κ+1):                  ρ = 1 − 1/√κ

(Polyak 1964; Nesterov 2004, Thm 2.1.15 and Sec. 2.2; Goh 2017). GD's error is a sum
of pure exponentials, e_k ≈ C ρ^k; the momentum methods have a double root at the
end(s) of the spectrum, e_k ≈ C k ρ^k, so log(e_k / k) is what is linear in k.
This runner measures ρ by a least-squares fit of log e_k (resp. log(e_k/k)) on a
late window, compares it with theory, and repeats the runs with noisy gradients,
where a constant step size stalls at a noise floor that is predicted exactly.

Usage:
  python experiments/quadratic_rates/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--no-figure] [--restart]

Each (variant, method) batch and each step-size grid is saved as soon as it is done: a
killed run, started again with the same arguments, resumes where it stopped (--restart
discards it instead).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import optim, problems, results  # noqa: E402
from optlab.studies import check_output_paths, load_module  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.tune import targets  # noqa: E402

STUDY = "quadratic_rates"
METHODS = ("gd", "heavy_ball", "nesterov", "adam", "adagrad")
DOUBLE_ROOT = ("heavy_ball", "nesterov")  # e_k ≈ C k ρ^k
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "quadratic_rates.jsonl"
VARIANTS = ("deterministic", "noisy")
NOISE_STREAM = 1  # fold_in index that separates the noise keys from the problem keys


config = load_module("optlab_quadratic_rates_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Theory.


def theory(method: str, mu: float, L: float) -> tuple[dict[str, float], float | None, str]:
  """The tuned hyperparameters, the rate ρ and the rule, for a method on [μ, L].

  Returns ``({}, None, "grid")`` for Adam and AdaGrad, which have no linear-rate theory.
  """
  kappa = L / mu
  root = math.sqrt(kappa)
  if method == "gd":
    return {"learning_rate": 2 / (L + mu)}, (kappa - 1) / (kappa + 1), "α = 2/(L+μ)"
  if method == "heavy_ball":
    hyper = {"learning_rate": 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2,
             "momentum": ((root - 1) / (root + 1)) ** 2}
    return hyper, (root - 1) / (root + 1), "α = 4/(√L+√μ)², β = ((√κ−1)/(√κ+1))²"
  if method == "nesterov":
    hyper = {"learning_rate": 1 / L, "momentum": (root - 1) / (root + 1)}
    return hyper, 1 - 1 / root, "α = 1/L, β = (√κ−1)/(√κ+1)"
  if method in ("adam", "adagrad"):
    return {}, None, "grid"
  raise ValueError(f"theory: unknown method {method!r}; expected one of {METHODS}")


def stationary_error(
  method: str, hyper: dict[str, float], eigenvalues: np.ndarray, noise_scale: float
) -> float | None:
  """√E‖x_∞ − x*‖² under additive gradient noise σ ξ, ξ ~ N(0, I), for a linear method.

  In the eigenbasis each mode λ is a linear system z' = T z + b σ ξ in (θ, v), with
  v the velocity (v' = β v − α g, θ' = θ + v'; Nesterov evaluates g at θ + β v), so
  its stationary covariance solves the discrete Lyapunov equation Σ = T Σ Tᵀ + σ² b bᵀ.
  GD is heavy ball with β = 0. Returns None for methods that are not linear.
  """
  if method not in ("gd", "heavy_ball", "nesterov"):
    return None
  alpha = hyper["learning_rate"]
  beta = hyper.get("momentum", 0.0)
  total = 0.0
  b = np.array([-alpha, -alpha])
  for lam in np.asarray(eigenvalues, dtype=np.float64):
    if method == "nesterov":
      t = np.array([[1 - alpha * lam, beta * (1 - alpha * lam)],
                    [-alpha * lam, beta * (1 - alpha * lam)]])
    else:
      t = np.array([[1 - alpha * lam, beta], [-alpha * lam, beta]])
    q = noise_scale**2 * np.outer(b, b)
    sigma = np.linalg.solve(np.eye(4) - np.kron(t, t), q.reshape(-1)).reshape(2, 2)
    total += sigma[0, 0]
  return math.sqrt(total)


# ----------------------------------------------------------------------------------
# Measurement (NumPy, float64, on the full curve).


def fit_rate(
  errors: np.ndarray,
  *,
  double_root: bool,
  upper: float,
  lower: float,
  late_fraction: float,
  min_points: int = 8,
) -> dict[str, Any] | None:
  """Least-squares fit of log e_k (or log(e_k/k)) = c + k log ρ on a late window.

  The window ends at k_end, the last iteration before the error first falls to
  `lower` or stops being finite (or the last iteration), and starts at the later of
  the first iteration with e_k ≤ `upper` and ⌊late_fraction · k_end⌋.

  Returns:
    ``{"model", "window": [k_start, k_end], "log_rate", "intercept", "rate"}``, or
    None when the curve never reaches `upper` or the window has < `min_points` points.
  """
  e = np.asarray(errors, dtype=np.float64)
  stop = ~np.isfinite(e) | (e <= lower)
  k_end = int(np.argmax(stop)) - 1 if stop.any() else len(e) - 1
  reached = np.flatnonzero(e[: k_end + 1] <= upper)
  if reached.size == 0:
    return None
  k_start = max(int(reached[0]), int(late_fraction * k_end), 1)
  if k_end - k_start + 1 < min_points:
    return None
  k = np.arange(k_start, k_end + 1, dtype=np.float64)
  y = np.log(e[k_start : k_end + 1]) - (np.log(k) if double_root else 0.0)
  slope, intercept = np.polyfit(k, y, 1)
  return {
    "model": "C k rho^k" if double_root else "C rho^k",
    "window": [k_start, k_end],
    "log_rate": float(slope),
    "intercept": float(intercept),
    "rate": float(np.exp(slope)),
  }


def iterations_to(errors: np.ndarray, target: float) -> int | None:
  """The first k with e_k ≤ target, or None if never (``optlab.tune.targets``, rule "first")."""
  return targets.steps_to_target(errors, target, mode="min", rule="first")


def predicted_iterations(rate: float | None, target: float) -> int | None:
  """⌈log(target) / log ρ⌉: the iterations ρ^k needs to reach `target`."""
  if rate is None or not 0 < rate < 1:
    return None
  return math.ceil(math.log(target) / math.log(rate))


def subsample(errors: np.ndarray, max_points: int, stop: float | None = None) -> dict[str, list]:
  """At most `max_points` points of the curve: half linear, half log-spaced in k.

  The log-spaced half keeps the first iterations dense, where the fast methods
  converge. With `stop`, the curve ends at the first k where e_k ≤ stop. Errors are
  stored to 6 significant digits (enough for a figure; rates are fitted before).
  """
  e = np.asarray(errors, dtype=np.float64)
  last = len(e) - 1
  if stop is not None:
    below = np.flatnonzero(e <= stop)
    last = int(below[0]) if below.size else last
  half = max_points // 2
  ks = np.unique(np.concatenate([
    np.linspace(0, last, half).round(),
    np.geomspace(1, max(last, 1), max_points - half).round(),
  ]).astype(int))
  return {"iterations": ks.tolist(), "errors": [float(f"{v:.6g}") for v in e[ks]]}


# ----------------------------------------------------------------------------------
# Simulation: one compiled lax.scan per method, vmapped over (κ, seed) or (κ, lr).


def quadratic_gradient(hessian, minimizer, x, key=None, noise_scale: float = 0.0):
  """A (x − x*) + σ ξ, ξ ~ N(0, I) drawn from `key`: the gradient oracle, on arrays.

  The same numbers as `optlab.problems.Quadratic.grad(x)` and, with noise,
  `optlab.problems.noisy(problem, σ).stochastic_grad(x, key)` (a test checks both);
  written on arrays so that one compiled program serves every κ and seed.
  """
  grad = hessian @ (x - minimizer)
  if noise_scale:
    grad = grad + noise_scale * jax.random.normal(key, grad.shape, grad.dtype)
  return grad


def relative_errors(method: str, num_iterations: int, noise_scale: float = 0.0):
  """A jitted function (hyper, hessian, minimizer, init, key) → e_k/e_0, k = 0..K.

  Every argument has a leading batch axis (vmapped); the K steps are one `lax.scan`.
  Step k draws its noise from ``fold_in(key, k)``. For Nesterov the error is measured
  at Nesterov's x_k (Sutskever's θ, `optlab.optim.nesterov_iterate`), not at the
  look-ahead point where the gradient is taken.
  """

  def one(hyper, hessian, minimizer, init, key):
    tx = optim.get(method, **hyper)

    def error(x, state):
      if method == "nesterov":
        x = optim.nesterov_iterate(x, state, hyper["momentum"])
      return jnp.linalg.norm(x - minimizer)

    def step(carry, k):
      x, state = carry
      grad = quadratic_gradient(hessian, minimizer, x, jax.random.fold_in(key, k), noise_scale)
      updates, state = tx.update(grad, state, x)
      x = optax.apply_updates(x, updates)
      return (x, state), error(x, state)

    _, errors = jax.lax.scan(step, (init, tx.init(init)), jnp.arange(num_iterations))
    e0 = jnp.linalg.norm(init - minimizer)
    return jnp.concatenate([e0[None], errors]) / e0

  return jax.jit(jax.vmap(one))


def _timed(program, *args) -> tuple[np.ndarray, dict[str, float]]:
  """Runs `program`, timing compilation (lower + compile) and execution separately."""
  start = time.perf_counter()
  compiled = program.lower(*args).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = compiled(*args)
  out.block_until_ready()
  run_s = time.perf_counter() - start
  return np.asarray(out), {"compile_s": compile_s, "run_s": run_s}


@functools.lru_cache(maxsize=64)
def _problem(cfg, kappa: float, seed: int) -> problems.Quadratic:
  """The float64 quadratic of (κ, seed); built once per run, whatever asks for it."""
  minimizer = jnp.zeros(cfg.dim, jnp.float64) if cfg.minimizer_at_origin else None
  return problems.quadratic(
    cfg.dim, kappa, mu=cfg.mu, spectrum=cfg.spectrum, rotate=cfg.rotate,
    minimizer=minimizer, key=jax.random.key(seed), dtype=jnp.float64,
  )


def _batch(method, runs, num_iterations, noise_scale=0.0):
  """Runs [(problem, hyper, key)] as one vmapped program; returns errors and timing."""
  stack = lambda xs: jnp.stack([jnp.asarray(x) for x in xs])  # noqa: E731
  hyper = {name: stack([h[name] for _, h, _ in runs]) for name in runs[0][1]}
  args = (
    hyper,
    stack([p.hessian for p, _, _ in runs]),
    stack([p.minimizer for p, _, _ in runs]),
    stack([p.init for p, _, _ in runs]),
    jnp.stack([k for _, _, k in runs]),
  )
  errors, timing = _timed(relative_errors(method, num_iterations, noise_scale), *args)
  timing["runs_in_program"] = len(runs)
  return errors, timing


def _settings(cfg, variant: str) -> tuple[int, float]:
  """(iterations, noise scale) of a variant."""
  if variant == "deterministic":
    return cfg.num_iterations, 0.0
  return cfg.noisy_num_iterations, cfg.noise_scale


def floor_level(errors: np.ndarray, fraction: float) -> np.ndarray:
  """RMS relative error over the last `fraction` of each curve (the last axis)."""
  errors = np.asarray(errors, dtype=np.float64)
  tail = errors[..., int(errors.shape[-1] * (1 - fraction)) :]
  return np.sqrt(np.mean(tail**2, axis=-1))


def select_learning_rates(cfg, method: str, variant: str, seed: int) -> dict[float, dict]:
  """Per κ, the grid learning rate that ends lowest on the problem (and noise) of `seed`.

  "Lowest" is the final relative error without noise, and the noise-floor level
  (`floor_level`) with noise, where the last iterate alone is a noisy score.
  """
  grid = cfg.adam_learning_rates if method == "adam" else cfg.adagrad_learning_rates
  iterations, noise = _settings(cfg, variant)
  key = jax.random.fold_in(jax.random.key(seed), NOISE_STREAM)
  runs = [(_problem(cfg, kappa, seed), {"learning_rate": lr}, key)
          for kappa in cfg.condition_numbers for lr in grid]
  errors, timing = _batch(method, runs, iterations, noise)
  scores = errors[:, -1] if variant == "deterministic" else floor_level(errors, cfg.floor_fraction)
  criterion = (f"lowest relative error after {iterations} iterations" if variant == "deterministic"
               else f"lowest RMS relative error over the last {cfg.floor_fraction:.0%} of "
               f"{iterations} noisy iterations")
  chosen = {}
  for kappa, row in zip(cfg.condition_numbers, scores.reshape(-1, len(grid)), strict=True):
    best = int(np.argmin(np.where(np.isfinite(row), row, np.inf)))
    chosen[kappa] = {
      "learning_rate": grid[best],
      "at_grid_edge": best in (0, len(grid) - 1),
      "grid": list(grid),
      "scores": row.tolist(),
      "criterion": f"{criterion}, seed {seed}",
      "timing": timing,  # of the whole grid, all κ together
    }
  return chosen


def run(
  cfg,
  results_path: str | pathlib.Path | None = None,
  *,
  seed: int = 0,
  methods: Sequence[str] = METHODS,
  variants: Sequence[str] = VARIANTS,
  restart: bool = False,
) -> list[dict]:
  """Runs the study, appends its records to `results_path` (if given) and returns them.

  Each step-size grid (per variant, for Adam and AdaGrad) and each (variant, method)
  batch of runs is saved as soon as it is done (optlab.study_progress): a killed run
  started again with the same config and seed goes on from there, with the same run_id.

  Args:
    cfg: a `config.Config` (``config.QUICK`` or ``config.FULL``).
    results_path: the JSONL file to append to; None writes nothing.
    seed: the first seed; problem draws are seed, seed+1, ... (and the same for the
      noisy runs, whose noise keys are derived from them).
    methods: a subset of `METHODS` (the tests run the three with a theory).
    variants: a subset of ``("deterministic", "noisy")``.
    restart: discard an unfinished run's saved units instead of resuming it.

  Returns:
    One record per (variant, method, κ, seed).
  """
  unknown = [m for m in methods if m not in METHODS] + [v for v in variants if v not in VARIANTS]
  if unknown:
    raise ValueError(f"run: unknown methods or variants {unknown}; expected {METHODS}, {VARIANTS}")
  # The units are keyed by variant and method and do not depend on which others run, so
  # `methods` and `variants` need not be part of what a resumed run must match.
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  common = {"study": STUDY, "run_id": progress.run_id, "config": cfg,
            "provenance": results.provenance()}
  seeds = [seed + i for i in range(cfg.num_seeds)]
  noisy_seeds = [seed + i for i in range(cfg.num_noisy_seeds)]
  records = []
  for variant in variants:
    variant_seeds = seeds if variant == "deterministic" else noisy_seeds
    grids = {m: progress.unit(f"{variant}/{m}/step_sizes", _selection, cfg, m, variant,
                              variant_seeds[0])
             for m in ("adam", "adagrad") if m in methods}
    for method in methods:
      records += [{**common, **r} for r in progress.unit(
          f"{variant}/{method}", method_records, cfg, method, variant, variant_seeds,
          grids.get(method))]
  progress.finish(records)
  return records


def _selection(cfg, method: str, variant: str, seed: int) -> dict[float, dict]:
  with jax.enable_x64(True):
    return select_learning_rates(cfg, method, variant, seed)


def method_records(cfg, method: str, variant: str, seeds: Sequence[int],
                   grid: dict[float, dict] | None = None) -> list[dict]:
  """The runs of `method` in `variant` (every κ × seed, one program) and their records,
  without the fields `run` adds; `grid`: the step sizes picked per κ (Adam, AdaGrad)."""
  iterations, noise = _settings(cfg, variant)
  records = []
  with jax.enable_x64(True):
    runs, meta = [], []
    for kappa in cfg.condition_numbers:
      for s in seeds:
        problem = _problem(cfg, kappa, s)
        hyper, rate, rule = theory(method, problem.mu, problem.L)
        if grid is not None:
          hyper = {"learning_rate": grid[kappa]["learning_rate"]}
        key = jax.random.fold_in(jax.random.key(s), NOISE_STREAM)
        runs.append((problem, hyper, key))
        meta.append((kappa, s, problem, hyper, rate, rule))
    errors, timing = _batch(method, runs, iterations, noise)
    for curve, (kappa, s, problem, hyper, rate, rule) in zip(errors, meta, strict=True):
      record = _record(cfg, variant, method, kappa, s, problem, hyper, rate, rule, curve)
      record["timing"] = timing
      if grid is not None:
        record["selection"] = grid[kappa]
      records.append(record)
  return records


def _record(cfg, variant, method, kappa, seed, problem, hyper, rate, rule, curve) -> dict:
  """The metrics of one run (everything but the shared fields and the timing)."""
  fit = None
  if variant == "deterministic":
    fit = fit_rate(curve, double_root=method in DOUBLE_ROOT, upper=cfg.fit_upper,
                   lower=cfg.fit_lower, late_fraction=cfg.fit_late_fraction)
  measured = fit["rate"] if fit else None
  record = {
    "variant": variant,
    "method": method,
    "kappa": kappa,
    "seed": seed,
    "dim": cfg.dim,
    "spectrum": cfg.spectrum,
    "hyperparameters": {**optim.info(method).defaults, **hyper},  # all of them, as built
    "hyperparameter_rule": rule,
    "theory_rate": rate,
    "measured_rate": measured,
    "rate_rel_error": abs(measured - rate) / rate if rate and measured else None,
    "exponent_rel_error": (abs(math.log(measured) - math.log(rate)) / abs(math.log(rate))
                           if rate and measured else None),
    "fit": fit,
    "target": cfg.target,
    "iterations_to_target": iterations_to(curve, cfg.target),
    "iterations_to_target_predicted": predicted_iterations(rate, cfg.target),
    "final_error": float(curve[-1]),
    "curve": subsample(curve, cfg.max_curve_points,
                       cfg.curve_stop if variant == "deterministic" else None),
  }
  if variant == "noisy":
    e0 = float(problem.distance_to_minimizer(problem.init))
    predicted = stationary_error(method, hyper, np.asarray(problem.eigenvalues), cfg.noise_scale)
    record.update(
      noise="additive",
      noise_scale=cfg.noise_scale,
      noise_floor_measured=float(floor_level(curve, cfg.floor_fraction)),
      noise_floor_predicted=None if predicted is None else predicted / e0,
    )
  return record


# ----------------------------------------------------------------------------------
# Report.


def _fmt(value, spec: str) -> str:
  return "—" if value is None else format(value, spec)


def table(records: list[dict]) -> str:
  """The deterministic and noisy tables, aggregated over seeds (mean rate, worst error)."""
  lines = []
  det = [r for r in records if r["variant"] == "deterministic"]
  if det:
    r0 = det[0]
    seeds = sorted({r["seed"] for r in det})
    lines.append(f"Rates: dim={r0['dim']}, {r0['spectrum']} spectrum, float64, "
                 f"{len(seeds)} seed(s); fit of log e_k (GD, Adam, AdaGrad) or log(e_k/k) "
                 "(heavy ball, Nesterov)")
    lines.append(f"{'kappa':>6}  {'method':<11}{'theory ρ':>10}{'measured ρ':>12}"
                 f"{'exp. err':>10}{'iters to ' + format(r0['target'], 'g'):>16}"
                 f"{'predicted':>11}  hyperparameters")
    for kappa, method, group in _groups(det):
      rates = [r["measured_rate"] for r in group if r["measured_rate"] is not None]
      errs = [r["exponent_rel_error"] for r in group if r["exponent_rel_error"] is not None]
      iters = [r["iterations_to_target"] for r in group if r["iterations_to_target"] is not None]
      hyper = ", ".join(f"{k}={v:.4g}" for k, v in group[0]["hyperparameters"].items()
                        if k in ("learning_rate", "momentum"))
      lines.append(
        f"{kappa:>6g}  {method:<11}{_fmt(group[0]['theory_rate'], '.6f'):>10}"
        f"{_fmt(np.mean(rates) if rates else None, '.6f'):>12}"
        f"{_fmt(max(errs) * 100 if errs else None, '.3f') + ('%' if errs else ''):>10}"
        f"{_fmt(int(np.median(iters)) if iters else None, 'd'):>16}"
        f"{_fmt(group[0]['iterations_to_target_predicted'], 'd'):>11}  {hyper}"
      )
  noisy = [r for r in records if r["variant"] == "noisy"]
  if noisy:
    lines.append("")
    lines.append(f"Noise floors: additive σ={noisy[0]['noise_scale']:g}, "
                 f"{len({r['seed'] for r in noisy})} seed(s); RMS relative error over the "
                 "last part of the run, predicted from the stationary (Lyapunov) covariance")
    lines.append(f"{'kappa':>6}  {'method':<11}{'measured':>12}{'predicted':>12}{'ratio':>8}")
    for kappa, method, group in _groups(noisy):
      measured = float(np.sqrt(np.mean([r["noise_floor_measured"] ** 2 for r in group])))
      predicted = group[0]["noise_floor_predicted"]
      ratio = measured / predicted if predicted else None
      lines.append(f"{kappa:>6g}  {method:<11}{measured:>12.3e}"
                   f"{_fmt(predicted, '.3e'):>12}{_fmt(ratio, '.3f'):>8}")
  return "\n".join(lines)


def _groups(records):
  keys = sorted({(r["kappa"], METHODS.index(r["method"])) for r in records})
  for kappa, index in keys:
    method = METHODS[index]
    yield kappa, method, [r for r in records if r["kappa"] == kappa and r["method"] == method]


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the tables, draw the figure."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                    help="the quick configuration (default)")
  mode.add_argument("--full", dest="mode", action="store_const", const="full",
                    help="the full configuration")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds for both variants (default: the config's)")
  parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
  parser.add_argument("--results", type=pathlib.Path, default=DEFAULT_RESULTS,
                      help=f"JSONL file to append to (default {DEFAULT_RESULTS.relative_to(REPO)})")
  parser.add_argument("--no-figure", action="store_true", help="do not draw the figure")
  parser.add_argument("--restart", action="store_true",
                      help="discard the saved progress of a killed run "
                      "(<results>.quadratic_rates.inprogress.jsonl) and start over, instead "
                      "of resuming it")
  args = parser.parse_args(argv)
  check_output_paths(args.results)  # a clear error now, not after the run
  cfg = config.CONFIGS[args.mode or "quick"]
  if args.seeds is not None:
    if args.seeds < 1:
      parser.error(f"--seeds must be at least 1, got {args.seeds}")
    cfg = cfg.replace(num_seeds=args.seeds, num_noisy_seeds=args.seeds)

  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed, restart=args.restart)
  elapsed = time.perf_counter() - start
  print(table(records))
  timings = {(r["variant"], r["method"]): r["timing"] for r in records}  # one per program
  timings.update({(r["variant"], r["method"], "grid"): r["selection"]["timing"]
                  for r in records if "selection" in r})
  compile_s = sum(t["compile_s"] for t in timings.values())
  print(f"\n{len(records)} records appended to {args.results} "
        f"({cfg.name} mode, {elapsed:.1f} s, of which ~{compile_s:.1f} s compiling)")
  for r in records:
    if r.get("selection", {}).get("at_grid_edge") and r["seed"] == args.seed:
      print(f"note: {r['method']} ({r['variant']}, κ={r['kappa']:g}) picked "
            f"α={r['selection']['learning_rate']:g}, at the edge of its grid")
  if not args.no_figure:
    figure = load_module("optlab_paper_figure_quadratic_rates",
                           REPO / "paper_figures" / "quadratic_rates.py")
    for path in figure.draw(args.results, run_id=records[0]["run_id"]):
      print(f"figure: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
