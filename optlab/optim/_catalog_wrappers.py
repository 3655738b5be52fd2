"""Registers optlab's wrappers research optimizers (issue 7); imported by optlab.optim."""

from __future__ import annotations
