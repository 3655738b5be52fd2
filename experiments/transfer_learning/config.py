"""Configuration of the transfer_learning study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # sklearn digits split by class: the source task is digits 0-4, the target task digits
  # 5-9 (a new 5-way head). Same pixels and strokes, disjoint classes: the setting of
  # Yosinski et al. 2014's "dissimilar" split (man-made vs natural), shrunk to 8x8 digits.
  source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
  target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
  # Held-out fraction of every target class (≈ 72 images per class, 360 in all): enough that
  # the binomial standard error of an accuracy near 90 % is ≈ 1.6 points.
  target_test_fraction: float = 0.4
  # Target training examples per class (each ≤ the ≈ 108 left per class): from one-shot to
  # the whole pool, roughly ×2.5 apart, so the log-x axis is evenly covered.
  sizes_per_class: tuple[int, ...] = (1, 2, 5, 10, 25, 50, 100)
  # The MLP 64-128-64-(5): two hidden layers form the transferred "backbone", the last
  # Linear ("head") is new; small enough that 4 strategies × sizes × seeds train in seconds.
  hidden_sizes: tuple[int, ...] = (128, 64)
  # Pretraining on 80 % of the source images (≈ 720; the rest held out to check it) with
  # Adam at its usual 1e-3: 600 steps of batch 32 (≈ 27 epochs) reach ≈ 99 % held-out
  # source accuracy in pilot runs.
  source_val_fraction: float = 0.2
  pretrain_learning_rate: float = 1e-3
  pretrain_steps: int = 600
  batch_size: int = 32
  # Target training: a fixed number of Adam steps for every size, batches drawn with
  # replacement from the n training images (so one compiled program serves every size).
  # 300 steps: the largest size sees ≈ 19 epochs, the smallest one memorizes its images.
  target_steps: int = 300
  # Learning rates, one per strategy, fixed across sizes (no per-size tuning, which the
  # smallest sizes could not afford anyway). Pilot runs: Adam 1e-3 for the whole network
  # (full fine-tuning and scratch alike), 1e-2 for a head trained alone (linear probe), and
  # for per-layer rates the head's 1e-2 with a 10× smaller backbone rate (Howard & Ruder
  # 2018's discriminative fine-tuning uses ÷2.6 per layer; one factor for the whole backbone
  # keeps a single knob).
  finetune_learning_rate: float = 1e-3
  scratch_learning_rate: float = 1e-3
  probe_learning_rate: float = 1e-2
  head_learning_rate: float = 1e-2
  backbone_learning_rate: float = 1e-3
  # Two seeds in quick mode (the 12 s budget of `optlab reproduce`), ten in full mode.
  # Seeds change the pretraining (initialization and batch order), the target subsample,
  # the new head's initialization and the target batches; the test split is fixed by
  # data_seed.
  num_seeds: int = 2
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# Two compiled programs: pretraining (seeds vmapped) and the target runs (strategies ×
# sizes × seeds vmapped).
QUICK = Config(name="quick")

# More seeds, two more sizes in the few-shot range, longer target training.
FULL = Config(name="full", num_seeds=10, sizes_per_class=(1, 2, 3, 5, 10, 15, 25, 50, 100),
              target_steps=500)

CONFIGS = {"quick": QUICK, "full": FULL}
