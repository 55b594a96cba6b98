"""Shared test settings."""

from __future__ import annotations

import importlib

import pytest

# (the module: ``chainrule.core.primitive`` is also the name of a function in chainrule.core)
P = importlib.import_module("chainrule.core.primitive")

#: Test files whose cases check derivative rules: a recorded operation then keeps only what
#: its rule declared (``saves``) even for tiny arrays, so a rule that reads a value it did not
#: declare fails here instead of on large arrays only.
RULE_TABLES = {"test_primitive_table", "test_complex_table", "test_fft", "test_scipy_table",
               "test_conv_table", "test_linalg", "test_numpy_surface"}


@pytest.fixture(autouse=True)
def _rules_read_only_what_they_declare(request, monkeypatch):
    if request.module.__name__.rsplit(".", 1)[-1] in RULE_TABLES:
        monkeypatch.setattr(P, "KEEP_BELOW", 0)
