"""edge_of_stability: full-batch gradient descent trains at the edge of stability.

Cohen, Kaur, Li, Kolter, Talwalkar, "Gradient Descent on Neural Networks Typically
Occurs at the Edge of Stability", ICLR 2021 (arXiv:2103.00065), Figure 1. Full-batch
GD with step size η on a quadratic diverges once the curvature exceeds 2/η. On a
neural network trained with MSE, GD instead (i) *progressively sharpens*: the top
Hessian eigenvalue (the sharpness) rises while the loss falls, until it reaches 2/η;
(ii) then hovers at (or just above) 2/η, while (iii) the training loss keeps falling
over long timescales, non-monotonically. Here: a small tanh MLP on 1,000 Fashion-MNIST
images (MSE on one-hot targets), a few step sizes η, the sharpness measured every few
steps by Lanczos on Hessian-vector products (``optlab.diagnostics.hessian.
top_eigenvalues``), all inside one compiled program (``lax.scan`` over chunks of GD
steps); η is an argument, so every η and seed reuses it.

Usage:
  python experiments/edge_of_stability/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart]

Each (seed, η) run is saved as soon as it is done: a killed run, started again with the
same arguments, resumes where it stopped (--restart discards it instead).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, results  # noqa: E402
from optlab.diagnostics.hessian import top_eigenvalues  # noqa: E402
from optlab.models.activations import get_activation  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.tune.targets import steps_to_target  # noqa: E402

STUDY = "edge_of_stability"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"

config = load_module("optlab_edge_of_stability_config", HERE / "config.py")

Params = list[dict[str, jax.Array]]


class Workload(NamedTuple):
  """The training set (full batch) and what it is."""

  description: str
  x: np.ndarray  # (n, features) float32
  targets: np.ndarray  # (n, classes) one-hot float32
  labels: np.ndarray  # (n,) int32

  @property
  def sizes(self) -> tuple[int, int, int]:
    """(examples, input features, classes)."""
    return len(self.labels), int(self.x.shape[1]), int(self.targets.shape[1])


def pool_images(images: np.ndarray, pool: int) -> np.ndarray:
  """(n, h, w) images averaged over `pool` × `pool` blocks and flattened to (n, h·w/pool²)."""
  n, h, w = images.shape
  if pool < 1 or h % pool or w % pool:
    raise ValueError(f"pool_images: pool must be ≥ 1 and divide the image side {h}×{w}, "
                     f"got {pool}")
  blocks = images.reshape(n, h // pool, pool, w // pool, pool).mean(axis=(2, 4))
  return blocks.reshape(n, -1).astype(np.float32)


def load_workload(cfg) -> Workload:
  """`cfg.train_size` random Fashion-MNIST training images, pooled, centred per pixel and
  scaled by one global standard deviation; one-hot targets. Falls back to sklearn digits
  (8×8, not pooled) when Fashion-MNIST is not installed."""
  rng = np.random.default_rng(cfg.data_seed)
  pool = cfg.pool
  try:
    official = data.fashion_mnist(flatten=True).train
    images = np.asarray(official.x, np.float32).reshape(-1, 28, 28)
    labels = np.asarray(official.y, np.int32)
    name = "Fashion-MNIST"
  except FileNotFoundError as error:
    print(f"{STUDY}: Fashion-MNIST not found ({error}); falling back to sklearn digits "
          "(install it with `apt-get install dataset-fashion-mnist`)", file=sys.stderr)
    ds = data.digits()
    images, labels = np.asarray(ds.x, np.float32).reshape(-1, 8, 8), np.asarray(ds.y, np.int32)
    name, pool = "sklearn digits (Fashion-MNIST fallback)", 1
  if not 0 < cfg.train_size <= len(labels):
    raise ValueError(f"train_size must be in [1, {len(labels)}], got {cfg.train_size}")
  pick = np.sort(rng.permutation(len(labels))[: cfg.train_size])
  x = pool_images(images[pick], pool)
  x = (x - x.mean(axis=0)) / x.std()
  labels = labels[pick]
  targets = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels]
  side = images.shape[1] // pool
  description = (f"{name}, {len(labels)} training images (random, data seed {cfg.data_seed}), "
                 f"{side}×{side} after {pool}×{pool} average pooling, centred per pixel, "
                 "one global scale; one-hot targets")
  return Workload(description, x.astype(np.float32), targets, labels)


def init_mlp(seed: int, sizes: Sequence[int]) -> Params:
  """PyTorch's default ``nn.Linear`` initialization (the paper's code): every weight and
  bias ~ U(−1/√fan_in, 1/√fan_in), drawn by ``numpy.random.default_rng(seed)``.

  Returns ``[{"kernel": (in, out), "bias": (out,)}, ...]`` (float32). flax's LeCun-normal
  default starts ~5× sharper, above 2/η for every η here, so GD would begin in the
  unstable regime instead of sharpening into it.
  """
  rng = np.random.default_rng(seed)
  params = []
  for fan_in, fan_out in itertools.pairwise(sizes):
    bound = 1.0 / math.sqrt(fan_in)
    params.append({
        "kernel": jnp.asarray(rng.uniform(-bound, bound, (fan_in, fan_out)), jnp.float32),
        "bias": jnp.asarray(rng.uniform(-bound, bound, (fan_out,)), jnp.float32)})
  return params


def apply_mlp(params: Params, x: jax.Array, activation: Callable[[jax.Array], jax.Array]
              ) -> jax.Array:
  """The network ``optlab.models.MLP`` computes (Linear → activation, ..., Linear), written
  on a plain parameter list (one compiled program builds in ~half the time)."""
  for layer in params[:-1]:
    x = activation(x @ layer["kernel"] + layer["bias"][None, :])
  return x @ params[-1]["kernel"] + params[-1]["bias"][None, :]


def squared_loss(params: Params, x: jax.Array, targets: jax.Array,
                 activation: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """The paper's MSE: ½ · mean over examples of ‖f(x) − y‖² (summed over classes)."""
  residual = apply_mlp(params, x, activation) - targets
  return 0.5 * jnp.mean(jnp.sum(residual * residual, axis=-1))


def make_gd(cfg) -> Callable[..., dict[str, jax.Array]]:
  """The jitted run: ``(params, η, x, targets, key) -> {"loss", "sharpness", "params"}``.

  ``loss[t]`` = L(θ_t) for t = 0 … steps (θ_{t+1} = θ_t − η ∇L(θ_t), full batch);
  ``sharpness[j]`` = λ_max(∇²L(θ_{j·k})) for j = 0 … steps/k (k = sharpness_every), by
  ``lanczos_iterations`` Lanczos steps on Hessian-vector products
  (``optlab.diagnostics.hessian.top_eigenvalues``) from a fresh random start each time.
  One ``lax.scan`` over the measurements: measure, then k GD steps (a ``fori_loop``
  that writes the losses into a buffer; none after the last measurement), so the
  Lanczos and the gradient code each appear once in the program. η is traced: one
  compilation serves every step size and seed.
  """
  activation = get_activation(cfg.activation)
  k = cfg.sharpness_every
  if cfg.steps % k:
    raise ValueError(f"steps ({cfg.steps}) must be a multiple of sharpness_every ({k})")
  chunks = cfg.steps // k

  @jax.jit
  def run(params, eta, x, targets, key):
    def objective(p):
      return squared_loss(p, x, targets, activation)

    def measure_then_descend(carry, j):
      p, losses = carry
      eig = top_eigenvalues(objective, p, k=1, method="lanczos",
                            num_iterations=cfg.lanczos_iterations,
                            key=jax.random.fold_in(key, j))

      def step(i, c):
        p, losses = c
        loss, grads = jax.value_and_grad(objective)(p)
        p = jax.tree.map(lambda w, g: w - eta * g, p, grads)
        return p, losses.at[j * k + i].set(loss)

      p, losses = jax.lax.fori_loop(0, jnp.where(j < chunks, k, 0), step, (p, losses))
      return (p, losses), eig.eigenvalues[0]

    (p, losses), lams = jax.lax.scan(measure_then_descend,
                                     (params, jnp.zeros(cfg.steps, jnp.float32)),
                                     jnp.arange(chunks + 1))
    loss = jnp.concatenate([losses, objective(p)[None]])
    return {"loss": loss, "sharpness": lams, "params": p}

  return run


def summarize_run(loss: np.ndarray, sharp: np.ndarray, sharp_steps: np.ndarray, eta: float,
                  band: float) -> dict[str, Any]:
  """What one run says about the edge of stability.

  Args:
    loss: (steps + 1,) L(θ_t).
    sharp: the sharpness at `sharp_steps`.
    sharp_steps: the steps at which it was measured (0, k, 2k, …).
    eta: the step size; the stability threshold is 2/η.
    band: relative half-width of "at 2/η".

  Returns:
    ``first_step`` (first measured step with sharpness ≥ 2/η, or None), the sharpness at
    step 0 and its minimum before the crossing (progressive sharpening starts there), the
    fraction of measurements from the crossing on within ±`band` of 2/η and their mean
    and maximum ratio to 2/η (and the mean ratio over the last quarter of the steps after
    the crossing: does it stay at the edge?), the loss increases L(θ_{t+1}) > L(θ_t)
    before and after the crossing (and in the second half after it), the loss at the
    crossing and the mean of the last 10% of steps, and whether the run stayed finite.
  """
  threshold = 2.0 / eta
  loss, sharp = np.asarray(loss, np.float64), np.asarray(sharp, np.float64)
  finite = bool(np.all(np.isfinite(loss)) and np.all(np.isfinite(sharp)))
  first = steps_to_target(sharp, threshold, steps=sharp_steps, mode="max")
  increases = np.diff(loss) > 0  # increases[t]: L(θ_{t+1}) > L(θ_t)
  tail = loss[-max(1, len(loss) // 10):]
  out = {"eta": float(eta), "threshold": threshold, "finite": finite, "first_step": first,
         "initial_sharpness": float(sharp[0]), "final_sharpness": float(sharp[-1]),
         "max_sharpness": float(np.nanmax(sharp)), "initial_loss": float(loss[0]),
         "final_loss": float(loss[-1]), "tail_mean_loss": float(np.mean(tail)),
         "steps": len(loss) - 1}
  if first is None:
    out.update({"reached": False, "min_sharpness_before": float(np.nanmin(sharp)),
                "loss_increases_before": int(increases.sum()), "loss_increases_after": 0,
                "steps_after": 0, "fraction_within_band": None, "mean_ratio_after": None,
                "max_ratio_after": None, "late_mean_ratio": None,
                "loss_increases_second_half": 0, "loss_at_first": None,
                "loss_falls_after": None})
    return out
  after = sharp_steps >= first
  ratio = sharp[after] / threshold
  late = sharp_steps >= first + 0.75 * (len(loss) - 1 - first)
  middle = first + (len(loss) - 1 - first) // 2
  out.update({
      "reached": True,
      "min_sharpness_before": float(np.nanmin(sharp[: int(np.argmax(after)) + 1])),
      "fraction_within_band": float(np.mean(np.abs(ratio - 1.0) <= band)),
      "mean_ratio_after": float(np.mean(ratio)),
      "max_ratio_after": float(np.max(ratio)),
      "late_mean_ratio": float(np.mean(sharp[late] / threshold)),
      "loss_increases_second_half": int(increases[middle:].sum()),
      "loss_increases_before": int(increases[:first].sum()),
      "loss_increases_after": int(increases[first:].sum()),
      "steps_after": int(len(increases) - first),
      "loss_at_first": float(loss[first]),
      "loss_falls_after": bool(np.mean(tail) < loss[first]),
  })
  return out


def summarize(runs: Sequence[dict], band: float) -> dict[str, Any]:
  """The claims over every (seed, η) run that reached 2/η.

  ``held``: every such run hovers (≥ 75% of its measurements from the crossing on within
  ±`band` of 2/η), its loss rises on some steps after the crossing (non-monotone) yet its
  last 10% average lies below the loss at the crossing; and at least two step sizes
  reached 2/η, all runs stayed finite.
  """
  reached = [r for r in runs if r["reached"]]
  etas = sorted({r["eta"] for r in reached})
  out = {"runs": len(runs), "reached": len(reached), "step_sizes_reached": etas,
         "band": band, "all_finite": all(r["finite"] for r in runs)}
  if reached:
    out.update({
        "min_fraction_within_band": min(r["fraction_within_band"] for r in reached),
        "mean_fraction_within_band": float(np.mean([r["fraction_within_band"]
                                                    for r in reached])),
        "mean_ratio_after": float(np.mean([r["mean_ratio_after"] for r in reached])),
        "loss_increases_after": int(sum(r["loss_increases_after"] for r in reached)),
        "steps_after": int(sum(r["steps_after"] for r in reached)),
        "loss_increases_before": int(sum(r["loss_increases_before"] for r in reached)),
        "all_nonmonotone": all(r["loss_increases_after"] > 0 for r in reached),
        "all_loss_falls": all(r["loss_falls_after"] for r in reached)})
  out["held"] = bool(
      len(etas) >= 2 and out["all_finite"]
      and all(r["fraction_within_band"] >= 0.75 for r in reached)
      and out.get("all_nonmonotone", False) and out.get("all_loss_falls", False))
  return out


def _rounded(values: Any, digits: int = 9) -> list:
  """Floats with `digits` significant digits: 9 round-trip float32 exactly, so the loss
  increases counted from the saved curves are the ones counted here; NaN stays NaN."""
  return [float(f"{v:.{digits}g}") for v in np.asarray(values, np.float64).ravel()]


def gd_run(compiled: Callable, params: Params, eta: float, x: jax.Array, targets: jax.Array,
           key: jax.Array, sharp_steps: np.ndarray, band: float, seed: int) -> dict[str, Any]:
  """One (seed, η) run of the compiled program: its summary, loss and sharpness curves
  (``run``) and its seconds (``train_s``). Independent of the other runs."""
  tick = time.perf_counter()
  out = jax.block_until_ready(compiled(params, jnp.float32(eta), x, targets, key))
  train_s = time.perf_counter() - tick
  loss, sharp = np.asarray(out["loss"]), np.asarray(out["sharpness"])
  entry = {"seed": seed, **summarize_run(loss, sharp, sharp_steps, eta, band)}
  entry["loss"] = _rounded(loss)
  entry["sharpness"] = _rounded(sharp)
  return {"run": entry, "train_s": train_s}


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every seed × step size; appends one record and returns it (in a list).

  Each (seed, η) run is saved as soon as it is done (optlab.study_progress): a killed run
  started again with the same config and seed goes on from there, with the same run_id
  (`restart` discards it instead).
  """
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  workload = load_workload(cfg)
  n, features, classes = workload.sizes
  sizes = (features, *cfg.hidden_sizes, classes)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  x, targets = jnp.asarray(workload.x), jnp.asarray(workload.targets)
  key = jax.random.key(seed)
  gd = make_gd(cfg)
  compiled, compile_s = None, 0.0  # compiled once, if a run is still to do
  sharp_steps = np.arange(0, cfg.steps + 1, cfg.sharpness_every)
  runs, train_s = [], 0.0
  for s in seeds:
    params = init_mlp(s, sizes)
    for eta in cfg.step_sizes:
      unit = f"seed={s}/eta={eta!r}"
      if unit not in progress and compiled is None:
        start = time.perf_counter()
        compiled = gd.lower(params, jnp.float32(eta), x, targets, key).compile()
        compile_s = time.perf_counter() - start
      done = progress.unit(unit, gd_run, compiled, params, eta, x, targets, key, sharp_steps,
                           cfg.band, s)
      runs.append(done["run"])
      train_s += done["train_s"]
  num_params = sum(a * b + b for a, b in itertools.pairwise(sizes))
  record = {
      "study": STUDY, "run_id": progress.run_id, "config": cfg._asdict(),
      "provenance": results.provenance(), "dataset_description": workload.description,
      "train_size": n,
      "model": (f"MLP {'-'.join(map(str, sizes))}, {cfg.activation}, {num_params:,} weights,"
                " PyTorch default init"),
      "loss_name": "½·mean‖f(x) − y‖² (MSE on one-hot targets)",
      "optimizer": "full-batch gradient descent θ ← θ − η∇L(θ)",
      "seeds": seeds, "step_sizes": list(cfg.step_sizes),
      "sharpness_steps": sharp_steps.tolist(), "runs": runs,
      "summary": summarize(runs, cfg.band),
      "timing": {"compile_s": compile_s, "train_s": train_s,
                 "gd_steps": cfg.steps * len(runs)},
  }
  records = [results.to_jsonable(record)]
  progress.finish(records)
  return records


def table(records: list[dict]) -> str:
  """The runs' numbers, as text."""
  (r,) = records
  s = r["summary"]
  lines = [f"{r['dataset_description']}; {r['model']}; {r['loss_name']}; {r['optimizer']}, "
           f"{r['config']['steps']} steps; sharpness every {r['config']['sharpness_every']} steps "
           f"({r['config']['lanczos_iterations']} Lanczos steps)",
           f"  {'seed':>4}{'η':>7}{'2/η':>7}{'λ(0)':>7}{'λ min':>7}{'reaches':>9}"
           f"{'within':>8}{'λ/(2/η)':>9}{'late':>7}{'↑ before':>10}{'↑ after':>15}"
           f"{'↑ 2nd half':>11}{'L at 2/η':>10}{'L end':>9}"]
  def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)

  for run_ in r["runs"]:
    reached = run_["reached"]
    within = fmt(None if not reached or run_["fraction_within_band"] is None
                 else 100 * run_["fraction_within_band"], ".0f") + ("%" if reached else "")
    after = f"{run_['loss_increases_after']}/{run_['steps_after']}" if reached else "-"
    lines.append(f"  {run_['seed']:>4}{run_['eta']:>7g}{run_['threshold']:>7.2f}"
                 f"{fmt(run_['initial_sharpness'], '.2f'):>7}"
                 f"{fmt(run_['min_sharpness_before'], '.2f'):>7}"
                 f"{(run_['first_step'] if reached else 'never'):>9}{within:>8}"
                 f"{fmt(run_['mean_ratio_after'], '.3f'):>9}"
                 f"{fmt(run_['late_mean_ratio'], '.3f'):>7}"
                 f"{run_['loss_increases_before']:>10}{after:>15}"
                 f"{run_['loss_increases_second_half']:>11}"
                 f"{fmt(run_['loss_at_first'], '.4f'):>10}{fmt(run_['tail_mean_loss'], '.4f'):>9}"
                 + ("" if run_["finite"] else "  (diverged)"))
  lines.append("  (λ min: lowest sharpness before the crossing; within: measurements after it "
               f"within ±{100 * s['band']:.0f}% of 2/η; λ/(2/η): their mean; late: the mean over "
               "the last quarter of the steps after it; ↑: loss increases L(θ_t+1) > L(θ_t))")
  if s["reached"]:
    lines.append(
        f"  {s['reached']} of {s['runs']} runs reach 2/η; from then on the sharpness is within "
        f"±{100 * s['band']:.0f}% of 2/η at {100 * s['mean_fraction_within_band']:.1f}% of the "
        f"measurements (worst run {100 * s['min_fraction_within_band']:.1f}%), on average "
        f"{s['mean_ratio_after']:.3f} × 2/η; the loss rises on {s['loss_increases_after']} of "
        f"{s['steps_after']} steps after the crossing ({s['loss_increases_before']} before) "
        f"and still falls overall in every run: {s['all_loss_falls']}. Claim held: {s['held']}")
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
        f"~{timing['compile_s']:.1f} s compiling, {timing['train_s']:.1f} s for "
        f"{timing['gd_steps']:,} GD steps)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
