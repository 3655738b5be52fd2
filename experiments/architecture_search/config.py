"""Configuration of the architecture_search study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # sklearn digits (1,797 8x8 images, ships offline): small enough that every architecture of
  # the space trains in seconds, hard enough that architectures differ by points.
  dataset: str = "digits"
  # optlab.structure.nas.load_task's split seed (60/20/20 train/validation/test).
  data_seed: int = 0
  # The MLP space (optlab.structure.nas.mlp_space): 1..max_depth hidden layers, each width a
  # choice of `widths`, one activation for all layers. No normalization and no dropout, the
  # two choices the table cannot reproduce exactly (see optlab.structure.supernet).
  # Quick: 4 * (4 + 16 + 64) = 336 architectures.
  max_depth: int = 3
  widths: tuple[int, ...] = (8, 16, 32, 64)
  activations: tuple[str, ...] = ("relu", "gelu", "tanh", "silu")
  # Training of every architecture (as optlab.structure.nas.evaluate_architecture): Adam at a
  # learning rate that gets the larger nets to ~98% validation accuracy in 10 epochs of 16
  # steps (pilot: at 1e-3 the small nets are still far from converged and size is all that
  # matters; the score is the best validation accuracy over the epochs).
  optimizer: str = "adam"
  learning_rate: float = 2e-3
  epochs: int = 10
  batch_size: int = 64
  # Seed of every architecture's initialization and batch order (the table is one training
  # run per architecture, as one evaluate_architecture call per trial would be).
  train_seed: int = 0
  # The searchers of optlab.structure.nas.search_architecture, and their budget in trials:
  # 30 trials are ~9% of the quick space, the regime where a searcher's choices matter.
  methods: tuple[str, ...] = ("random", "bayesian", "rl")
  budget: int = 30
  # Searcher seeds: against the table a search costs milliseconds (random, TPE, and the
  # controller once its jitted steps are compiled), so the spread over seeds is cheap.
  num_seeds: int = 20
  # Architectures re-trained from scratch with evaluate_architecture (the table's optimum
  # first) to show the table holds what real trials would have returned (a few seconds
  # each, so only in the full run; tests/test_supernet.py checks the same on three).
  verify: int = 0
  # Build one architecture with build_model and compare its initial weights with the
  # table's (tests do this too; it costs ~1 s of eager compilation).
  check_init: bool = False

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# 336 architectures in 4 programs (one compilation), 3 searchers x 20 seeds x 30 trials.
QUICK = Config(name="quick")

# 4 * (4 + 16 + 64 + 256) = 1,360 architectures (depth up to 4), twice the epochs, 50 seeds
# and 60 trials (~4% of the space), three architectures re-trained to check the table.
FULL = Config(name="full", max_depth=4, epochs=20, num_seeds=50, budget=60, verify=3,
              check_init=True)

CONFIGS = {"quick": QUICK, "full": FULL}
