"""Registers optlab's preconditioned research optimizers (issue 7); imported by optlab.optim."""

from __future__ import annotations

from optlab.optim import shampoo, soap
from optlab.optim.catalog import BETA1, BETA2, EPS, LEARNING_RATE
from optlab.optim.registry import register

register(
    "shampoo",
    shampoo.shampoo,
    search_space={"learning_rate": LEARNING_RATE, "b1": BETA1, "b2": BETA2, "eps": EPS},
    tuned=("learning_rate",),
    static_args=("block_size", "precondition_frequency", "start_preconditioning_step", "graft",
                 "max_preconditioner_dim", "precondition_1d", "relative_matrix_eps",
                 "root_method"),
    paper="V. Gupta, T. Koren, Y. Singer, 'Shampoo: Preconditioned Stochastic Tensor "
    "Optimization', ICML 2018; R. Anil et al., 'Scalable Second Order Optimization for Deep "
    "Learning', arXiv:2002.09018, 2020",
    summary="Shampoo: blocked Kronecker-factored preconditioning with Adam/SGD grafting.",
)
register(
    "soap",
    soap.soap,
    search_space={"learning_rate": LEARNING_RATE, "b1": BETA1, "b2": BETA2, "eps": EPS},
    tuned=("learning_rate",),
    static_args=("precondition_frequency", "max_precond_dim", "precondition_1d"),
    paper="N. Vyas et al., 'SOAP: Improving and Stabilizing Shampoo using Adam', "
    "arXiv:2409.11321, 2024",
    summary="SOAP: Adam in the eigenbasis of Shampoo's preconditioner.",
)
