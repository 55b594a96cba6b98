"""The cases of every rule-table test module, for the rule columns that walk them all."""

from __future__ import annotations

import importlib

import pytest


def cases_of(module: str) -> list:
    """The ``CASES`` of another table test module (none when its optional package is absent)."""
    try:
        return list(importlib.import_module(module).CASES)
    except (ImportError, pytest.skip.Exception):
        return []


OTHER_TABLES = [(m, c) for m in ("test_conv_table", "test_scipy_table", "test_complex_table",
                                 "test_fft") for c in cases_of(m)]
