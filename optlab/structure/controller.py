"""A reinforcement-learning controller for architecture search (Zoph & Le, 2017).

An LSTM reads the decisions made so far and emits, one decision at a time, a
softmax over the options of each dimension of a :class:`SearchSpace`. The input at
each step is the embedding of the previous decision (a start token first); every
decision has its own softmax head. A dimension that is inactive given earlier
decisions (a :class:`Conditional` whose parent took another value) is skipped: it
is not sampled, adds nothing to the log-probability and leaves the LSTM state
unchanged.

The policy is trained with REINFORCE and a moving-average baseline:

  loss(θ) = −(R − b) Σ_t log π_θ(a_t | a_<t) − β Σ_t H(π_θ(· | a_<t)),
  b ← δ b + (1 − δ) R   (after the update; b starts at the first reward),

averaged over the trials of an update, minimized with Adam (optax). The
gradient of the first term for one softmax decision is −(R − b)(onehot(a) − p)
with respect to its logits.

Only finite dimensions can be decided: :class:`Choice` and :class:`IntUniform`
(enumerated, at most `max_values` integers). Continuous dimensions raise a
ValueError; turn them into choices first with :func:`discretize`.

Everything numerical is a pure, jit-compiled function of the parameters (`sample`,
`log_prob`, `reinforce_loss`, the update); :class:`Controller` wraps them with an
ask/tell interface and is deterministic given its seed.

Example:
  >>> from optlab.optim.space import Choice, SearchSpace
  >>> space = SearchSpace({"act": Choice(("relu", "tanh", "gelu"))})
  >>> controller = Controller(space, seed=0)
  >>> config = controller.ask()
  >>> sorted(config)
  ['act']
  >>> controller.tell(config, reward=1.0)

Reference:
  Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
  (https://arxiv.org/abs/1611.01578); Williams, "Simple statistical
  gradient-following algorithms for connectionist reinforcement learning", 1992.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.optim.space import (
    Choice,
    Conditional,
    IntUniform,
    LogUniform,
    SearchSpace,
    Uniform,
)

# Logit of the padding options (decisions have different numbers of options).
_NEG = -1e9


@dataclasses.dataclass(frozen=True)
class Decision:
  """One decision of the controller: a finite dimension of the search space.

  Attributes:
    name: the dimension's name.
    values: its options, in order.
    parent: index of the decision it is conditional on, or -1.
    activators: indices of the parent's options that make it active.
  """

  name: str
  values: tuple[Any, ...]
  parent: int = -1
  activators: tuple[int, ...] = ()


def discretize(space: SearchSpace, num: int = 5) -> SearchSpace:
  """Replaces each continuous dimension by a :class:`Choice` of `num` grid points.

  LogUniform dimensions get log-spaced points, Uniform ones evenly spaced points
  (both endpoints included); conditional dimensions stay conditional.

  Example:
    >>> from optlab.optim.space import LogUniform, SearchSpace
    >>> discretize(SearchSpace({"lr": LogUniform(1e-3, 1e-1)}), 3)["lr"].values
    (0.001, 0.01, 0.1)
  """
  if not isinstance(space, SearchSpace):
    raise TypeError(f"discretize: space must be a SearchSpace, got {type(space).__name__}")
  if isinstance(num, bool) or not isinstance(num, int) or num < 2:
    raise ValueError(f"discretize: num must be an integer ≥ 2, got {num!r}")

  def convert(dim):
    if isinstance(dim, (LogUniform, Uniform)):
      return Choice(tuple(float(np.round(v, 12)) for v in dim.grid(num)))
    return dim

  dims = {}
  for name, dim in space.items():
    if isinstance(dim, Conditional):
      dims[name] = Conditional(convert(dim.dimension), dim.parent, dim.values)
    else:
      dims[name] = convert(dim)
  return SearchSpace(dims)


def decisions_from_space(space: SearchSpace, max_values: int = 256) -> tuple[Decision, ...]:
  """The controller's decisions, one per dimension of `space`, in the space's order.

  Raises:
    ValueError: a continuous dimension (use :func:`discretize`), or an
      IntUniform with more than `max_values` integers.
  """
  if not isinstance(space, SearchSpace):
    raise TypeError(f"Controller: space must be a SearchSpace, got {type(space).__name__}")
  index = {name: i for i, name in enumerate(space)}
  decisions = []
  for name in space:
    dim = space.dimension(name)
    if isinstance(dim, Choice):
      values = tuple(dim.values)
    elif isinstance(dim, IntUniform):
      count = int(dim.high) - int(dim.low) + 1
      if count > max_values:
        raise ValueError(
            f"Controller: dimension {name!r} = {dim!r} has {count} integers, more than "
            f"max_values={max_values}; use a Choice of a few values instead")
      values = tuple(range(int(dim.low), int(dim.high) + 1))
    else:
      raise ValueError(
          f"Controller: dimension {name!r} is {type(dim).__name__}, which the controller "
          "cannot decide; it decides Choice and IntUniform dimensions only. Turn continuous "
          "dimensions into choices with optlab.structure.controller.discretize(space, num)")
    parent, activators = -1, ()
    wrapped = space[name]
    if isinstance(wrapped, Conditional):
      parent = index[wrapped.parent]
      parent_values = space.dimension(wrapped.parent).values
      activators = tuple(parent_values.index(v) for v in wrapped.values)
    decisions.append(Decision(name, values, parent, activators))
  return tuple(decisions)


class Tables(NamedTuple):
  """Static integer tables describing the decisions (arrays of leading size T)."""

  valid: jax.Array  # (T, V) bool: option v exists for decision t
  offset: jax.Array  # (T,) int32: token of option v of decision t is 1 + offset[t] + v
  parent: jax.Array  # (T,) int32: parent decision, -1 for none
  activate: jax.Array  # (T, V) bool: parent option that activates decision t


def make_tables(decisions: tuple[Decision, ...]) -> Tables:
  """Pads the decisions into the arrays the compiled functions read."""
  sizes = [len(d.values) for d in decisions]
  width = max(sizes)
  valid = np.zeros((len(decisions), width), bool)
  activate = np.zeros((len(decisions), width), bool)
  for t, d in enumerate(decisions):
    valid[t, : sizes[t]] = True
    activate[t, list(d.activators)] = True
  offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
  parent = np.asarray([d.parent for d in decisions], np.int32)
  return Tables(jnp.asarray(valid), jnp.asarray(offset), jnp.asarray(parent),
                jnp.asarray(activate))


def init_params(key: jax.Array, tables: Tables, hidden_size: int = 32, embed_size: int = 16,
                init_scale: float = 0.08) -> dict[str, jax.Array]:
  """Parameters of the controller, drawn uniformly from [−init_scale, init_scale].

  Biases start at zero (so the first policy is close to uniform). Keys:
  ``embedding`` (tokens × E; token 0 starts the sequence), ``lstm_kernel``
  ((E + H) × 4H, gates i, f, g, o), ``lstm_bias``, ``head_kernel`` (T × H × V),
  ``head_bias`` (T × V).
  """
  num_decisions, width = tables.valid.shape
  num_tokens = 1 + int(np.sum(np.asarray(tables.valid)))
  return _init_arrays(key, num_tokens, num_decisions, width, int(hidden_size), int(embed_size),
                      float(init_scale))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _init_arrays(key, num_tokens, num_decisions, width, hidden_size, embed_size, init_scale):
  k_embed, k_lstm, k_head = jax.random.split(key, 3)

  def uniform(k, shape):
    return jax.random.uniform(k, shape, jnp.float32, -init_scale, init_scale)

  return {
      "embedding": uniform(k_embed, (num_tokens, embed_size)),
      "lstm_kernel": uniform(k_lstm, (embed_size + hidden_size, 4 * hidden_size)),
      "lstm_bias": jnp.zeros((4 * hidden_size,), jnp.float32),
      "head_kernel": uniform(k_head, (num_decisions, hidden_size, width)),
      "head_bias": jnp.zeros((num_decisions, width), jnp.float32),
  }


def _lstm(params, x, h, c):
  gates = jnp.concatenate([x, h]) @ params["lstm_kernel"] + params["lstm_bias"]
  i, f, g, o = jnp.split(gates, 4)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _rollout(params, tables: Tables, key: jax.Array | None, forced: jax.Array | None):
  """Runs the controller over all decisions: sampling (`key`), scoring given actions
  (`forced`) or, with neither, taking the most likely option at each step.

  Returns (actions (T,) int32 with -1 where inactive, active (T,) bool,
  Σ log π over active decisions, Σ entropy over active decisions).
  """
  num_decisions = tables.valid.shape[0]
  hidden = params["lstm_bias"].shape[0] // 4
  keys = (jax.random.split(key, num_decisions) if key is not None
          else jnp.zeros((num_decisions,), jnp.uint32))
  scoring = forced is not None
  forced = forced if scoring else jnp.full((num_decisions,), -1, jnp.int32)

  def step(carry, inputs):
    h, c, token, actions, active, logp_sum, entropy_sum = carry
    t, step_key, forced_t = inputs
    parent = tables.parent[t]
    safe_parent = jnp.maximum(parent, 0)
    parent_action = jnp.maximum(actions[safe_parent], 0)
    active_t = jnp.where(parent < 0, True,
                         active[safe_parent] & tables.activate[t, parent_action])
    h_new, c_new = _lstm(params, params["embedding"][token], h, c)
    logits = h_new @ params["head_kernel"][t] + params["head_bias"][t]
    logits = jnp.where(tables.valid[t], logits, _NEG)
    log_probs = jax.nn.log_softmax(logits)
    if key is not None:
      action = jax.random.categorical(step_key, logits).astype(jnp.int32)
    elif scoring:
      action = jnp.maximum(forced_t, 0)
    else:
      action = jnp.argmax(logits).astype(jnp.int32)
    entropy = -jnp.sum(jnp.where(tables.valid[t], jnp.exp(log_probs) * log_probs, 0.0))
    logp_sum = logp_sum + jnp.where(active_t, log_probs[action], 0.0)
    entropy_sum = entropy_sum + jnp.where(active_t, entropy, 0.0)
    action = jnp.where(active_t, action, -1)
    h = jnp.where(active_t, h_new, h)
    c = jnp.where(active_t, c_new, c)
    token = jnp.where(active_t, 1 + tables.offset[t] + action, token)
    carry = (h, c, token, actions.at[t].set(action), active.at[t].set(active_t), logp_sum,
             entropy_sum)
    return carry, None

  zeros = jnp.zeros((hidden,), jnp.float32)
  init = (zeros, zeros, jnp.zeros([], jnp.int32), jnp.full((num_decisions,), -1, jnp.int32),
          jnp.zeros((num_decisions,), bool), jnp.zeros([], jnp.float32),
          jnp.zeros([], jnp.float32))
  xs = (jnp.arange(num_decisions), keys, forced)
  (_, _, _, actions, active, logp, entropy), _ = jax.lax.scan(step, init, xs)
  return actions, active, logp, entropy


def sample(params, tables: Tables, key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Samples one configuration: (actions (T,) int32, -1 where inactive; active (T,) bool)."""
  actions, active, _, _ = _rollout(params, tables, key, None)
  return actions, active


def log_prob(params, tables: Tables, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(Σ_t log π(a_t | a_<t), Σ_t entropy) over the active decisions of `actions` (T,)."""
  _, _, logp, entropy = _rollout(params, tables, None, actions)
  return logp, entropy


def greedy(params, tables: Tables) -> jax.Array:
  """The most likely option at each step, feeding back each choice (actions (T,))."""
  actions, _, _, _ = _rollout(params, tables, None, None)
  return actions


def reinforce_loss(params, tables: Tables, actions: jax.Array, advantages: jax.Array,
                   entropy_weight: float = 0.0) -> jax.Array:
  """REINFORCE loss of a batch: mean_i[−A_i Σ_t log π(a_it)] − β mean_i[Σ_t H_it].

  Args:
    params: controller parameters.
    tables: from :func:`make_tables`.
    actions: (B, T) actions of B trials (-1 where inactive).
    advantages: (B,) rewards minus the baseline.
    entropy_weight: β, the weight of the entropy bonus.
  """
  return _loss_and_entropy(params, tables, actions, advantages, entropy_weight)[0]


def _loss_and_entropy(params, tables, actions, advantages, entropy_weight):
  logp, entropy = jax.vmap(lambda a: log_prob(params, tables, a))(actions)
  entropy = jnp.mean(entropy)
  return -jnp.mean(advantages * logp) - entropy_weight * entropy, entropy


def ema_baseline(baseline: float | None, reward: float, decay: float) -> float:
  """b ← δ b + (1 − δ) R; the first reward when there is no baseline yet.

  Example:
    >>> ema_baseline(None, 0.5, 0.8), round(ema_baseline(0.5, 1.0, 0.8), 6)
    (0.5, 0.6)
  """
  if baseline is None:
    return float(reward)
  return float(decay * baseline + (1.0 - decay) * reward)


# Adam with its learning rate in the state, so that every controller over spaces of the
# same shape shares one compiled update.
_ADAM = optax.inject_hyperparams(optax.adam)(learning_rate=0.05)


def _update(params, opt_state, tables, actions, advantages, entropy_weight):
  (loss, entropy), grads = jax.value_and_grad(_loss_and_entropy, has_aux=True)(
      params, tables, actions, advantages, entropy_weight)
  updates, opt_state = _ADAM.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, entropy


def _adam_init(params, learning_rate):
  state = _ADAM.init(params)
  state.hyperparams["learning_rate"] = learning_rate
  return state


_update_jit = jax.jit(_update)
_adam_init_jit = jax.jit(_adam_init)
_sample_jit = jax.jit(sample)
_log_prob_jit = jax.jit(log_prob)
_greedy_jit = jax.jit(greedy)


@dataclasses.dataclass
class UpdateRecord:
  """One policy update: mean reward of its trials, baseline and advantage scale used, loss,
  mean entropy."""

  reward: float
  baseline: float
  scale: float
  loss: float
  entropy: float


class Controller:
  """An LSTM policy over a search space, trained with REINFORCE (ask/tell interface).

  Args:
    space: a :class:`SearchSpace` of Choice and IntUniform dimensions (possibly
      conditional).
    hidden_size: LSTM width.
    embed_size: width of the decision embeddings.
    learning_rate: Adam's learning rate. Larger than Zoph & Le's 6e-4, which
      served ~12,800 trials; architecture searches here have tens of trials.
    baseline_decay: δ of the moving-average baseline.
    entropy_weight: β of the entropy bonus (keeps exploring).
    normalize: divide the advantages R − b by their running root mean square
      (an EMA with the baseline's decay, started at the first nonzero value), so
      that the step and the weight of the entropy bonus do not depend on the
      scale of the rewards (accuracies that differ in the second decimal, or
      rewards in [0, 1]). False gives Zoph & Le's raw advantages.
    batch_size: trials per policy update (1: update after every trial).
    max_values: largest IntUniform the controller enumerates.
    seed: seeds the initialization and the sampling.

  Example:
    >>> from optlab.optim.space import Choice, SearchSpace
    >>> space = SearchSpace({"x": Choice((0, 1, 2))})
    >>> controller = Controller(space, learning_rate=0.1, seed=0)
    >>> for _ in range(30):
    ...   config = controller.ask()
    ...   controller.tell(config, float(config["x"] == 2))
    >>> controller.probability({"x": 2}) > 1 / 3
    True
  """

  def __init__(
      self,
      space: SearchSpace,
      *,
      hidden_size: int = 32,
      embed_size: int = 16,
      learning_rate: float = 0.02,
      baseline_decay: float = 0.8,
      entropy_weight: float = 0.03,
      normalize: bool = True,
      batch_size: int = 1,
      max_values: int = 256,
      seed: int = 0,
  ):
    for name, value in (("hidden_size", hidden_size), ("embed_size", embed_size),
                        ("batch_size", batch_size), ("max_values", max_values)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Controller: {name} must be an integer ≥ 1, got {value!r}")
    if not (_finite(learning_rate) and learning_rate > 0):
      raise ValueError(f"Controller: learning_rate must be > 0, got {learning_rate!r}")
    if not (_finite(baseline_decay) and 0 <= baseline_decay < 1):
      raise ValueError(f"Controller: baseline_decay must be in [0, 1), got {baseline_decay!r}")
    if not (_finite(entropy_weight) and entropy_weight >= 0):
      raise ValueError(f"Controller: entropy_weight must be ≥ 0, got {entropy_weight!r}")
    self.space = space
    self.decisions = decisions_from_space(space, max_values)
    self.tables = make_tables(self.decisions)
    self.baseline_decay = float(baseline_decay)
    self.entropy_weight = float(entropy_weight)
    self.normalize = bool(normalize)
    self.batch_size = int(batch_size)
    self._square: float | None = None
    init_key, self._sample_key = jax.random.split(jax.random.key(seed))
    self.params = init_params(init_key, self.tables, int(hidden_size), int(embed_size))
    self.opt_state = _adam_init_jit(self.params, jnp.asarray(learning_rate, jnp.float32))
    self.baseline: float | None = None
    self.updates: list[UpdateRecord] = []
    self._asked = 0
    self._pending: list[tuple[np.ndarray, float]] = []

  # Conversions between configurations and action vectors.
  def to_config(self, actions: np.ndarray) -> dict[str, Any]:
    """The configuration of an action vector (-1 marks inactive decisions)."""
    return {d.name: d.values[int(a)] for d, a in zip(self.decisions, np.asarray(actions),
                                                      strict=True) if a >= 0}

  def to_actions(self, config: Mapping[str, Any]) -> np.ndarray:
    """The action vector of a configuration of the space (ValueError if it is not one)."""
    self.space.validate(config)
    return np.asarray([d.values.index(config[d.name]) if d.name in config else -1
                       for d in self.decisions], np.int32)

  def ask(self) -> dict[str, Any]:
    """Samples the next configuration from the current policy."""
    key = jax.random.fold_in(self._sample_key, self._asked)
    self._asked += 1
    actions, _ = _sample_jit(self.params, self.tables, key)
    return self.to_config(np.asarray(actions))

  def tell(self, config: Mapping[str, Any], reward: float) -> None:
    """Records the reward of `config`; updates the policy every `batch_size` trials."""
    if not _finite(reward):
      raise ValueError(f"Controller.tell: reward must be a finite number, got {reward!r}")
    self._pending.append((self.to_actions(config), float(reward)))
    if len(self._pending) >= self.batch_size:
      self._learn()

  def _learn(self) -> None:
    actions = jnp.asarray(np.stack([a for a, _ in self._pending]))
    rewards = np.asarray([r for _, r in self._pending], np.float32)
    self._pending = []
    mean_reward = float(rewards.mean())
    baseline = mean_reward if self.baseline is None else self.baseline
    advantages = rewards - np.float32(baseline)
    scale = 1.0
    if self.normalize:
      square = float(np.mean(np.square(advantages)))
      if self._square is None:
        self._square = square if square > 0 else None
      else:
        self._square = self.baseline_decay * self._square + (1 - self.baseline_decay) * square
      scale = math.sqrt(self._square) if self._square else 1.0
    self.params, self.opt_state, loss, entropy = _update_jit(
        self.params, self.opt_state, self.tables, actions,
        jnp.asarray(advantages / np.float32(scale)), jnp.asarray(self.entropy_weight, jnp.float32))
    self.updates.append(UpdateRecord(mean_reward, baseline, scale, float(loss), float(entropy)))
    self.baseline = ema_baseline(self.baseline, mean_reward, self.baseline_decay)

  def log_prob(self, config: Mapping[str, Any]) -> float:
    """log π(config) under the current policy (summed over its active decisions)."""
    logp, _ = _log_prob_jit(self.params, self.tables, jnp.asarray(self.to_actions(config)))
    return float(logp)

  def probability(self, config: Mapping[str, Any]) -> float:
    """π(config) under the current policy."""
    return math.exp(self.log_prob(config))

  def greedy(self) -> dict[str, Any]:
    """The configuration built from the most likely option at every step."""
    return self.to_config(np.asarray(_greedy_jit(self.params, self.tables)))


def _finite(value: Any) -> bool:
  return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
          and math.isfinite(value))
