"""Multi-task learning: a shared trunk with one head per task, task weighting, gradient surgery.

A :class:`MultiTaskModel` maps inputs to ``{task: outputs}``. Training minimizes a
weighted combination of the per-task losses ``L = (L_1, …, L_T)``; a *weighting*
says how (:func:`fixed`, :func:`uncertainty_weighting` of Kendall et al. 2018,
:func:`gradnorm` of Chen et al. 2018) and a *surgery* (:func:`pcgrad` of Yu et al.
2020) may transform the per-task gradients before they are summed. The step
(:func:`make_multitask_step`) is pure and jit-able over the same
:class:`optlab.train.TrainState` that ``optlab.train`` uses, with any optax
transformation; :func:`fit_multitask` is the loop around it.

State layout inside the ``TrainState``: ``params = {"model": θ, "weighting": φ}``
(φ: learnable weighting parameters, e.g. Kendall's log σ², trained by the same `tx`)
and ``model_state = {"model": rest, "weighting": s}`` (s: non-learned weighting state,
e.g. GradNorm's weights and initial losses).

Modules: ``model`` (the model), ``weighting`` (fixed, uncertainty, GradNorm),
``surgery`` (PCGrad), ``training`` (step, epoch, evaluation, ``fit_multitask``).
"""

from optlab.strategies.multitask.model import MultiTaskModel
from optlab.strategies.multitask.surgery import (
    Surgery,
    pcgrad,
    pcgrad_coefficients,
    pcgrad_project,
    task_gram,
)
from optlab.strategies.multitask.training import (
    fit_multitask,
    init_multitask_state,
    make_multitask_epoch,
    make_multitask_evaluate,
    make_multitask_step,
    task_cosines,
)
from optlab.strategies.multitask.weighting import (
    GradNormState,
    Weighting,
    fixed,
    gradnorm,
    select_leaves,
    uncertainty_weighting,
)

__all__ = [
    "GradNormState",
    "MultiTaskModel",
    "Surgery",
    "Weighting",
    "fit_multitask",
    "fixed",
    "gradnorm",
    "init_multitask_state",
    "make_multitask_epoch",
    "make_multitask_evaluate",
    "make_multitask_step",
    "pcgrad",
    "pcgrad_coefficients",
    "pcgrad_project",
    "select_leaves",
    "task_cosines",
    "task_gram",
    "uncertainty_weighting",
]
