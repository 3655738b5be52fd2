"""Configuration of the optimizer_benchmark study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # The four workloads (the list): a noisy quadratic, an MLP on MNIST-1D, an MLP
  # on Fashion-MNIST and a character-level language model.
  workloads: tuple[str, ...] = ("noisy_quadratic", "mnist1d_mlp", "fashion_mlp", "char_lm")
  # Optimizers run at the registry's defaults (optlab.optim.info(name).defaults),
  # Schmidt et al.'s "one-shot" setting: eight of their fourteen that optlab registers.
  default_optimizers: tuple[str, ...] = (
    "sgd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam", "nadam", "radam",
  )
  # The two AlgoPerf-style baselines, tuned over the registry's search space
  # (SearchSpace.for_optimizer: Adam's learning rate; Nesterov's learning rate and
  # momentum) by quasi-random (scrambled Sobol) search on the validation metric.
  tuned_optimizers: tuple[str, ...] = ("adam", "nesterov")
  # Trials per tuned optimizer: 2 × 15 trials fill the same 30 vmapped runs as the
  # final 10 submissions × 3 seeds, so tuning and final runs share one compiled program.
  n_trials: int = 15
  # Seeds of the final runs (init, batch order, gradient noise); ≥ 3 for a spread.
  num_seeds: int = 3
  # Tuning runs use one seed disjoint from the final ones (offset from the first seed).
  tuning_seed_offset: int = 1000
  # Sobol scrambling seed of the search.
  search_seed: int = 0

  # Evaluate (validation metric, for the curves and the time-to-target) every this many
  # steps; each interval draws its minibatches from a fresh permutation of the data.
  eval_every: int = 10

  # --- noisy quadratic: f(x) = ½(x − x*)ᵀA(x − x*), additive N(0, σ²) gradient noise.
  # d = 20 and κ = 100 (μ = 1, L = 100, geometric spectrum, rotated): SGD's default
  # α = 0.01 = 1/L is just stable, Adam's 1e-3 is far too small for the flat directions.
  quadratic_dim: int = 20
  quadratic_condition: float = 100.0
  # σ = 1: a visible noise floor (~α σ² d / 4 ≈ 0.05 for SGD at α = 0.01).
  quadratic_noise: float = 1.0
  quadratic_steps: int = 300

  # --- MNIST-1D (Greydanus 2020), generated offline: 2,000 signals (generation costs
  # ~1 s per 1,000 on 2 cores), split 60/20/20 train/validation/test.
  mnist1d_samples: int = 2_000
  # A two-hidden-layer MLP, as in the MNIST-1D paper's MLP baseline (narrower here).
  mnist1d_hidden: tuple[int, ...] = (32, 32)
  mnist1d_batch: int = 32
  # 300 steps ≈ 8 epochs of the 1,200 training signals.
  mnist1d_steps: int = 300

  # --- Fashion-MNIST subsamples of the official training set (train, validation) and test
  # set: small enough to load and train in seconds, large enough that optimizers separate.
  fashion_train: int = 2_000
  fashion_val: int = 500
  fashion_test: int = 1_000
  # 2×2 average pooling (14×14 = 196 inputs): a quarter of the cost, about the same accuracy.
  fashion_pool: int = 2
  fashion_hidden: tuple[int, ...] = (32,)
  fashion_batch: int = 32
  # 300 steps ≈ 5 epochs of the 2,000 training images (evaluating the 500 validation
  # images every 10 steps costs about as much as the training).
  fashion_steps: int = 300

  # --- character LM on Python's own documentation (pydoc_data.topics, ships with Python):
  # the first 50k characters, cut into windows of 16, split 80/10/10 in text order.
  char_corpus: str = "pydoc"
  char_chars: int = 50_000
  char_seq_len: int = 16
  # A one-layer GRU (optlab.models.CharRNNLM): the recurrence runs step by step, so it is
  # the costliest workload per example; kept small to fit the quick budget.
  char_model: str = "gru"
  char_embedding: int = 16
  char_hidden: int = 32
  char_batch: int = 16
  # 100 steps ≈ 0.6 epochs of the 2,500 training windows.
  char_steps: int = 100

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# Quick: about half a minute on 2 shared CPU cores (one compiled program per workload).
QUICK = Config(name="quick")

# Full: 5 seeds, 25 trials per tuned optimizer, ~5-7× the steps, more data and wider
# models (Fashion-MNIST still pooled to 14×14; the GRU is the costliest per step).
FULL = Config(
  name="full",
  n_trials=25,
  num_seeds=5,
  eval_every=40,
  quadratic_dim=50,
  quadratic_steps=2_000,
  mnist1d_samples=5_000,
  mnist1d_hidden=(100, 100),
  mnist1d_batch=64,
  mnist1d_steps=2_000,
  fashion_train=10_000,
  fashion_val=2_000,
  fashion_test=2_000,
  fashion_hidden=(128,),
  fashion_batch=64,
  fashion_steps=1_600,
  char_chars=200_000,
  char_seq_len=32,
  char_hidden=48,
  char_batch=16,
  char_steps=800,
)

CONFIGS = {"quick": QUICK, "full": FULL}
