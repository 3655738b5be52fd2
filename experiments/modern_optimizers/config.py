"""Configuration of the modern_optimizers study; every value says why it is what it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# The nine optimizers (registry names), AdamW first: it sets the target, the baseline of
# the per-step cost, and the learning rate of Muon's auxiliary AdamW.
OPTIMIZERS = (
  "adamw", "shampoo", "soap", "muon", "mars", "cautious_adamw", "adam_mini",
  "optax.contrib.schedule_free_adamw", "optax.lion",
)

# Learning-rate grids: the method's customary rate c (its paper's or reference code's
# default) with its half-decade neighbours c/3 and 3c, plus 10c, because these runs are
# short and short runs favour larger rates. Four runs of tuning per optimizer and workload.
LEARNING_RATES = {
  "adamw": (3e-4, 1e-3, 3e-3, 1e-2),  # c = 1e-3 (Loshchilov & Hutter; PyTorch, optax)
  "shampoo": (3e-4, 1e-3, 3e-3, 1e-2),  # c = 1e-3: Adam-grafted, so Adam's rate
  "soap": (1e-3, 3e-3, 1e-2, 3e-2),  # c = 3e-3 (Vyas et al.'s default)
  "muon": (6e-3, 0.02, 0.06, 0.2),  # c = 0.02 (Jordan's default for the matrix leaves)
  "mars": (1e-3, 3e-3, 1e-2, 3e-2),  # c = 3e-3 (Yuan et al., MARS-AdamW)
  "cautious_adamw": (3e-4, 1e-3, 3e-3, 1e-2),  # c = 1e-3: AdamW's (Liang et al. reuse it)
  "adam_mini": (3e-4, 1e-3, 3e-3, 1e-2),  # c = 1e-3: AdamW's (Zhang et al. reuse it)
  "optax.contrib.schedule_free_adamw": (1e-3, 3e-3, 1e-2, 3e-2),  # c = 2.5e-3 (optax)
  "optax.lion": (3e-5, 1e-4, 3e-4, 1e-3),  # c = 1e-4: Chen et al.'s 3-10x below AdamW
}


@dataclasses.dataclass(frozen=True)
class Config:
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  workloads: tuple[str, ...] = ("fashion_cnn", "char_lm")
  optimizers: tuple[str, ...] = OPTIMIZERS
  learning_rates: Mapping[str, tuple[float, ...]] = dataclasses.field(
    default_factory=lambda: dict(LEARNING_RATES))
  # Seeds (initialization and batch order) at the chosen rate, the tuning seed included:
  # the rate is picked on the first seed's final validation loss, then seeds 2..n run.
  num_seeds: int = 3
  # Decoupled weight decay λ, multiplied by the learning rate (PyTorch's AdamW
  # convention, optlab's decay_convention="lr"): PyTorch's default 0.01 for every method
  # but Lion, whose rate is ~10x smaller, so 0.1 keeps λ·lr alike (Chen et al.).
  weight_decay: float = 0.01
  lion_weight_decay: float = 0.1
  # Every method but schedule-free: linear warmup from 0 over 5% of the run, then cosine
  # decay to 0 at the last step (AlgoPerf's and Vyas et al.'s baselines). Schedule-free
  # AdamW gets the same warmup and no decay: not needing one is its claim.
  warmup_fraction: float = 0.05
  # Steps between evaluations of the validation loss: the curves' resolution (20 points).
  eval_every: int = 100
  # Per-step cost: after training, each optimizer trains on from a fresh state and
  # `timing_window` consecutive steps are timed, `timing_repeats` times, the optimizers
  # taking turns so that machine load hits all alike; the median is reported. The window
  # is a multiple of Shampoo's and SOAP's preconditioner period (10 steps), so their
  # eigendecompositions count at their amortized rate.
  timing_window: int = 10
  timing_repeats: int = 9
  # Threads that build (trace and compile) the programs, one per optimizer and workload,
  # while the main thread trains those already built: XLA compiles on one core without
  # holding Python's lock, and compiling is most of the quick mode.
  compile_threads: int = 2

  # --- Fashion-MNIST CNN (optlab.models.CNN: conv blocks with 2x2 max pooling, global
  # average pooling, linear head). Validation held out of the official training set,
  # test drawn from the official test set; pixels standardized with training statistics.
  fashion_train: int | None = None  # None: all 60,000 − validation
  fashion_val: int = 5_000
  # Test images drawn from the official 10,000 (None: all); the validation size, so that
  # one compiled evaluation program serves both.
  fashion_test: int | None = 5_000
  fashion_pool: int = 1  # k×k average pooling of the 28×28 images (1: none)
  cnn_channels: tuple[int, ...] = (32, 64)
  cnn_hidden: tuple[int, ...] = (128,)
  cnn_batch: int = 128
  cnn_steps: int = 2_000  # ~4.7 epochs of 55,000 images

  # --- Character-level Transformer LM (optlab.models.TransformerLM, GPT-style, tied
  # embeddings) on the King James Bible, windows of `lm_seq_len`, split 80/10/10 in text
  # order (validation and test text never seen in training).
  lm_corpus: str = "bible"
  lm_chars: int | None = 1_000_000
  lm_seq_len: int = 128
  lm_d_model: int = 128
  lm_heads: int = 4
  lm_layers: int = 2
  lm_batch: int = 32
  lm_steps: int = 2_000  # ~10 epochs of the 6,250 training windows
  lm_eval_windows: int | None = 512  # validation/test windows evaluated (None: all)

  # The data split and subsamples are fixed across seeds.
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)


# Quick: tiny models, 100 steps, 3 seeds. The tuning budget is three rates, 3c, 10c and
# 30c (one half-decade above the full grid's top three): in runs this short every method
# picked 10c, the edge, from the full grid's top three.
QUICK_LEARNING_RATES = {
  "adamw": (3e-3, 1e-2, 3e-2),
  "shampoo": (3e-3, 1e-2, 3e-2),
  "soap": (1e-2, 3e-2, 0.1),
  "muon": (0.06, 0.2, 0.6),
  "mars": (1e-2, 3e-2, 0.1),
  "cautious_adamw": (3e-3, 1e-2, 3e-2),
  "adam_mini": (3e-3, 1e-2, 3e-2),
  "optax.contrib.schedule_free_adamw": (1e-2, 3e-2, 0.1),
  "optax.lion": (3e-4, 1e-3, 3e-3),
}

QUICK = Config(
  name="quick",
  learning_rates=QUICK_LEARNING_RATES,
  eval_every=10,
  timing_repeats=5,
  fashion_train=2_000,
  fashion_val=500,
  fashion_test=500,
  fashion_pool=2,  # 14×14 images: a quarter of the convolution cost
  cnn_channels=(4, 8),
  cnn_hidden=(),
  cnn_batch=32,
  cnn_steps=100,  # 1.6 epochs of 2,000 images
  lm_chars=60_000,
  lm_seq_len=32,
  lm_d_model=32,
  lm_heads=2,
  lm_layers=1,
  lm_batch=16,
  lm_steps=100,  # 1,600 of the ~1,500 training windows: about one epoch
  lm_eval_windows=None,
)

# The numbers to quote: all of Fashion-MNIST, a million characters, 2,000 steps each.
FULL = Config(name="full")

CONFIGS = {"quick": QUICK, "full": FULL}
