"""chainrule ships its type information (PEP 561): the ``py.typed`` marker and its packaging."""

import sys
from pathlib import Path

import pytest

import chainrule

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_py_typed_marker_is_in_the_package():
    marker = Path(chainrule.__file__).resolve().parent / "py.typed"
    assert marker.is_file(), f"{marker} is missing: type checkers would treat chainrule as untyped"


def test_py_typed_marker_is_packaged():
    if sys.version_info < (3, 11) or not PYPROJECT.is_file():
        pytest.skip("needs tomllib (Python 3.11+) and a source checkout")
    import tomllib

    config = tomllib.loads(PYPROJECT.read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["chainrule"]
    assert "Typing :: Typed" in config["project"]["classifiers"]
    assert config["tool"]["mypy"]["files"] == ["src/chainrule"]
