"""critical_batch_size: the gradient noise scale predicts the critical batch size.

McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training",
arXiv:1812.06162 (2018). With each batch size B given its own tuned learning rate,
the steps S and examples E = B·S that SGD needs to reach a given loss trade off as
(S/S_min − 1)(E/E_min − 1) = 1, i.e. S = S_min (1 + B_crit/B): perfect scaling
(S ∝ 1/B) well below the critical batch size B_crit = E_min/S_min, no gain well above
it. The *simple noise scale* B_simple = tr Σ / |G|² (per-example gradient covariance
over the squared true gradient), measured during a single training run, predicts
B_crit (within an order of magnitude in their experiments), and both grow as the
loss falls.

Here: an MLP on sklearn digits, plain SGD at batch sizes 8 … 512, each trained at every
learning rate of a small grid and several seeds (one compiled program, ``vmap``ped over
rates and seeds, serves every batch size), the training loss evaluated on the whole set
at geometrically spaced steps; the steps to a few training-loss targets
(``optlab.tune.targets.steps_to_target``) are fitted with
``optlab.diagnostics.noise.fit_critical_batch_size``, and B_simple is measured exactly
along every batch size's tuned run (``per_example_noise_scale``; in full mode also the
paper's two-batch ``gradient_noise_scale`` along one of them).

Usage:
  python experiments/critical_batch_size/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart]

Each batch size (its runs and the noise scale along its tuned run) is saved as soon as it
is done: a killed run, started again with the same arguments, resumes where it stopped
(--restart discards it instead).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, results  # noqa: E402
from optlab.diagnostics.noise import (  # noqa: E402
    fit_critical_batch_size,
    gradient_noise_scale,
    per_example_noise_scale,
)
from optlab.metrics.losses import integer_label_cross_entropy  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.tune.targets import steps_to_target  # noqa: E402

STUDY = "critical_batch_size"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"

config = load_module("optlab_critical_batch_size_config", HERE / "config.py")

Params = list[dict[str, jax.Array]]


class Workload(NamedTuple):
  """The training set and what it is."""

  description: str
  x: np.ndarray  # (n, features) float32
  y: np.ndarray  # (n,) int32
  num_classes: int


def load_workload(cfg) -> Workload:
  """The whole training set of `cfg.dataset`, standardized per feature."""
  if cfg.dataset == "digits":
    ds = data.digits(flatten=True)
    name = "sklearn digits (all 1,797 8×8 images)"
  elif cfg.dataset == "mnist1d":
    ds = data.mnist1d(seed=42).train
    name = "MNIST-1D (the reference 4,000 training signals)"
  else:
    raise ValueError(f"dataset must be 'digits' or 'mnist1d', got {cfg.dataset!r}")
  x = np.asarray(ds.x, np.float32)
  x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
  y = np.asarray(ds.y, np.int32)
  return Workload(f"{name}, standardized per feature", x.astype(np.float32), y,
                  int(y.max()) + 1)


def init_params(sizes: Sequence[int], seed: int) -> Params:
  """``optlab.models.MLP``'s initialization (flax's default), drawn with NumPy: kernels
  LeCun normal (normal truncated at ±2σ, rescaled to variance 1/fan_in), zero biases.

  Returns ``[{"kernel": (in, out), "bias": (out,)}, ...]`` for the widths `sizes`. (NumPy
  because building the flax model eagerly compiles a dozen tiny programs, ~1.7 s here.)
  """
  rng = np.random.default_rng(seed)
  params = []
  for fan_in, fan_out in itertools.pairwise(sizes):
    z = rng.standard_normal((fan_in, fan_out))
    while np.any(bad := np.abs(z) > 2):
      z[bad] = rng.standard_normal(int(bad.sum()))
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # the truncated normal's std is 0.88
    params.append({"kernel": jnp.asarray(z * std, jnp.float32),
                   "bias": jnp.zeros((fan_out,), jnp.float32)})
  return params


def apply_mlp(params: Params, x: jax.Array) -> jax.Array:
  """The forward pass of ``optlab.models.MLP`` with ReLU (no dropout or normalization),
  on a plain parameter list (the program compiles ~2× faster than through ``nnx.merge``)."""
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["kernel"] + layer["bias"][None, :])
  return x @ params[-1]["kernel"] + params[-1]["bias"][None, :]


def cross_entropy(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of the MLP on a batch (the loss SGD minimizes)."""
  return jnp.mean(integer_label_cross_entropy(apply_mlp(params, x), y))


def step_budget(cfg, batch_size: int) -> int:
  """SGD steps at `batch_size`: `examples_budget`/B, at least `min_steps`."""
  return max(cfg.min_steps, math.ceil(cfg.examples_budget / batch_size))


def eval_steps(total: int, points: int) -> np.ndarray:
  """≤ `points` distinct steps in [1, total], geometrically spaced, ending at `total`."""
  return np.unique(np.round(np.geomspace(1, total, points)).astype(np.int64))


def segments_for(evals: np.ndarray, points: int) -> np.ndarray:
  """The steps between consecutive evaluations, padded with empty segments to `points`."""
  if len(evals) > points:
    raise ValueError(f"{len(evals)} evaluations do not fit in {points} segments")
  lengths = np.diff(np.concatenate([[0], evals]))
  return np.concatenate([lengths, np.zeros(points - len(lengths), np.int64)]).astype(np.int32)


def make_sgd(unit_batch: int, keep_params: bool):
  """The jitted sweep: ``(params, lrs, keys, x, y, segments, micro) -> {"loss"[, "params"]}``.

  One program for every batch size: a step of batch size B = micro × `unit_batch` sums
  the gradients of `micro` batches of `unit_batch` examples, each drawn with replacement
  (so the batch is B i.i.d. draws, as a batch of B drawn at once), and applies
  θ ← θ − α · (their mean). `params` are stacked over seeds, `keys` are the seeds' batch
  keys (the same batches for every learning rate), `lrs` the learning rates; runs are
  ``vmap``ped over (learning rate, seed). A ``lax.scan`` over `segments` (steps between
  evaluations, a ``fori_loop`` each) records the whole-set loss after each segment into
  ``loss[lr, seed, i]`` (and the parameters there, if `keep_params`). `segments` and
  `micro` are arguments, so the program compiles once for all batch sizes.
  """

  def one_run(params, lr, key, x, y, segments, micro):
    n = x.shape[0]

    def segment(carry, length):
      def step(_, c):
        p, t = c
        step_key = jax.random.fold_in(key, t)

        def accumulate(j, total):
          idx = jax.random.randint(jax.random.fold_in(step_key, j), (unit_batch,), 0, n)
          return jax.tree.map(jnp.add, total, jax.grad(cross_entropy)(p, x[idx], y[idx]))

        total = jax.lax.fori_loop(0, micro, accumulate, jax.tree.map(jnp.zeros_like, p))
        return jax.tree.map(lambda w, g: w - lr * g / micro, p, total), t + 1

      p, t = jax.lax.fori_loop(0, length, step, carry)
      out = {"loss": cross_entropy(p, x, y)}
      if keep_params:
        out["params"] = p
      return (p, t), out

    _, out = jax.lax.scan(segment, (params, jnp.zeros([], jnp.int32)), segments)
    return out

  over_seeds = jax.vmap(one_run, in_axes=(0, None, 0, None, None, None, None))
  return jax.jit(jax.vmap(over_seeds, in_axes=(None, 0, None, None, None, None, None)))


def steps_to_reach(curve: Sequence[float], evals: Sequence[int], target: float) -> float | None:
  """Steps until a loss curve first reaches `target` (``steps_to_target``'s evaluation),
  refined by interpolating log-loss linearly between that evaluation and the one before.
  None if never reached (NaN never reaches)."""
  curve, evals = np.asarray(curve, np.float64), np.asarray(evals, np.float64)
  hit = steps_to_target(curve, target, steps=evals.astype(np.int64))
  if hit is None:
    return None
  k = int(np.searchsorted(evals, hit))
  if k == 0 or not np.isfinite(curve[k - 1]) or curve[k - 1] <= curve[k]:
    return float(evals[k])
  frac = (math.log(curve[k - 1]) - math.log(target)) / (math.log(curve[k - 1]) - math.log(curve[k]))
  return float(evals[k - 1] + frac * (evals[k] - evals[k - 1]))


def tune(batch_sizes: Sequence[int], learning_rates: Sequence[float], losses: Sequence[np.ndarray],
         evals: Sequence[np.ndarray], target: float) -> dict[str, Any]:
  """Steps-to-target per batch size at its best learning rate.

  Args:
    batch_sizes, learning_rates: the grids.
    losses: per batch size, the (lr, seed, evaluation) whole-set losses.
    evals: per batch size, the evaluation steps.
    target: the training loss to reach.

  Returns:
    ``steps`` (B, lr) mean over seeds (None where a seed never reached the target),
    and per batch size the best learning rate (fewest mean steps), its steps (None if
    no rate reached the target), the steps' seed-to-seed spread, and whether the best
    rate sits at an end of the grid (the tuning may then be incomplete).
  """
  table, best = [], []
  for b, curves, ev in zip(batch_sizes, losses, evals, strict=True):
    row, spread = [], []
    for per_seed in curves:
      hits = [steps_to_reach(c, ev, target) for c in per_seed]
      ok = all(h is not None for h in hits)
      row.append(float(np.mean(hits)) if ok else None)
      spread.append(float(np.std(hits) / math.sqrt(len(hits))) if ok and len(hits) > 1 else 0.0)
    table.append(row)
    reached = [i for i, v in enumerate(row) if v is not None]
    if not reached:
      best.append({"batch_size": b, "steps": None, "learning_rate": None, "at_grid_edge": None,
                   "steps_standard_error": None, "examples": None})
      continue
    i = min(reached, key=lambda j: row[j])
    best.append({"batch_size": b, "steps": row[i], "learning_rate": float(learning_rates[i]),
                 "at_grid_edge": i in (0, len(learning_rates) - 1),
                 "steps_standard_error": spread[i], "examples": row[i] * b})
  return {"target": target, "steps": table, "best": best}


def fit(best: Sequence[dict]) -> dict[str, Any]:
  """``fit_critical_batch_size`` (relative errors) on the batch sizes that reached the target."""
  points = [(r["batch_size"], r["steps"]) for r in best if r["steps"] is not None]
  if len(points) < 3:
    return {"ok": False, "message": f"only {len(points)} batch sizes reached the target"}
  try:
    crit = fit_critical_batch_size([p[0] for p in points], [p[1] for p in points], relative=True)
  except ValueError as error:
    return {"ok": False, "message": str(error)}
  b, s = np.array(points, np.float64).T
  predicted = crit.s_min * (1 + crit.b_crit / b)
  return {"ok": True, "s_min": crit.s_min, "e_min": crit.e_min, "b_crit": crit.b_crit,
          "max_relative_residual": float(np.max(np.abs(s / predicted - 1))),
          "batch_sizes": b.tolist()}


def noise_along(cfg, workload: Workload, checkpoints: Sequence[Params], steps: np.ndarray,
                losses: np.ndarray, key: jax.Array | None) -> dict[str, Any]:
  """B_simple at each checkpoint of one run: exact, from all per-example gradients
  (``per_example_noise_scale``), and, when `key` is given, with the paper's two-batch
  estimator (``gradient_noise_scale``, App. A.1) as a check."""
  x, y = jnp.asarray(workload.x), jnp.asarray(workload.y)
  exact, estimate, trace, norm = [], [], [], []
  big = min(cfg.noise_big_batch, len(workload.y))
  for i, params in enumerate(checkpoints):
    scale = per_example_noise_scale(cross_entropy, params, x, y)
    exact.append(float(scale.simple))
    trace.append(float(scale.trace_covariance))
    norm.append(float(scale.gradient_norm_sq))
    if key is not None:
      two = gradient_noise_scale(cross_entropy, params, x, y, small_batch=cfg.noise_small_batch,
                                 big_batch=big, num_estimates=cfg.noise_estimates,
                                 key=jax.random.fold_in(key, i))
      estimate.append(float(two.simple))
  out = {"steps": np.asarray(steps).tolist(), "loss": np.asarray(losses).tolist(),
         "b_simple": exact, "trace_covariance": trace, "gradient_norm_sq": norm}
  if key is not None:
    out["b_simple_two_batch"] = estimate
  return out


def noise_at(noise: dict, at_step: float) -> float:
  """B_simple of one run interpolated (log-log in the step) at `at_step`."""
  steps = np.log(np.asarray(noise["steps"], np.float64))
  values = np.log(np.asarray(noise["b_simple"], np.float64))
  return float(np.exp(np.interp(math.log(at_step), steps, values)))


def summarize(per_target: Sequence[dict]) -> dict[str, Any]:
  """B_crit against B_simple for every target; ``held``: every fit valid and every ratio
  B_crit / B_simple within an order of magnitude (0.1 … 10), as the paper finds."""
  rows = []
  for t in per_target:
    f = t["fit"]
    ratio = (f["b_crit"] / t["b_simple_at_target"]
             if f["ok"] and t["b_simple_at_target"] else None)
    rows.append({"target": t["target"], "b_crit": f.get("b_crit"), "s_min": f.get("s_min"),
                 "e_min": f.get("e_min"), "b_simple": t["b_simple_at_target"], "ratio": ratio,
                 "within_order_of_magnitude": ratio is not None and 0.1 <= ratio <= 10})
  ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
  crit = [r["b_crit"] for r in rows if r["b_crit"] is not None]
  simple = [r["b_simple"] for r in rows if r["b_simple"] is not None]
  return {"targets": rows,
          "ratio_range": [min(ratios), max(ratios)] if ratios else None,
          "b_crit_grows_as_loss_falls": len(crit) == len(rows) and bool(np.all(np.diff(crit) > 0)),
          "b_simple_grows_as_loss_falls": (len(simple) == len(rows)
                                           and bool(np.all(np.diff(simple) > 0))),
          "held": bool(rows and all(r["within_order_of_magnitude"] for r in rows))}


def _rounded(values: Any, digits: int = 5) -> Any:
  """Nested floats with `digits` significant digits (None for NaN/inf)."""
  array = np.asarray(values, np.float64)
  flat = [float(f"{v:.{digits}g}") if np.isfinite(v) else None for v in array.ravel()]
  return np.array(flat, dtype=object).reshape(array.shape).tolist()


def batch_size_unit(cfg, workload: Workload, compiled, args: tuple, batch_size: int,
                    evals: np.ndarray, key: jax.Array | None) -> dict[str, Any]:
  """One batch size: every (learning rate, seed) run of `compiled`, and B_simple along its
  tuned run (seed 0, at the rate tuned for the lowest target it reached).

  `args` are ``(params, lrs, keys, x, y)``. Returns the (lr, seed, evaluation) ``losses``,
  the ``timing`` of the runs, the ``noise`` along the tuned run (with its ``curve``) and
  ``noise_s``. Independent of the other batch sizes (the tuning of one batch size looks
  at its own runs only).
  """
  unit = min(cfg.batch_sizes)
  tick = time.perf_counter()
  out = jax.block_until_ready(compiled(
      *args, jnp.asarray(segments_for(evals, cfg.eval_points)), jnp.int32(batch_size // unit)))
  timing = {"batch_size": batch_size, "train_s": time.perf_counter() - tick,
            "steps": int(evals[-1])}
  losses = np.asarray(out["loss"], np.float64)[:, :, : len(evals)]
  # Seed 0's parameters at each evaluation, (lr, evaluation, ...), in NumPy (slicing there
  # compiles nothing).
  count = len(evals)
  kept = jax.tree.map(lambda leaf: np.asarray(leaf)[:, 0, :count], out["params"])
  start = time.perf_counter()
  tuned = [best["learning_rate"] for t in cfg.targets
           for best in tune([batch_size], cfg.learning_rates, [losses], [evals], t)["best"]
           if best["steps"] is not None]
  lr_index = (cfg.learning_rates.index(tuned[-1]) if tuned
              else int(np.nanargmin(np.nan_to_num(losses[:, 0, -1], nan=np.inf))))
  picks = np.arange(len(evals) - 1, -1, -cfg.noise_every)[::-1]
  checkpoints = [jax.tree.map(lambda leaf, k=k: leaf[lr_index, k], kept) for k in picks]
  noise = {"batch_size": batch_size, "learning_rate": float(cfg.learning_rates[lr_index]),
           **noise_along(cfg, workload, checkpoints, evals[picks], losses[lr_index, 0, picks],
                         key)}
  noise["curve"] = losses[lr_index, 0]
  return {"losses": losses, "timing": timing, "noise": noise,
          "noise_s": time.perf_counter() - start}


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every batch size × learning rate × seed; appends one record and returns it.

  Each batch size is saved as soon as it is done (optlab.study_progress): a killed run
  started again with the same config and seed goes on from there, with the same run_id
  (`restart` discards it instead).
  """
  if cfg.reference_batch not in cfg.batch_sizes:
    raise ValueError(f"reference_batch {cfg.reference_batch} must be one of batch_sizes "
                     f"{cfg.batch_sizes}")
  if len(cfg.targets) < 1 or any(np.diff(cfg.targets) >= 0):
    raise ValueError(f"targets must be training losses in decreasing order, got {cfg.targets}")
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  workload = load_workload(cfg)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  x, y = jnp.asarray(workload.x), jnp.asarray(workload.y)
  sizes = (workload.x.shape[1], *cfg.hidden_sizes, workload.num_classes)
  params = jax.tree.map(lambda *leaves: jnp.asarray(np.stack(leaves)),
                        *[init_params(sizes, s) for s in seeds])
  keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
  keys = jax.random.wrap_key_data(keys)
  lrs = jnp.asarray(cfg.learning_rates, jnp.float32)
  unit = min(cfg.batch_sizes)
  if any(b % unit for b in cfg.batch_sizes):
    raise ValueError(f"batch_sizes {cfg.batch_sizes} must be multiples of the smallest, {unit}")
  evals = [eval_steps(step_budget(cfg, b), cfg.eval_points) for b in cfg.batch_sizes]
  compiled, compile_s = None, 0.0  # compiled once, if a batch size is still to run
  losses, timing, along, noise_s = [], [], [], 0.0
  for b, ev in zip(cfg.batch_sizes, evals, strict=True):
    name = f"batch_size={b}"
    if name not in progress and compiled is None:
      start = time.perf_counter()
      sgd = make_sgd(unit, keep_params=True)  # keeps the parameters at every evaluation
      arguments = (params, lrs, keys, x, y,
                   jnp.asarray(segments_for(evals[0], cfg.eval_points)), jnp.int32(1))
      compiled = sgd.lower(*arguments).compile()
      compile_s = time.perf_counter() - start
    # B_simple along the batch size's tuned run at every `noise_every`-th evaluation; the
    # two-batch check along the reference batch size's.
    key = (jax.random.key(seed) if b == cfg.reference_batch and cfg.noise_estimates > 0
           else None)
    done = progress.unit(name, batch_size_unit, cfg, workload, compiled,
                         (params, lrs, keys, x, y), b, ev, key)
    losses.append(done["losses"])
    timing.append(done["timing"])
    along.append(done["noise"])
    noise_s += done["noise_s"]
  per_target = [tune(cfg.batch_sizes, cfg.learning_rates, losses, evals, t) for t in cfg.targets]
  for t in per_target:
    t["fit"] = fit(t["best"])
    at_target = []
    for i, run_noise in enumerate(along):
      reached = steps_to_reach(run_noise["curve"], evals[i], t["target"])
      at_target.append(noise_at(run_noise, reached) if reached is not None else None)
    t["b_simple_per_batch"] = at_target
    values = [v for v in at_target if v is not None]
    t["b_simple_at_target"] = float(np.median(values)) if values else None
    t["b_simple_range"] = [min(values), max(values)] if values else None
  for run_noise in along:
    del run_noise["curve"]
  num_params = sum(leaf.size // len(seeds) for leaf in jax.tree.leaves(params))
  widths = "-".join(map(str, sizes))
  record = {
      "study": STUDY, "run_id": progress.run_id, "config": cfg._asdict(),
      "provenance": results.provenance(), "dataset_description": workload.description,
      "train_size": len(workload.y),
      "model": f"MLP {widths}, ReLU, {num_params:,} weights",
      "optimizer": "plain SGD θ ← θ − α∇L_B(θ), batches drawn with replacement",
      "seeds": seeds, "batch_sizes": list(cfg.batch_sizes),
      "learning_rates": list(cfg.learning_rates),
      "eval_steps": [ev.tolist() for ev in evals],
      "losses": [_rounded(v) for v in losses],  # per B: (lr, seed, evaluation)
      "per_target": per_target,
      "noise": along,  # per batch size: B_simple along its tuned run (seed 0)
      "reference_batch": cfg.reference_batch,
      "summary": summarize(per_target),
      "timing": {"per_batch": timing, "compile_s": compile_s,
                 "train_s": sum(t["train_s"] for t in timing), "noise_s": noise_s},
  }
  records = [results.to_jsonable(record)]
  progress.finish(records)
  return records


def table(records: list[dict]) -> str:
  """The runs' numbers, as text."""
  (r,) = records
  lines = [f"{r['dataset_description']}; {r['model']}; {r['optimizer']}; {len(r['seeds'])} "
           f"seed(s); learning rates {r['learning_rates']}"]
  for t in r["per_target"]:
    lines.append(f"target: training loss ≤ {t['target']:g}")
    lines.append(f"  {'B':>6}{'best α':>9}{'steps S':>10}{'± s.e.':>8}{'examples E':>12}")
    for b in t["best"]:
      if b["steps"] is None:
        lines.append(f"  {b['batch_size']:>6}{'-':>9}{'never':>10}")
        continue
      edge = " (grid edge)" if b["at_grid_edge"] else ""
      lines.append(f"  {b['batch_size']:>6}{b['learning_rate']:>9g}{b['steps']:>10.1f}"
                   f"{b['steps_standard_error']:>8.1f}{b['examples']:>12.0f}{edge}")
    f = t["fit"]
    if f["ok"]:
      lines.append(f"  fit S = S_min(1 + B_crit/B): S_min = {f['s_min']:.1f}, E_min = "
                   f"{f['e_min']:.0f}, B_crit = {f['b_crit']:.1f} (worst residual "
                   f"{100 * f['max_relative_residual']:.0f}%)")
    else:
      lines.append(f"  no fit: {f['message']}")
    simple = t["b_simple_at_target"]
    if simple is not None:
      low, high = t["b_simple_range"]
      lines.append(f"  B_simple where the tuned runs reach it: median {simple:.1f} over the batch "
                   f"sizes (range {low:.1f}-{high:.1f})")
  s = r["summary"]
  for row in s["targets"]:
    if row["ratio"] is not None:
      lines.append(f"loss ≤ {row['target']:g}: B_crit {row['b_crit']:.1f} vs B_simple "
                   f"{row['b_simple']:.1f} (ratio {row['ratio']:.2f})")
  lines.append(f"B_crit grows as the target falls: {s['b_crit_grows_as_loss_falls']}; B_simple "
               f"too: {s['b_simple_grows_as_loss_falls']}; every ratio within 0.1-10: "
               f"{s['held']}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed, restart=args.restart)
  elapsed = time.perf_counter() - start
  print(table(records))
  timing = records[0]["timing"]
  print(f"\n1 record appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, of which "
        f"~{timing['compile_s']:.1f} s compiling, {timing['train_s']:.1f} s training, "
        f"{timing['noise_s']:.1f} s measuring B_simple)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
