"""optlab.strategies: training algorithms around an optimizer.

Transfer learning (pretrain, freeze, fine-tune), multi-task learning (shared
trunk, task weighting, gradient surgery) and adversarial training (FGSM, PGD,
Madry et al., TRADES), each expressed as optax transforms, losses or step
functions that compose with ``optlab.train``.
"""

from optlab.strategies import adversarial, multitask, transfer
from optlab.strategies.adversarial import (
    fgsm,
    fit_adversarial,
    make_adversarial_train_step,
    make_attack,
    pgd,
    robust_accuracy,
    trades_loss,
)
from optlab.strategies.multitask import (
    MultiTaskModel,
    fit_multitask,
    fixed,
    gradnorm,
    make_multitask_step,
    pcgrad,
    uncertainty_weighting,
)
from optlab.strategies.transfer import (
    freeze,
    label_params,
    match_paths,
    per_layer_learning_rates,
    train_only,
    transfer_weights,
)

__all__ = [
    "MultiTaskModel",
    "adversarial",
    "fgsm",
    "fit_adversarial",
    "fit_multitask",
    "fixed",
    "freeze",
    "gradnorm",
    "label_params",
    "make_adversarial_train_step",
    "make_attack",
    "make_multitask_step",
    "match_paths",
    "multitask",
    "pcgrad",
    "per_layer_learning_rates",
    "pgd",
    "robust_accuracy",
    "trades_loss",
    "train_only",
    "transfer",
    "transfer_weights",
    "uncertainty_weighting",
]
