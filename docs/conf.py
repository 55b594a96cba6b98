"""Sphinx configuration of chainrule's documentation (built offline by ``make docs``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the gallery runs examples with no screen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import chainrule  # noqa: E402

project = "chainrule"
author = "the chainrule developers"
copyright = "2026, the chainrule developers"
release = chainrule.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5",
                    "auto_examples/*.codeobj.json"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

# Examples run in their fast mode: the same code as the full runs, on smaller problems.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # every example runs except the Dask one, which starts a cluster of worker processes
    "filename_pattern": r"/(?!dask_)[^/]+\.py$",
    "ignore_pattern": r"__init__\.py|_backends\.py",
    "reset_argv": lambda gallery_conf, script_vars: ["--fast"],
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "min_reported_time": 3600,
}

# (the gallery's reset_argv is a function: Sphinx cannot cache it, which is fine)
suppress_warnings = ["config.cache"]

html_theme = "pydata_sphinx_theme"
html_title = f"chainrule {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
