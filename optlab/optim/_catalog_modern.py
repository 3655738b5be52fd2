"""Registers optlab's modern research optimizers (issue 7); imported by optlab.optim."""

from __future__ import annotations
