"""Architecture search: spaces, models, the three searchers and the REINFORCE controller."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optlab.optim.space import Choice, Conditional, IntUniform, LogUniform, SearchSpace, Uniform
from optlab.structure import controller as ctl
from optlab.structure.nas import (
    METHODS,
    ArchitectureObjective,
    build_model,
    cnn_space,
    evaluate_architecture,
    load_task,
    mlp_space,
    search_architecture,
)

# One small space for every controller test, so they share one compilation.
SMALL = mlp_space(max_depth=2, widths=(16, 32, 64, 128))
OPTIMUM = {"depth": 2, "width_1": 128, "width_2": 16, "activation": "gelu",
           "normalization": "layer", "dropout": 0.1}


def synthetic_reward(config):
  """A smooth known score in [0, 1], maximal exactly at OPTIMUM."""
  width = 1 - abs(math.log2(config["width_1"] / 128)) / 3
  second = 1 - abs(math.log2(config.get("width_2", 128) / 16)) / 3
  return (0.25 * (config["activation"] == "gelu") + 0.2 * (config["normalization"] == "layer")
          + 0.15 * width + 0.1 * (config["depth"] == 2) * second
          + 0.1 * (config["depth"] == 2) + 0.2 * (config["dropout"] == 0.1))


@pytest.fixture(scope="module")
def digits():
  return load_task("digits", seed=0)


# ----------------------------------------------------------------------------- spaces and models


def test_mlp_space_structure():
  space = mlp_space(max_depth=3)
  assert list(space) == ["depth", "width_1", "width_2", "width_3", "activation",
                         "normalization", "dropout"]
  assert space["depth"].values == (1, 2, 3)
  assert isinstance(space["width_1"], Choice)
  assert space["width_2"].parent == "depth" and space["width_2"].values == (2, 3)
  assert space["width_3"].values == (3,)
  assert space.is_active("width_2", {"depth": 2}) and not space.is_active("width_3", {"depth": 2})
  # Only active widths appear: 5 + 25 + 125 width patterns, 4 * 3 * 3 for the rest.
  assert len(space.grid()) == (5 + 25 + 125) * 36


def test_cnn_space_structure():
  space = cnn_space(max_blocks=2, head_widths=(0, 32))
  assert space["channels_2"].values == (2,)
  assert space["dropout"].parent == "head_width" and space["dropout"].values == (32,)
  assert "dropout" in cnn_space(head_widths=(32, 64))
  assert "dropout" not in cnn_space(head_widths=(0,))


@pytest.mark.parametrize("make_space", [mlp_space, cnn_space], ids=["mlp", "cnn"])
def test_sampled_configs_build_models_with_right_output(make_space):
  # Traced abstractly (jax.eval_shape): building and the forward pass run, nothing compiles.
  space = make_space()
  rng = np.random.default_rng(0)
  x = jax.ShapeDtypeStruct((3, 8, 8, 1), jnp.float32)
  for seed in range(6):
    config = space.sample(rng)
    space.validate(config)
    out = jax.eval_shape(lambda x, c=config, s=seed: build_model(c, (8, 8, 1), 10, seed=s)(x), x)
    assert out.shape == (3, 10)


def test_build_model_maps_the_configuration():
  # nnx.eval_shape builds the modules abstractly (no parameter is computed).
  mlp = nnx.eval_shape(lambda: build_model({
      "depth": 2, "width_1": 32, "width_2": 16, "activation": "tanh", "normalization": "layer",
      "dropout": 0.1}, 64, 10))
  assert mlp.hidden_sizes == (32, 16) and mlp.normalization == "layer"
  assert mlp.dropout_rate == 0.1
  cnn = nnx.eval_shape(lambda: build_model({
      "blocks": 2, "channels_1": 8, "channels_2": 16, "kernel_size": 5, "pooling": "avg",
      "head_width": 0, "activation": "relu", "normalization": "batch"}, (8, 8, 1), 10))
  assert cnn.channels == (8, 16) and cnn.kernel_size == 5 and cnn.pooling == "avg"
  assert len(cnn.norms) == 2 and cnn.head.hidden_sizes == ()


@pytest.mark.parametrize("config, shape, match", [
    ({"depth": 1, "width_1": 8, "colour": "red"}, (4,), "unknown keys"),
    ({"depth": 2, "width_1": 8}, (4,), "needs"),
    ({"depth": 1, "width_1": 8, "width_2": 8}, (4,), "also sets"),
    ({"blocks": 4, "channels_1": 8, "channels_2": 8, "channels_3": 8, "channels_4": 8},
     (8, 8, 1), "at least 16 pixels"),
    ({"blocks": 1, "channels_1": 8}, (64,), "needs images"),
    ({"width_1": 8}, (4,), "neither 'depth'"),
])
def test_build_model_rejects_bad_configurations(config, shape, match):
  with pytest.raises(ValueError, match=match):
    build_model(config, shape, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_depth": 0}, "max_depth"),
    ({"min_depth": 3, "max_depth": 2}, "exceeds"),
    ({"widths": (16, 0)}, "widths"),
    ({"normalizations": ("group",)}, "normalizations"),
    ({"dropouts": (0.0, 1.0)}, "dropouts"),
    ({"activations": ("nope",)}, "nope"),
])
def test_space_arguments_are_checked(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mlp_space(**kwargs)


def test_cnn_space_arguments_are_checked():
  with pytest.raises(ValueError, match="poolings"):
    cnn_space(poolings=("sum",))
  with pytest.raises(ValueError, match="head_widths"):
    cnn_space(head_widths=(-1,))


# ----------------------------------------------------------------------------- searchers


@pytest.mark.parametrize("method", METHODS)
def test_searchers_respect_the_budget_and_are_reproducible(method):
  result = search_architecture(synthetic_reward, SMALL, method=method, budget=12, seed=3)
  assert len(result.history) == len(result.seconds) == len(result.cached) == 12
  scores = result.scores()
  for config, score in result.history:
    SMALL.validate(config)
    assert score == synthetic_reward(config)
  np.testing.assert_array_equal(result.best_so_far(), np.maximum.accumulate(scores))
  assert np.all(np.diff(result.best_so_far()) >= 0)
  assert result.best_score == scores.max() == result.best_so_far()[-1]
  assert synthetic_reward(result.best_config) == result.best_score
  again = search_architecture(synthetic_reward, SMALL, method=method, budget=12, seed=3)
  assert again.history == result.history
  records = result.records()
  assert [r["trial"] for r in records] == list(range(12))
  assert records[-1]["best_so_far"] == result.best_score


def test_repeated_configurations_count_against_the_budget_and_hit_the_cache():
  space = SearchSpace({"x": Choice((0, 1))})
  calls = []

  def evaluate(config):
    calls.append(config)
    return float(config["x"])

  result = search_architecture(evaluate, space, method="random", budget=10, seed=0)
  assert len(result.history) == 10 and len(calls) == 2
  assert sum(result.cached) == 8 and not result.cached[0]
  uncached = search_architecture(evaluate, space, method="random", budget=5, cache=False)
  assert len(uncached.history) == 5 and not any(uncached.cached)


def test_search_rejects_bad_arguments():
  with pytest.raises(ValueError, match="unknown method 'evolution'"):
    search_architecture(synthetic_reward, SMALL, method="evolution", budget=3)
  for budget in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match="budget must be an integer ≥ 1"):
      search_architecture(synthetic_reward, SMALL, method="random", budget=budget)
  with pytest.raises(TypeError, match="SearchSpace"):
    search_architecture(synthetic_reward, {"x": Choice((1, 2))}, budget=3)
  with pytest.raises(ValueError, match="controller_options"):
    search_architecture(synthetic_reward, SMALL, method="random", budget=3,
                        controller_options={"learning_rate": 0.1})
  with pytest.raises(ValueError, match="returned nan"):
    search_architecture(lambda c: math.nan, SMALL, method="random", budget=3)
  continuous = SearchSpace({"depth": Choice((1, 2)), "lr": LogUniform(1e-4, 1e-1)})
  with pytest.raises(ValueError, match=r"'lr' is LogUniform.*discretize"):
    search_architecture(synthetic_reward, continuous, method="rl", budget=3)


# ----------------------------------------------------------------------------- controller


# Gradients over SMALL's decisions (depth, width_1, width_2, activation, normalization,
# dropout); batches of two trials, so that both tests share one compilation.
_TABLES = ctl.make_tables(ctl.decisions_from_space(SMALL))
_GRAD = jax.jit(jax.grad(ctl.reinforce_loss))


def test_reinforce_gradient_of_one_softmax_decision_matches_hand_computation(key):
  # loss = −(R − b) Σ_t log π(a_t). The first decision's logits z = h₀ W₀ + b₀ depend on its
  # head bias b₀, and no later decision does, so ∂loss/∂b₀ = −(R − b)(onehot(a₀) − p₀).
  params = ctl.init_params(key, _TABLES)
  hidden = params["lstm_bias"].shape[0] // 4
  h, _ = ctl._lstm(params, params["embedding"][0], jnp.zeros(hidden), jnp.zeros(hidden))
  p = jax.nn.softmax(h @ params["head_kernel"][0, :, :2] + params["head_bias"][0, :2])
  reward, baseline = 0.9, 0.6
  trial = [1, 3, 0, 1, 1, 1]  # depth=2 (option 1), ...
  grads = _GRAD(params, _TABLES, jnp.array([trial, trial]),
                jnp.array([reward - baseline] * 2), 0.0)
  expected = -(reward - baseline) * (jax.nn.one_hot(1, 2) - p)
  np.testing.assert_allclose(grads["head_bias"][0, :2], expected, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(grads["head_kernel"][0, :, :2], jnp.outer(h, expected),
                             rtol=1e-5, atol=1e-7)
  # A batch averages; the entropy bonus adds −β ∂H₀/∂z = β p (log p + H₀).
  beta = 0.3
  other = [0, 3, -1, 1, 1, 1]  # depth=1
  grads = _GRAD(params, _TABLES, jnp.array([other, trial]), jnp.array([1.0, -0.5]), beta)
  entropy = -jnp.sum(p * jnp.log(p))
  expected = (-(1.0 * (jax.nn.one_hot(0, 2) - p) - 0.5 * (jax.nn.one_hot(1, 2) - p)) / 2
              + beta * p * (jnp.log(p) + entropy))
  np.testing.assert_allclose(grads["head_bias"][0, :2], expected, rtol=1e-4, atol=1e-6)


def test_padding_and_inactive_decisions_get_no_gradient(key):
  params = ctl.init_params(key, _TABLES)
  # depth=1 in both trials: width_2 is inactive, so its head gets no gradient; depth has 2 of
  # 4 options, the other two are padding.
  other = [0, 3, -1, 1, 1, 1]
  grads = _GRAD(params, _TABLES, jnp.array([other, other]), jnp.array([1.0, 0.5]), 0.1)
  assert float(jnp.abs(grads["head_bias"][2]).max()) == 0.0
  assert float(jnp.abs(grads["head_kernel"][2]).max()) == 0.0
  assert float(jnp.abs(grads["head_bias"][0, 2:]).max()) == 0.0
  assert float(jnp.abs(grads["head_bias"][0, :2]).max()) > 0.0
  assert float(jnp.abs(grads["head_bias"][1]).max()) > 0.0


def test_controller_probabilities_sum_to_one_over_a_conditional_space():
  # Inactive decisions are skipped, so π is a distribution over the space's configurations.
  controller = ctl.Controller(SMALL, seed=1)
  configs = SMALL.grid()
  assert len(configs) == (4 + 16) * 36
  total = sum(controller.probability(c) for c in configs)
  assert total == pytest.approx(1.0, abs=1e-4)
  for _ in range(20):
    SMALL.validate(controller.ask())


def test_baseline_is_an_exponential_moving_average():
  controller = ctl.Controller(SMALL, baseline_decay=0.5, normalize=False, seed=0)
  rewards = [0.2, 0.8, 0.5, 1.0]
  expected = None
  for reward in rewards:
    config = controller.ask()
    controller.tell(config, reward)
    used = reward if expected is None else expected
    assert controller.updates[-1].baseline == pytest.approx(used)
    expected = reward if expected is None else 0.5 * expected + 0.5 * reward
    assert controller.baseline == pytest.approx(expected)
  assert ctl.ema_baseline(0.5, 1.0, 0.8) == pytest.approx(0.6)
  assert ctl.ema_baseline(None, 0.3, 0.8) == 0.3


def test_controller_learns_a_synthetic_reward():
  # 720 configurations; random search (like the untrained controller) draws the optimum with
  # probability 1/2 · 1/4³ · 1/3² = 1/1152 a trial, so finds it within 60 trials 5% of the
  # time. The controller's probability of it must grow, its rewards improve, and it must find
  # the optimum within 60 trials on most seeds.
  found = 0
  for seed in range(3):
    controller = ctl.Controller(SMALL, seed=seed)
    start = controller.probability(OPTIMUM)
    assert start == pytest.approx(1 / 1152, rel=0.1)  # nearly uniform at first
    rewards = []
    for _ in range(60):
      config = controller.ask()
      rewards.append(synthetic_reward(config))
      controller.tell(config, rewards[-1])
    assert controller.probability(OPTIMUM) > 10 * start
    assert np.mean(rewards[-20:]) > np.mean(rewards[:20]) + 0.1
    found += max(rewards) == synthetic_reward(OPTIMUM)
  assert found >= 2


def test_controller_is_deterministic_given_its_seed():
  def run(seed):
    controller = ctl.Controller(SMALL, seed=seed)
    configs = []
    for _ in range(5):
      configs.append(controller.ask())
      controller.tell(configs[-1], synthetic_reward(configs[-1]))
    return configs, controller.greedy()

  assert run(4) == run(4)
  assert run(4)[0] != run(5)[0]


def test_controller_batches_and_arguments():
  controller = ctl.Controller(SMALL, batch_size=3, seed=0)
  for i in range(7):
    config = controller.ask()
    controller.tell(config, synthetic_reward(config))
    assert len(controller.updates) == (i + 1) // 3
  with pytest.raises(ValueError, match="reward must be a finite number"):
    controller.tell(controller.ask(), math.inf)
  with pytest.raises(ValueError, match="lacks"):
    controller.tell({"depth": 2}, 1.0)
  for kwargs, match in [({"learning_rate": 0.0}, "learning_rate"),
                        ({"baseline_decay": 1.0}, "baseline_decay"),
                        ({"batch_size": 0}, "batch_size"),
                        ({"entropy_weight": -1.0}, "entropy_weight")]:
    with pytest.raises(ValueError, match=match):
      ctl.Controller(SMALL, **kwargs)
  with pytest.raises(ValueError, match="1001 integers"):
    ctl.Controller(SearchSpace({"n": IntUniform(0, 1000)}))


def test_discretize_makes_a_space_the_controller_can_search():
  space = SearchSpace({"opt": Choice(("sgd", "adam")), "lr": LogUniform(1e-3, 1e-1),
                       "momentum": Conditional(Uniform(0.0, 0.9), "opt", ("sgd",)),
                       "layers": IntUniform(1, 3)})
  discrete = ctl.discretize(space, 3)
  assert discrete["lr"].values == pytest.approx((1e-3, 1e-2, 1e-1))
  assert discrete["momentum"].dimension.values == (0.0, 0.45, 0.9)
  assert discrete["layers"] == space["layers"]
  decisions = ctl.decisions_from_space(discrete)
  assert [d.name for d in decisions] == ["opt", "lr", "momentum", "layers"]
  assert decisions[2].parent == 0 and decisions[2].activators == (0,)
  assert decisions[3].values == (1, 2, 3)
  with pytest.raises(ValueError, match="num must be an integer ≥ 2"):
    ctl.discretize(space, 1)


# ----------------------------------------------------------------------------- real training


def test_load_task_splits_and_standardizes(digits):
  assert digits.train.x.shape[1:] == (8, 8, 1)
  assert len(digits.train) + len(digits.validation) + len(digits.test) == 1797
  assert abs(float(digits.train.x.mean())) < 1e-4
  assert float(digits.train.x.std()) == pytest.approx(1.0, abs=1e-3)


def test_one_architecture_evaluation_on_digits(digits):
  config = {"depth": 1, "width_1": 32, "activation": "relu", "normalization": None,
            "dropout": 0.0}
  objective = ArchitectureObjective((digits.train, digits.validation), epochs=2, seed=0)
  score = objective(config)
  (seen, evaluation), = objective.evaluations
  assert seen == config and evaluation.score == score
  assert evaluation.status == "completed" and len(evaluation.curve) == 2
  assert score == max(evaluation.curve) > 0.5
  assert evaluation.num_params == 64 * 32 + 32 + 32 * 10 + 10
  assert 0 < evaluation.compile_seconds < evaluation.seconds


def test_evaluation_arguments_are_checked(digits):
  with pytest.raises(TypeError, match="unknown options"):
    ArchitectureObjective(digits, epoch=2)
  with pytest.raises(ValueError, match="no validation split"):
    ArchitectureObjective(type(digits)(train=digits.train, test=digits.test))
  with pytest.raises(TypeError, match="pair"):
    evaluate_architecture({"depth": 1, "width_1": 8}, digits.train)
