"""Configuration of the early_stopping_cv study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Training examples drawn (stratified) from sklearn digits: few enough that a wide MLP
  # memorizes them, noisy labels included, well within the budget.
  train_size: int = 300
  # Fraction of the training labels replaced by a different class drawn uniformly (the
  # validation and test labels stay clean): memorizing them is what hurts generalization
  # late in training, the regime early stopping is for (Arpit et al. 2017).
  label_noise: float = 0.3
  # Validation and test fractions of digits (449 images each): early stopping monitors the
  # validation loss; the test set is only reported.
  val_fraction: float = 0.25
  test_fraction: float = 0.25
  # One wide hidden layer (64-128-10, ~9.6k weights for 300 images): memorizes them,
  # and a 5-fold × 7-λ sweep still trains in a few seconds on 2 CPU cores.
  hidden_sizes: tuple[int, ...] = (128,)
  # AdamW (registry "adamw", the paper's convention: per-step decay λ, not multiplied by α);
  # part (b) selects λ. α = 3e-3 (3× Adam's usual) reaches the best validation loss in
  # ~10 epochs, so the overfitting fits a short budget.
  learning_rate: float = 3e-3
  batch_size: int = 32
  # The full budget: pilot runs reach their lowest validation loss after ~10 epochs and
  # then overfit, so 40 epochs leaves room to see it (and for patience to act).
  epochs: int = 40
  # EarlyStopping(monitor="val_loss", patience=10, restore_best=True): a common patience
  # (Prechelt 1998 studies 1-50 % of the run); restoring gives the best epoch's weights.
  patience: int = 10
  # Early stopping is replayed on every seed's full-budget curve (EarlyStopping fed the
  # sweep's validation losses, which are fit's); this many seeds also run the real
  # fit(..., callbacks=[EarlyStopping]) as a check (each fit is one more compilation).
  fit_seeds: int = 1
  # Part (a) trains with the smallest λ of the grid: over 40 × 9 steps it shrinks the
  # weights by 0.4 %, i.e. practically unregularized, so early stopping is the only brake.
  # Part (b): the λ grid, from "no effect" to "too much" in decades, half-decades around
  # the optimum (pilot runs: the test accuracy peaks around 1e-2 and collapses at 1e-1).
  weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
  # Stratified k-fold cross-validation on the (noisy) training set; 5 is the common choice
  # (Kohavi 1995 recommends 10; 5 halves the held-out noise cost here).
  folds: int = 5
  # Seeds change the initial weights and the batch order; the data (split, subsample,
  # noise, folds) is fixed by data_seed.
  num_seeds: int = 2
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# A 7-λ × 2-seed sweep (part (a) is its smallest-λ row), one fit with early stopping, and a
# 7-λ × 5-fold sweep: three compiled programs.
QUICK = Config(name="quick")

# Longer budget (deeper into overfitting), 5 seeds, 10 folds.
FULL = Config(name="full", epochs=100, num_seeds=5, folds=10, fit_seeds=5)

CONFIGS = {"quick": QUICK, "full": FULL}
