"""optlab.structure: a model's structure as something to optimize.

Architecture search (``optlab.structure.nas``): search spaces over MLPs and CNNs,
an evaluation that trains a configuration and scores it on validation data, and
three searchers behind one call, random search, Bayesian optimization (Optuna TPE)
and a REINFORCE-trained LSTM controller (``optlab.structure.controller``, Zoph &
Le 2017). ``optlab.structure.supernet`` trains every MLP of a space once, as one
masked, vmapped program, into a table the searchers query (as NAS-Bench-101 does).
"""

from optlab.structure.controller import Controller, discretize
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
from optlab.structure.supernet import ArchitectureTable, tabulate_mlp_space

__all__ = [
    "METHODS",
    "ArchitectureObjective",
    "ArchitectureTable",
    "Controller",
    "Evaluation",
    "NASResult",
    "build_model",
    "cnn_space",
    "discretize",
    "evaluate_architecture",
    "load_task",
    "mlp_space",
    "search_architecture",
    "tabulate_mlp_space",
]
