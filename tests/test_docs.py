"""The documentation's Python snippets run as written (each page in order, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text())


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_python_blocks_run(page: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)):
        try:
            exec(compile(block, f"{page.name} block {i}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page.name} python block {i} failed: {exc!r}\n{block}") from exc


def test_the_guides_exist() -> None:
    for name in ("getting_started", "coming_from_pytorch", "coming_from_jax",
                 "coming_from_autograd", "how_it_works", "adding_a_primitive",
                 "adding_a_transform", "backends", "architecture", "complex_numbers", "fft",
                 "hooks_and_anomaly", "no_escape", "sparse", "scipy"):
        assert (DOCS / f"{name}.md").exists(), name
