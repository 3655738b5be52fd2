"""Tests of the adam_networks study: the runner end to end on tiny data, the Adam
update without bias correction against the rule written out by hand, and the pieces
the vectorized comparison relies on."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim, results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load_runner():
  return load_module("adam_networks_run_under_test",
                     REPO / "experiments" / "adam_networks" / "run.py")


RUN = _load_runner()

# One epoch of a tiny MLP, two optimizers (a two-point grid and a single α), a 2×2×2
# ablation grid of 4 steps: three compiled programs, a few seconds in all.
TINY = RUN.config.QUICK._replace(
  name="tiny",
  networks=("mlp",),
  mlp_hidden=(8,),
  train_size=256,
  val_size=128,
  test_size=128,
  batch_size=64,
  mlp_epochs=1,
  optimizers=(("sgd", (0.1, 0.3)), ("adam", (1e-3,))),
  bc_hidden=(8,),
  bc_train_size=256,
  bc_batch_size=32,
  bc_steps=4,
  bc_record_every=2,
  bc_eval_size=128,
  bc_b1s=(0.0, 0.9),
  bc_b2s=(0.99, 0.9999),
  bc_learning_rates=(1e-3, 1e-2),
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("adam_networks")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    argv = ["--quick", "--seeds", "2", "--seed", "3", "--results", str(path), "--figure",
            str(figure)]
    assert RUN.main(argv) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  comparison = [r for r in records if r["kind"] == "comparison"]
  ablation = [r for r in records if r["kind"] == "bias_correction"]
  assert len(comparison) == 2 * 2  # optimizers × seeds
  assert len(ablation) == 2 * 2 * 2 * 2  # β1 × β2 × α × corrected
  assert len({r["run_id"] for r in records}) == 1
  assert sorted({r["seed"] for r in comparison}) == [3, 4]
  for r in records:
    json.dumps(r, allow_nan=False)  # strict JSON
    assert r["study"] == "adam_networks" and r["config"]["name"] == "tiny"
    assert r["provenance"]["versions"]["jax"] == jax.__version__
  for r in comparison:
    assert len(r["curve"]["train_loss"]) == r["epochs"] * r["steps_per_epoch"] == 4
    assert r["selection"]["learning_rate"] == r["hyperparameters"]["learning_rate"]
    assert np.isfinite(r["final_train_loss"]) and 0 <= r["test_accuracy"] <= 1
  for r in ablation:
    assert r["curve"]["steps"] == [0, 2, 4]
    assert r["curve"]["train_loss"][0] == pytest.approx(ablation[0]["curve"]["train_loss"][0])
  assert figure.stat().st_size > 10_000


def test_tuning_seed_rerun_matches_its_grid_run(tiny_run):
  # Phase 2 reruns the chosen α on the other seeds; the tuning seed's record is the
  # grid run itself, and the rerun's seed differs, so their curves differ.
  records = [r for r in results.read_records(tiny_run[0]) if r["kind"] == "comparison"]
  for optimizer in ("sgd", "adam"):
    a, b = sorted((r for r in records if r["optimizer"] == optimizer), key=lambda r: r["seed"])
    assert a["hyperparameters"] == b["hyperparameters"]
    assert a["curve"]["train_loss"] != b["curve"]["train_loss"]
    index = a["selection"]["index"]
    assert a["val_loss"] == pytest.approx(a["selection"]["val_loss"][index])


def _grads(steps: int, seed: int = 0) -> list[dict[str, jax.Array]]:
  keys = jax.random.split(jax.random.key(seed), steps)
  return [{"w": jax.random.normal(k, (3, 2)), "b": 0.1 * jax.random.normal(k, (2,))}
          for k in keys]


def test_uncorrected_adam_equals_the_rule_by_hand():
  b1, b2, eps = 0.9, 0.999, 1e-8
  tx = RUN.scale_by_adam_bias(b1, b2, eps, bias_correction=False)
  params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros((2,))}
  state = tx.init(params)
  m = jax.tree.map(np.zeros_like, params)
  v = jax.tree.map(np.zeros_like, params)
  for g in _grads(4):
    update, state = tx.update(g, state, params)
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * np.asarray(g), m, g)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * np.asarray(g) ** 2, v, g)
    expected = jax.tree.map(lambda m, v: m / (np.sqrt(v) + eps), m, v)
    for key in params:
      np.testing.assert_allclose(update[key], expected[key], rtol=1e-5)


def test_corrected_matches_optax_and_zero_betas_make_the_correction_vanish():
  params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros((2,))}
  pairs = [(RUN.scale_by_adam_bias(0.9, 0.999, 1e-8, True), optax.scale_by_adam(0.9, 0.999)),
           (RUN.scale_by_adam_bias(0.0, 0.0, 1e-8, True),
            RUN.scale_by_adam_bias(0.0, 0.0, 1e-8, False))]
  for ours, reference in pairs:
    s1, s2 = ours.init(params), reference.init(params)
    for g in _grads(3, seed=1):
      u1, s1 = ours.update(g, s1, params)
      u2, s2 = reference.update(g, s2, params)
      for key in params:
        np.testing.assert_allclose(u1[key], u2[key], rtol=1e-5, atol=1e-7)


def test_union_optimizer_runs_the_indexed_registry_optimizer():
  params = {"w": jnp.ones((3, 2))}
  names = ["sgd", "nesterov", "adam"]
  for i, name in enumerate(names):
    tx = RUN.union_optimizer(names, jnp.float32(0.01), jnp.int32(i))
    ref = optim.get(name, learning_rate=0.01)
    s1, s2 = tx.init(params), ref.init(params)
    for g in _grads(2, seed=2):
      g = {"w": g["w"]}
      u1, s1 = tx.update(g, s1, params)
      u2, s2 = ref.update(g, s2, params)
      np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)


def test_select_ignores_divergence_and_flags_the_edge():
  choice = RUN.select((0.1, 0.3, 1.0), np.array([0.5, 0.4, np.nan]))
  assert choice["learning_rate"] == 0.3 and not choice["at_grid_edge"]
  assert RUN.select((0.1, 0.3), np.array([0.2, 0.4]))["at_grid_edge"]
  assert not RUN.select((1.0,), np.array([0.2]))["at_grid_edge"]
  with pytest.raises(RuntimeError, match="diverged"):
    RUN.select((0.1,), np.array([np.inf]))
