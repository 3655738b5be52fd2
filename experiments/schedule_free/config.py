"""Configuration of the schedule_free study; every value says why it is what it is."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # The two workloads: an MLP on Fashion-MNIST and a GRU character language model on
  # the King James Bible (the paper's small-scale image and language problems).
  workloads: tuple[str, ...] = ("fashion_mlp", "char_lm")
  # The cosine runs stop at these fractions of the schedule-free run's length T: each
  # has its own horizon (warmup, then cosine decay to exactly zero at its stop).
  horizon_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
  # Evaluations per run of length T (every T/16 steps): the curves' resolution. T/4 and
  # T/2 must fall on an evaluation, so this is a multiple of 4.
  evals_per_run: int = 16
  # Linear warmup from 0, the same number of steps for every run (schedule-free
  # included, which cannot know T): 2.5% of T, i.e. 10% of the shortest cosine run.
  warmup_fraction: float = 0.025
  # AdamW's and SF-AdamW's moments: the paper's (and optax's) defaults for both.
  b1: float = 0.9
  b2: float = 0.999
  # Decoupled weight decay (multiplied by the learning rate in both optax
  # implementations), small and the same for both methods.
  weight_decay: float = 1e-4
  # Seeds change the initialization and the minibatch order. Seed 0 is the tuning
  # seed: the base learning rate is picked on it (validation loss, see below).
  num_seeds: int = 3
  # The one base learning rate shared by both methods is picked from this grid by the
  # sum of the two methods' final validation losses at T on the tuning seed (the
  # schedule-free run and the cosine run with horizon T). Four half-decade points: the
  # cosine program has room for them anyway (it is sized for the 3·seeds − 1 later runs).
  mlp_learning_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)
  lm_learning_rates: tuple[float, ...] = (1e-2, 3e-2, 1e-1, 3e-1)
  # Fashion-MNIST: a stratified training subsample (None: all 60,000 − validation),
  # the validation examples held out of the official training set, the test examples
  # kept from the official 10,000 (None: all).
  fashion_train_size: int | None = None
  fashion_val_size: int = 5_000
  fashion_test_size: int | None = None
  mlp_hidden: tuple[int, ...] = (256, 256)
  mlp_batch_size: int = 128
  mlp_epochs: int = 16
  # The language model: a one-layer GRU over characters, windows of `lm_seq_len`, the
  # corpus split contiguously 80/10/10 into train/validation/test windows.
  lm_chars: int | None = 1_000_000
  lm_seq_len: int = 64
  lm_embedding: int = 32
  lm_hidden: int = 256
  lm_batch_size: int = 32
  lm_epochs: int = 4
  # The data split and subsample are fixed across seeds.
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)


# About a minute on 2 shared CPU cores: small subsamples, small models, two seeds.
QUICK = Config(
  name="quick",
  num_seeds=2,
  fashion_train_size=10_000,  # 78 steps per epoch
  fashion_val_size=2_000,
  fashion_test_size=5_000,
  mlp_hidden=(128,),
  mlp_epochs=4,  # T = 312 steps
  lm_chars=100_000,  # ~3,100 windows of 32 characters
  lm_seq_len=32,
  lm_embedding=16,
  lm_hidden=64,
  lm_epochs=2,  # T = 156 steps
)

# The numbers to quote: all of Fashion-MNIST, a million characters, three seeds.
FULL = Config(name="full")

CONFIGS = {"quick": QUICK, "full": FULL}
