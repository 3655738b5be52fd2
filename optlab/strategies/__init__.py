"""optlab.strategies: training algorithms around an optimizer.

Transfer learning (pretrain, freeze, fine-tune), multi-task learning (shared
trunk, task weighting, gradient surgery) and adversarial training (FGSM, PGD,
Madry et al., TRADES), each expressed as optax transforms, losses or step
functions that compose with ``optlab.train``.
"""

from optlab.strategies import transfer
from optlab.strategies.transfer import (
    freeze,
    label_params,
    match_paths,
    per_layer_learning_rates,
    train_only,
    transfer_weights,
)

__all__ = [
    "freeze",
    "label_params",
    "match_paths",
    "per_layer_learning_rates",
    "train_only",
    "transfer",
    "transfer_weights",
]
