"""Registers optlab's optimizers and optax's (core and contrib) in the registry."""

from __future__ import annotations

import inspect
import re

import optax
import optax.contrib

from optlab.optim import adadelta, adagrad, adam, adamw, amsgrad, momentum, nadam, radam, rmsprop
from optlab.optim.registry import register
from optlab.optim.space import Choice, LogUniform, Uniform

LEARNING_RATE = LogUniform(1e-5, 1.0)
MOMENTUM = Uniform(0.0, 0.99)
BETA1 = Uniform(0.0, 0.99)
BETA2 = Uniform(0.9, 0.9999)
EPS = LogUniform(1e-10, 1e-3)
ADAM_SPACE = {"learning_rate": LEARNING_RATE, "b1": BETA1, "b2": BETA2, "eps": EPS}

KINGMA_BA = "D. P. Kingma, J. Ba, 'Adam: A Method for Stochastic Optimization', ICLR 2015"

register(
    "gd",
    momentum.gd,
    search_space={"learning_rate": LogUniform(1e-4, 10.0)},
    paper="A. Cauchy, 'Méthode générale pour la résolution des systèmes d'équations "
    "simultanées', C. R. Acad. Sci. Paris, 1847",
    summary="Full-batch gradient descent.",
)
register(
    "sgd",
    momentum.sgd,
    search_space={"learning_rate": LEARNING_RATE, "momentum": MOMENTUM},
    paper="H. Robbins, S. Monro, 'A Stochastic Approximation Method', Ann. Math. Statist., 1951",
    summary="Stochastic gradient descent with PyTorch's momentum convention.",
)
register(
    "heavy_ball",
    momentum.heavy_ball,
    search_space={"learning_rate": LEARNING_RATE, "momentum": MOMENTUM},
    tuned=("learning_rate", "momentum"),
    paper="B. T. Polyak, 'Some methods of speeding up the convergence of iteration methods', "
    "USSR Comput. Math. Math. Phys., 1964",
    summary="Polyak's heavy-ball momentum.",
)
register(
    "nesterov",
    momentum.nesterov,
    search_space={"learning_rate": LEARNING_RATE, "momentum": MOMENTUM},
    tuned=("learning_rate", "momentum"),
    paper="Y. Nesterov, 'A method for solving the convex programming problem with convergence "
    "rate O(1/k^2)', Soviet Math. Dokl., 1983; I. Sutskever et al., ICML 2013",
    summary="Nesterov's accelerated gradient (Sutskever's velocity form).",
)
register(
    "adagrad",
    adagrad.adagrad,
    search_space={"learning_rate": LEARNING_RATE, "eps": EPS},
    paper="J. Duchi, E. Hazan, Y. Singer, 'Adaptive Subgradient Methods for Online Learning "
    "and Stochastic Optimization', JMLR 2011",
    summary="AdaGrad: per-coordinate steps from the sum of squared gradients.",
)
register(
    "rmsprop",
    rmsprop.rmsprop,
    search_space={"learning_rate": LEARNING_RATE, "decay": Uniform(0.8, 0.999), "eps": EPS,
                  "momentum": MOMENTUM},
    paper="T. Tieleman, G. Hinton, 'Lecture 6.5 - RMSProp', COURSERA: Neural Networks for "
    "Machine Learning, 2012",
    summary="RMSProp (plain, or centered as in Graves 2013), optional momentum.",
)
register(
    "rmsprop_centered",
    rmsprop.rmsprop,
    defaults={"centered": True},
    search_space={"learning_rate": LEARNING_RATE, "decay": Uniform(0.8, 0.999), "eps": EPS,
                  "momentum": MOMENTUM},
    paper="A. Graves, 'Generating Sequences With Recurrent Neural Networks', arXiv:1308.0850, 2013",
    summary="Centered RMSProp: the denominator estimates the variance of the gradient.",
)
register(
    "adadelta",
    adadelta.adadelta,
    search_space={"learning_rate": LogUniform(1e-2, 10.0), "rho": Uniform(0.8, 0.999),
                  "eps": LogUniform(1e-8, 1e-4)},
    paper="M. D. Zeiler, 'ADADELTA: An Adaptive Learning Rate Method', arXiv:1212.5701, 2012",
    summary="AdaDelta: unit-corrected steps without a learning rate.",
)
register(
    "adam",
    adam.adam,
    search_space=ADAM_SPACE,
    paper=KINGMA_BA,
    summary="Adam: bias-corrected first and second moments.",
)
register(
    "adamw",
    adamw.adamw,
    search_space={**ADAM_SPACE, "weight_decay": LogUniform(1e-6, 1e-1),
                  "decay_convention": Choice(("paper", "lr"))},
    tuned=("learning_rate", "weight_decay"),
    static_args=("schedule_multiplier", "mask"),
    paper="I. Loshchilov, F. Hutter, 'Decoupled Weight Decay Regularization', ICLR 2019",
    summary="AdamW: Adam with decoupled weight decay (paper or PyTorch convention).",
)
register(
    "amsgrad",
    amsgrad.amsgrad,
    search_space={**ADAM_SPACE, "bias_correction": Choice(("none", "after_max", "before_max"))},
    paper="S. J. Reddi, S. Kale, S. Kumar, 'On the Convergence of Adam and Beyond', ICLR 2018",
    summary="AMSGrad: Adam with a non-decreasing second moment.",
)
register(
    "adamax",
    adam.adamax,
    search_space=ADAM_SPACE,
    paper=KINGMA_BA + ", Sec. 7.1",
    summary="AdaMax: Adam with the infinity norm.",
)
register(
    "nadam",
    nadam.nadam,
    search_space={**ADAM_SPACE, "momentum_decay": LogUniform(1e-4, 1e-1)},
    paper="T. Dozat, 'Incorporating Nesterov Momentum into Adam', ICLR 2016 Workshop",
    summary="NAdam: Adam with Nesterov momentum and a momentum warm-up schedule.",
)
register(
    "radam",
    radam.radam,
    search_space={**ADAM_SPACE, "threshold": Uniform(4.0, 6.0)},
    paper="L. Liu et al., 'On the Variance of the Adaptive Learning Rate and Beyond', ICLR 2020",
    summary="RAdam: Adam with a rectified adaptive learning rate.",
)

# optax's optimizers, under "optax.<name>" and "optax.contrib.<name>". Those whose
# update needs more than the parameters say so in `extra_args`.
_OPTAX_CORE = (
    "adabelief", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamaxw", "adamw",
    "adan", "amsgrad", "fromage", "lamb", "lars", "lbfgs", "lion", "nadam", "nadamw",
    "noisy_sgd", "novograd", "optimistic_adam_v2", "optimistic_gradient_descent", "polyak_sgd",
    "radam", "rmsprop", "rprop", "sgd", "sign_sgd", "signum", "sm3", "yogi",
)
_OPTAX_CONTRIB = (
    "acprop", "ademamix", "adopt", "cocob", "dadapt_adamw", "dog", "dowg", "madgrad", "momo",
    "momo_adam", "muon", "prodigy", "schedule_free_adamw", "schedule_free_sgd",
    "simplified_ademamix", "sophia",
)
_EXTRA_ARGS = {
    "lbfgs": ("value", "grad", "value_fn"),
    "polyak_sgd": ("value",),
    "momo": ("value",),
    "momo_adam": ("value",),
    "sophia": ("obj_fn",),
}


def _first_reference(factory) -> str:
  """The first entry of the "References:" section of an optax docstring, as one line."""
  doc = inspect.getdoc(factory) or ""
  if "References:" not in doc:
    return ""
  entry = doc.split("References:", 1)[1].strip().split("\n\n")[0]
  entry = re.sub(r"\s+", " ", entry)
  return re.sub(r"`([^`<]*?)\s*<([^>]*)>`_", r"'\1' (\2)", entry)


def _register_optax(module, prefix: str, source: str, names: tuple[str, ...]) -> None:
  for name in names:
    factory = getattr(module, name, None)
    if factory is None:  # absent from this optax version
      continue
    parameters = inspect.signature(factory).parameters
    defaults = {}
    space = {}
    tuned: tuple[str, ...] = ()
    if "key" in parameters and parameters["key"].default is None:
      defaults["key"] = 0  # a seed, so that noise-adding optimizers are reproducible
    if "learning_rate" in parameters:
      if parameters["learning_rate"].default is inspect.Parameter.empty:
        defaults["learning_rate"] = 1e-3
      if parameters["learning_rate"].default is not None:
        space["learning_rate"] = LEARNING_RATE
        tuned = ("learning_rate",)
    static = tuple(
        arg for arg in parameters
        if arg in ("mask", "weight_decay_mask", "obj_fn", "key", "seed", "linesearch",
                   "muon_weight_dimension_numbers", "adam_weight_dimension_numbers",
                   "hutchinson_key", "warmup_steps")
    )
    register(
        f"{prefix}.{name}",
        factory,
        defaults=defaults,
        search_space=space,
        tuned=tuned,
        paper=_first_reference(factory) or f"see the docstring of {prefix}.{name}",
        source=source,
        static_args=static,
        extra_args=_EXTRA_ARGS.get(name, ()),
    )


_register_optax(optax, "optax", "optax", _OPTAX_CORE)
_register_optax(optax.contrib, "optax.contrib", "optax.contrib", _OPTAX_CONTRIB)
