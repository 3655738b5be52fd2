"""optlab.structure: a model's structure as something to optimize.

Architecture search (``optlab.structure.nas``): search spaces over MLPs and CNNs,
an evaluation that trains a configuration and scores it on validation data, and
three searchers behind one call, random search, Bayesian optimization (Optuna TPE)
and a REINFORCE-trained LSTM controller (``optlab.structure.controller``, Zoph &
Le 2017). Pruning (``optlab.structure.pruning``: magnitude masks enforced by a
gradient transformation, Zhu & Gupta's schedule, rewinding) and knowledge
distillation (``optlab.structure.distillation``: Hinton et al.'s loss through
``optlab.train.fit``). ``optlab.structure.supernet`` trains every MLP of a space once, as one
masked, vmapped program, into a table the searchers query (as NAS-Bench-101 does).
"""

from optlab.structure import distillation, pruning
from optlab.structure.controller import Controller, discretize
from optlab.structure.distillation import (
    distillation_loss,
    distillation_loss_fn,
    feature_matching_loss,
    pack_targets,
    soft_targets,
    teacher_logits,
)
from optlab.structure.nas import (
    METHODS,
    ArchitectureObjective,
    Evaluation,
    NASResult,
    build_model,
    cnn_space,
    evaluate_architecture,
    load_task,
    mlp_space,
    search_architecture,
)
from optlab.structure.pruning import (
    PolynomialSparsity,
    PruneState,
    magnitude_masks,
    masks_of,
    polynomial_sparsity_schedule,
    prune,
    rewind,
    sparsity_report,
)
from optlab.structure.supernet import ArchitectureTable, tabulate_mlp_space

__all__ = [
    "METHODS",
    "ArchitectureObjective",
    "ArchitectureTable",
    "Controller",
    "Evaluation",
    "NASResult",
    "PolynomialSparsity",
    "PruneState",
    "build_model",
    "cnn_space",
    "discretize",
    "distillation",
    "distillation_loss",
    "distillation_loss_fn",
    "evaluate_architecture",
    "feature_matching_loss",
    "load_task",
    "magnitude_masks",
    "masks_of",
    "mlp_space",
    "pack_targets",
    "polynomial_sparsity_schedule",
    "prune",
    "pruning",
    "rewind",
    "search_architecture",
    "soft_targets",
    "sparsity_report",
    "tabulate_mlp_space",
    "teacher_logits",
]
