"""Configuration of the pruning study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # sklearn digits, 75/25 stratified train/test split (1,347 / 450 images): the only
  # real image set that trains in well under a second per run on 2 CPU cores.
  test_fraction: float = 0.25
  # One hidden layer of 256 (64-256-10, 18,944 weights): wide enough to be heavily
  # over-parameterized for digits, so pruning has a lot to remove before accuracy drops.
  hidden_sizes: tuple[int, ...] = (256,)
  # Adam (registry "adam") at its usual 1e-3 ×3, batch 64 (21 steps per epoch): the dense
  # model reaches ~97% test accuracy in 20 epochs.
  learning_rate: float = 3e-3
  batch_size: int = 64
  # The dense training budget (also the one-shot arm's pretraining) ...
  train_epochs: int = 20
  # ... and the brief fine-tuning after one-shot pruning (Han et al. retrain longer;
  # "briefly" is the regime the claim is about). Iterative pruning gets the same total,
  # train_epochs + finetune_epochs, from scratch.
  finetune_epochs: int = 2
  # Final sparsities of the kernels (biases are never pruned), global magnitude ranking
  # (Han et al. prune per layer; global lets the 64→256 kernel give up more than the head).
  sparsities: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99)
  scope: str = "layer"
  # Zhu & Gupta's schedule: s_t = s_f (1 − (t − t₀)/(nΔt))³ from epoch 2 (after the fast
  # early learning) to epoch 14 of 22 (leaving a third of the budget to recover), pruning
  # every 20 steps (about once per epoch; the paper prunes every 100-1000 of many more steps).
  prune_begin_epoch: int = 2
  prune_end_epoch: int = 14
  prune_every: int = 20
  # Lottery-ticket arm (Frankle & Carbin 2019): the one-shot masks, weights rewound to
  # their values after this many epochs (Frankle et al. 2020's "late rewinding"), then
  # retrained with fixed masks for train_epochs.
  rewind: bool = True
  rewind_epoch: int = 1
  # Seeds change the initial weights and the batch order; the split is fixed by data_seed.
  num_seeds: int = 2
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# 2 seeds × (1 dense + 6 levels × 3 arms) runs, sequentially through one compiled program.
QUICK = Config(name="quick")

# Five seeds and twice the budget (so the one-shot arm's fine-tuning is still brief).
FULL = Config(name="full", num_seeds=5, train_epochs=40, prune_end_epoch=28)

CONFIGS = {"quick": QUICK, "full": FULL}
