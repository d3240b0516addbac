"""Verify suite of the spec rows of one area (``pgmath verify --area core``): one row per
property of every spec whose ``area`` is ``"core"``. Other areas add their spec rows in their
own suite modules with :func:`pgmath.specs.verify_rows`."""

from __future__ import annotations

from pgmath.specs import SPECS, verify_rows
from pgmath.verification import VerifyContext, VerifyRow

__all__ = ["rows"]


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    return verify_rows(SPECS, "core")
