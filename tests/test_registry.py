"""The optimizer registry: names, info, get, optax's optimizers, and the CLI over it."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import optax
import pytest

from optlab import cli, optim

CLASSIC = [
    "gd", "sgd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "rmsprop_centered", "adadelta",
    "adam", "adamw", "amsgrad", "adamax", "nadam", "radam",
]


def test_names_lists_the_classic_family_and_optax():
  names = optim.names()
  assert set(CLASSIC) <= set(names)
  assert {"optax.adam", "optax.lion", "optax.contrib.muon", "optax.contrib.prodigy"} <= set(names)
  own = optim.names("optlab")
  assert own == sorted(own) and set(CLASSIC) <= set(own)
  assert {"shampoo", "soap", "muon", "mars", "cautious_adamw", "adam_mini"} <= set(own)
  assert all(n.startswith("optax.contrib.") for n in optim.names("optax.contrib"))


@pytest.mark.parametrize("name", CLASSIC)
def test_info_has_defaults_search_space_and_paper(name):
  entry = optim.info(name)
  assert entry.paper and entry.summary
  assert "learning_rate" in entry.defaults
  assert "learning_rate" in entry.search_space
  assert set(entry.tuned) <= set(entry.search_space)
  for arg in entry.search_space:
    assert arg in entry.hyperparameters
  # The defaults build the optimizer.
  optim.get(name).init(jnp.zeros(2))


def test_search_space_samples_and_grids_stay_in_range():
  import numpy as np

  space = optim.info("adam").search_space
  rng = np.random.default_rng(0)
  lr = space["learning_rate"]
  samples = lr.sample(rng, size=100)
  assert np.all((samples >= lr.low) & (samples <= lr.high))
  grid = lr.grid(5)
  assert grid[0] == pytest.approx(lr.low) and grid[-1] == pytest.approx(lr.high)
  assert optim.info("amsgrad").search_space["bias_correction"].grid() == [
      "none", "after_max", "before_max"]


def test_get_applies_overrides():
  tx = optim.get("gd", learning_rate=0.5)
  updates, _ = tx.update(jnp.array([2.0]), tx.init(jnp.array([0.0])))
  assert float(updates[0]) == -1.0


def test_names_are_case_and_dash_insensitive():
  assert optim.info("Heavy-Ball").name == "heavy_ball"


def test_unknown_name_lists_the_closest():
  with pytest.raises(ValueError, match=r"Did you mean: .*nesterov"):
    optim.get("nesterv")


def test_register_a_custom_optimizer_and_refuse_duplicates():
  def my_sign_descent(learning_rate: float = 0.1):
    """Sign descent."""
    return optax.chain(optax.scale_by_sign(), optim.scale_by_learning_rate(learning_rate))

  entry = optim.register(
      "test_sign_descent", my_sign_descent,
      search_space={"learning_rate": optim.LogUniform(1e-4, 1.0)}, paper="Bernstein et al. 2018",
  )
  try:
    assert entry.defaults["learning_rate"] == 0.1
    assert "test_sign_descent" in optim.names()
    with pytest.raises(ValueError, match="already registered"):
      optim.register("test_sign_descent", my_sign_descent)
    with pytest.raises(ValueError, match="no hyperparameter 'momentum'"):
      optim.register("test_bad", my_sign_descent, defaults={"momentum": 0.9})
  finally:
    from optlab.optim import registry

    registry._REGISTRY.pop("test_sign_descent", None)


OPTAX_NAMES = [n for n in optim.names() if n.startswith("optax")]


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_optax_optimizers_build_and_step(name):
  entry = optim.info(name)
  tx = optim.get(name)
  params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
  state = tx.init(params)

  def loss(p):
    return jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)

  grads = jax.grad(loss)(params)
  extra = {}
  if "value" in entry.extra_args:
    extra["value"] = loss(params)
  if "grad" in entry.extra_args:
    extra["grad"] = grads
  if "value_fn" in entry.extra_args:
    extra["value_fn"] = loss
  if "obj_fn" in entry.extra_args:
    extra["obj_fn"] = loss
  updates, _ = tx.update(grads, state, params, **extra)
  new = optax.apply_updates(params, updates)
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(new))


def test_cli_list_shows_the_registry(capsys):
  assert cli.main(["list"]) == 0
  out = capsys.readouterr().out
  for name in ["adam", "nesterov", "optax.contrib.muon"]:
    assert name in out


def test_cli_info_and_unknown_name(capsys):
  assert cli.main(["info", "radam"]) == 0
  assert "threshold = 4.0" in capsys.readouterr().out
  assert cli.main(["info", "radm"]) == 2
  assert "Did you mean" in capsys.readouterr().err


def test_cli_reproduce_unknown_study(capsys):
  assert cli.main(["reproduce", "no_such_study"]) == 2
  assert "unknown study" in capsys.readouterr().err


def test_optlab_command_help_runs():
  result = subprocess.run(
      [sys.executable, "-m", "optlab", "--help"], capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0
  assert "reproduce" in result.stdout and "list" in result.stdout


def test_optax_warmup_steps_are_static_when_injected():
  """Schedule-free's warmup_steps drives Python control flow: it is never injected."""
  tx = optim.get("optax.contrib.schedule_free_adamw", inject=True, warmup_steps=3)
  params = {"w": jnp.ones(3)}
  updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
  assert updates["w"].shape == (3,)
