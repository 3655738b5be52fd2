"""Tests of the decoupled_weight_decay study: the runner end to end on tiny data, the
vmapped heatmap against single runs, and the weight-decay conventions it compares."""

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
  return load_module("decoupled_weight_decay_run_under_test",
                     REPO / "experiments" / "decoupled_weight_decay" / "run.py")


RUN = _load_runner()

# One epoch of a tiny MLP on a few hundred images, a 2×2 grid: one compile.
TINY = RUN.config.QUICK.replace(
  name="tiny",
  methods=("adamw_paper",),
  train_size=256,
  val_size=128,
  test_size=128,
  hidden_sizes=(8,),
  batch_size=64,
  epochs=1,
  adam_learning_rates=(1e-3, 1e-2),
  adam_l2_decays=(1e-3, 1e-1),
  paper_decays=(1e-4, 1e-2),
)


def _missing(*args, **kwargs):
  raise FileNotFoundError("apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def workload():
  """sklearn digits through the runner's fallback: loads in a fraction of Fashion-MNIST's time
  (the quick run exercises the Fashion-MNIST path)."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(RUN.data, "fashion_mnist", _missing)
    return RUN.load_workload(TINY)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, workload):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("decoupled_weight_decay")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    patch.setattr(RUN, "load_workload", lambda cfg: workload)  # loaded once per module
    assert RUN.main(["--quick", "--seeds", "2", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  assert [r["method"] for r in records] == list(TINY.methods)
  assert len({r["run_id"] for r in records}) == 1
  for r in records:
    json.dumps(r, allow_nan=False)
    assert r["study"] == "decoupled_weight_decay" and r["seeds"] == [0, 1]
    assert r["provenance"]["versions"]["jax"] == jax.__version__
    assert r["config"]["name"] == "tiny" and r["config"]["num_seeds"] == 2
    grid = np.array(r["grid"]["test_error"], dtype=np.float64)
    assert grid.shape == (2, 2, 2)  # α × λ × seed
    assert np.all((grid >= 0) & (grid <= 1))
    a = r["analysis"]
    i, j = a["best_index"]
    val = np.array(r["grid"]["val_error"], dtype=np.float64).mean(axis=-1)
    assert val[i, j] == val.min() and a["best_test_error"] == pytest.approx(grid[i, j].mean())
    assert r["timing"]["runs_in_program"] == 8
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def test_vmapped_grid_matches_single_runs(workload):
  method, seeds = "adamw_paper", [3, 4]
  alphas, lams = TINY.learning_rates(method), TINY.decays(method)
  arrays = workload.arrays()
  swept, _ = RUN.sweep(TINY, method, workload, alphas, lams, seeds, arrays)
  forward, params0 = RUN.init_params(TINY, workload, seeds)
  single = jax.jit(RUN.make_train(TINY, method, forward, len(workload.train[1])))
  for i, j, k in [(1, 1, 1), (0, 1, 0)]:
    alone = single(jnp.float32(alphas[i]), jnp.float32(lams[j]),
                   jax.tree.map(lambda p, k=k: p[k], params0), jnp.uint32(seeds[k]), *arrays)
    for name, value in alone.items():
      np.testing.assert_allclose(swept[name][i, j, k], np.asarray(value), rtol=1e-4, atol=1e-6,
                                 err_msg=f"α={alphas[i]} λ={lams[j]} seed={seeds[k]}: {name}")


def _run_updates(tx, steps: int = 5, seed: int = 0):
  """The parameters after `steps` updates with fixed random gradients."""
  keys = jax.random.split(jax.random.key(seed), steps + 1)
  params = {"w": jax.random.normal(keys[0], (3, 4)), "b": jnp.ones(4)}
  state = tx.init(params)
  for key in keys[1:]:
    grads = jax.tree.map(lambda p, key=key: jax.random.normal(key, p.shape), params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_without_decay_the_three_adam_variants_are_adam():
  adam = _run_updates(optim.adam(3e-3))
  cfg = TINY.replace(schedule="constant")
  for method in ("adam_l2", "adamw_lr", "adamw_paper"):
    got = _run_updates(RUN.make_optimizer(cfg, method, 3e-3, 0.0, 100))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, adam)


def test_paper_and_lr_conventions_agree_when_lambda_paper_is_alpha_lambda_lr():
  # Constant schedule: paper λ = α·λ_lr (the adamw docstring's conversion).
  cfg = TINY.replace(schedule="constant")
  alpha, lam_lr = 3e-2, 0.5
  lr_form = _run_updates(RUN.make_optimizer(cfg, "adamw_lr", alpha, lam_lr, 100))
  paper = _run_updates(RUN.make_optimizer(cfg, "adamw_paper", alpha, alpha * lam_lr, 100))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), paper, lr_form)
  decayed = _run_updates(RUN.make_optimizer(cfg, "adamw_paper", alpha, lam_lr, 100))
  assert not np.allclose(decayed["w"], lr_form["w"])  # λ is not multiplied by α there


def test_paper_form_under_cosine_by_hand():
  # θ ← θ − η_t(α·d_t + λθ), d_t Adam's direction, η_t the cosine multiplier.
  alpha, lam, total = 1e-1, 1e-2, 4
  tx = RUN.make_optimizer(TINY, "adamw_paper", alpha, lam, total)
  eta = optax.cosine_decay_schedule(1.0, total)
  direction = optim.scale_by_adam()
  theta, state = jnp.array([1.0, -2.0]), tx.init(jnp.array([1.0, -2.0]))
  d_state, expected = direction.init(theta), theta
  for t, g in enumerate([jnp.array([0.3, -0.1]), jnp.array([-0.2, 0.4]), jnp.array([0.1, 0.1])]):
    updates, state = tx.update(g, state, theta)
    theta = theta + updates
    d, d_state = direction.update(g, d_state, expected)
    expected = expected - eta(t) * (alpha * d + lam * expected)
    np.testing.assert_allclose(theta, expected, rtol=1e-6)


def test_sgd_forms_differ_only_in_where_the_decay_enters():
  cfg = TINY.replace(schedule="constant")
  plain = _run_updates(optim.heavy_ball(0.1, 0.9))
  for method in ("sgd_l2", "sgdw"):
    got = _run_updates(RUN.make_optimizer(cfg, method, 0.1, 0.0, 100))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, plain)
  l2 = _run_updates(RUN.make_optimizer(cfg, "sgd_l2", 0.1, 1e-2, 100))
  sgdw = _run_updates(RUN.make_optimizer(cfg, "sgdw", 0.1, 1e-2, 100))
  assert not np.allclose(l2["w"], sgdw["w"])


def test_analysis_reads_diagonal_and_separable_valleys():
  alphas = [1e-3, 1e-2, 1e-1]
  lams = [1e-3, 1e-2, 1e-1]
  diagonal = np.array([[0.3, 0.2, 0.1], [0.2, 0.1, 0.2], [0.1, 0.2, 0.3]])  # λ* ∝ 1/α
  a = RUN.analyze(alphas, lams, diagonal, diagonal)
  assert a["lambda_star_slope"] == pytest.approx(-1.0)
  assert a["lambda_star_correlation"] == pytest.approx(-1.0)
  separable = np.array([[0.3, 0.1, 0.3], [0.2, 0.05, 0.2], [0.3, 0.1, 0.3]])
  s = RUN.analyze(alphas, lams, separable, separable)
  assert s["lambda_star_slope"] == pytest.approx(0.0, abs=1e-9)
  assert s["lambda_star_correlation"] is None and s["best_index"] == [1, 1]
  assert s["fixed_lambda_regret"] == pytest.approx(0.0)


def test_unknown_methods_and_schedules_are_rejected():
  with pytest.raises(ValueError, match="unknown method"):
    RUN.make_optimizer(TINY, "lion", 0.1, 0.0, 10)
  with pytest.raises(ValueError, match="schedule"):
    RUN.make_optimizer(TINY.replace(schedule="step"), "sgdw", 0.1, 0.0, 10)


def test_missing_fashion_mnist_falls_back_to_digits(monkeypatch, capsys):
  monkeypatch.setattr(RUN.data, "fashion_mnist", _missing)
  w = RUN.load_workload(TINY)
  assert w.dim == 64 and "digits" in w.description
  assert w.sizes() == {"train": 256, "validation": 128, "test": 128}
  assert np.allclose(w.train[0].mean(axis=0), 0.0, atol=1e-5)  # standardized on train
  assert "falling back to sklearn digits" in capsys.readouterr().out


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "decoupled_weight_decay" in cli.study_names()
