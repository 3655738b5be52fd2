"""optlab.strategies: training algorithms around an optimizer.

Transfer learning (pretrain, freeze, fine-tune), multi-task learning (shared
trunk, task weighting, gradient surgery) and adversarial training (FGSM, PGD,
Madry et al., TRADES), each expressed as optax transforms, losses or step
functions that compose with ``optlab.train``.
"""
