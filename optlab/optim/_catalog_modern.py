"""Registers optlab's modern research optimizers (issue 7); imported by optlab.optim."""

from __future__ import annotations

from optlab.optim import adam_mini, cautious, mars, muon
from optlab.optim.catalog import ADAM_SPACE, BETA1, BETA2, EPS, LEARNING_RATE
from optlab.optim.registry import register
from optlab.optim.space import Choice, LogUniform, Uniform

WEIGHT_DECAY = LogUniform(1e-6, 1e-1)
LIANG = ("K. Liang, L. Chen, B. Liu, Q. Liu, 'Cautious Optimizers: Improving Training with One "
         "Line of Code', arXiv:2411.16085, 2024")

register(
    "muon",
    muon.muon,
    search_space={
        "learning_rate": LogUniform(1e-3, 0.3),
        "adam_learning_rate": LogUniform(1e-5, 1e-1),
        "beta": Uniform(0.8, 0.99),
        "weight_decay": WEIGHT_DECAY,
        "shape_scaling": Choice(("jordan", "moonlight")),
    },
    tuned=("learning_rate", "adam_learning_rate"),
    static_args=("ns_steps", "ns_coeffs", "ns_dtype", "muon_mask", "matrix_axes"),
    paper="K. Jordan et al., 'Muon: An optimizer for hidden layers in neural networks', 2024, "
    "https://kellerjordan.github.io/posts/muon/",
    summary="Muon: Newton–Schulz-orthogonalized momentum for matrices and conv kernels, "
    "AdamW for the rest.",
)
register(
    "mars",
    mars.mars,
    search_space={**ADAM_SPACE, "learning_rate": LEARNING_RATE, "b1": Uniform(0.8, 0.99),
                  "b2": Uniform(0.9, 0.999), "gamma": Uniform(0.0, 0.1),
                  "weight_decay": WEIGHT_DECAY},
    tuned=("learning_rate", "weight_decay"),
    static_args=("mask",),
    paper="H. Yuan, Y. Liu, S. Wu, X. Zhou, Q. Gu, 'MARS: Unleashing the Power of Variance "
    "Reduction for Training Large Models', arXiv:2411.10438, 2024",
    summary="MARS-AdamW: AdamW on a variance-reduced (STORM), clipped gradient.",
)
register(
    "cautious_adamw",
    cautious.cautious_adamw,
    search_space={**ADAM_SPACE, "weight_decay": WEIGHT_DECAY,
                  "decay_convention": Choice(("paper", "lr")),
                  "normalization": Choice(("paper", "mean"))},
    tuned=("learning_rate", "weight_decay"),
    static_args=("mask",),
    paper=LIANG,
    summary="Cautious AdamW: AdamW's step masked where its sign disagrees with the gradient.",
)
register(
    "cautious_lion",
    cautious.cautious_lion,
    search_space={"learning_rate": LogUniform(1e-6, 1e-2), "b1": BETA1, "b2": BETA2,
                  "weight_decay": LogUniform(1e-4, 10.0),
                  "normalization": Choice(("paper", "mean"))},
    tuned=("learning_rate", "weight_decay"),
    static_args=("mask",),
    paper=LIANG + "; X. Chen et al., 'Symbolic Discovery of Optimization Algorithms', "
    "NeurIPS 2023",
    summary="Cautious Lion: Lion's sign step masked where it disagrees with the gradient.",
)
register(
    "adam_mini",
    adam_mini.adam_mini,
    search_space={**ADAM_SPACE, "eps": EPS, "weight_decay": WEIGHT_DECAY},
    tuned=("learning_rate", "weight_decay"),
    static_args=("block_axes", "mask"),
    paper="Y. Zhang et al., 'Adam-mini: Use Fewer Learning Rates To Gain More', "
    "arXiv:2406.16793, 2024",
    summary="Adam-mini: Adam with one second-moment scalar per parameter block.",
)
