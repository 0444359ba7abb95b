"""Every relative link in README.md and docs/**/*.md, and every doc path a `dmsec/` docstring or
comment cites (a `.md` file, anything under `docs/`), resolves to a file in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title")
DOC_PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md|docs/[\w./-]*\w)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _relative_links(page: Path) -> list[str]:
    targets = [m.group(1) for m in LINK.finditer(page.read_text())]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:|^#|^//", t)]


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = []
    for page in _pages():
        for target in _relative_links(page):
            path = target.split("#", 1)[0]
            base = ROOT if path.startswith("/") else page.parent
            if path and not (base / path.lstrip("/")).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_every_doc_path_cited_in_the_library_exists():
    broken, seen = [], 0
    for source in sorted((ROOT / "dmsec").rglob("*.py")):
        for number, line in enumerate(source.read_text().splitlines(), 1):
            for cited in DOC_PATH.findall(line):
                seen += 1
                if not ((ROOT / cited).exists() or (source.parent / cited).exists()):
                    broken.append(f"{source.relative_to(ROOT)}:{number} cites {cited}")
    assert not broken, broken
    assert seen >= 5  # the methods and formats pages are cited from their code


def test_the_walkers_see_links_and_citations(tmp_path):
    """The patterns find what they must (a walker that finds nothing would pass vacuously)."""
    page = tmp_path / "p.md"
    page.write_text("[a](docs/x.md) [b](https://e.org) [c](#top) [d](../y.md#part)")
    assert _relative_links(page) == ["docs/x.md", "../y.md#part"]
    cited = DOC_PATH.findall('spec: docs/methods/spot.md, (DESIGN.md, "x") see docs/formats')
    assert cited == ["docs/methods/spot.md", "DESIGN.md", "docs/formats"]
