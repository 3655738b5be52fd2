"""Configuration of the distillation study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Training images drawn (stratified) from sklearn digits' training part: few labels is
  # where a teacher's soft targets carry the most information per example (Hinton et al.
  # 2015 sec. 4: soft targets let a model learn from 3% of the data); teacher and student
  # see the same images.
  train_size: int = 100
  # Test fraction of digits (449 images): only reported, never used to choose anything.
  test_fraction: float = 0.25
  # The teacher: a wide two-hidden-layer MLP with dropout (~85k weights), regularized as
  # Hinton et al.'s teacher is, trained once with optlab.train.fit.
  teacher_hidden: tuple[int, ...] = (256, 256)
  teacher_dropout: float = 0.3
  teacher_epochs: int = 60
  # Which teachers distill: "same_data" is trained on the student's own training images
  # (Hinton et al.'s setting: the gain comes from the soft targets alone);
  # "more_data" on the whole training part of digits (1,348 images; the common practice
  # of distilling a model trained on more data than the student's labelled set).
  # Quick runs the first only (each teacher is one more compilation, ~2 s); full runs both.
  teachers: tuple[str, ...] = ("same_data",)
  # Epochs of the "more_data" teacher: 13× more images per epoch, so fewer epochs.
  more_data_epochs: int = 15
  # The student: 64-16-10 (~1.2k weights, 70× fewer): small enough that it cannot copy
  # the teacher's function exactly.
  student_hidden: tuple[int, ...] = (16,)
  # Adam, batch 32 for both (3 steps per epoch on 100 images); α = 3e-3 for the students
  # brings every temperature's loss to a plateau within the budget (pilot runs).
  teacher_learning_rate: float = 1e-3
  student_learning_rate: float = 3e-3
  batch_size: int = 32
  student_epochs: int = 80
  # The students are evaluated on the test set every this many epochs (a curve; each
  # evaluation inside the compiled program costs compile time, so quick evaluates once).
  eval_every: int = 80
  # The temperatures of Hinton et al.'s range (they report 2.5-4 best for a small net,
  # higher for larger students), in octaves up to nearly uniform soft targets.
  temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
  # Weight of the soft term (optlab's convention: α = 1 pure distillation, α = 0 the
  # student alone); Hinton et al. weight the hard term "considerably lower".
  alpha: float = 0.9
  # Students are cheap and vmapped (one compiled program for every temperature × seed):
  # seeds change the student's initial weights and batch order; one teacher (seed
  # teacher_seed) serves every student, and the data split is fixed by data_seed.
  num_seeds: int = 20
  teacher_seed: int = 100
  data_seed: int = 0
  # How many seeds also train one distilled student with the real
  # fit(student, tx, (x, pack_targets(...)), loss=distillation_loss_fn(T, α)), compared
  # with the vmapped run (each fit is one more compilation).
  fit_seeds: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# One teacher fit and one vmapped program for 6 student settings × 20 seeds (the fit check
# is left to the tests and the full run: one more compilation).
QUICK = Config(name="quick")

# 30 seeds (the differences are a point or two; the seed noise needs them) and a longer
# student budget.
FULL = Config(name="full", teachers=("same_data", "more_data"), num_seeds=30,
              student_epochs=150, eval_every=10, fit_seeds=3)

CONFIGS = {"quick": QUICK, "full": FULL}
