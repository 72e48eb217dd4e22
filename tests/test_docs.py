"""The documentation: generated pages match the code, links resolve, nothing links outside."""

from __future__ import annotations

import difflib
import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 200

# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _repo_files() -> list[Path]:
    """The files git tracks or would add (so a new page is checked before its first commit)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if line and (ROOT / line).is_file()]


@pytest.mark.parametrize("name", ["configuration.md", "kpi-catalog.md"])
def test_generated_page_is_current(name: str) -> None:
    generator = _generator()
    pages = {path.name: text for path, text in generator.render().items()}
    assert name in pages
    expected = pages[name]
    path = DOCS / name
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    if committed != expected:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile=f"docs/{name} (committed)",
                tofile=f"docs/{name} (from the code)",
            )
        )
        pytest.fail(
            f"docs/{name} is out of date with the code; run `python docs/generate.py` "
            f"and commit the result.\n{diff}",
            pytrace=False,
        )


def test_every_generated_page_says_so() -> None:
    for path in _generator().render():
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert "generated from" in first and "do not edit" in first, path


def test_every_setting_has_a_description() -> None:
    from service.settings import Settings

    missing = [name for name, info in Settings.model_fields.items() if not info.description]
    assert not missing, f"settings without Field(description=...): {missing}"


def test_every_kpi_is_in_the_catalog_page() -> None:
    from kpi import CATALOG

    text = (DOCS / "kpi-catalog.md").read_text(encoding="utf-8")
    for spec in CATALOG:
        assert f"| `{spec.key}` | {spec.name_ja} | {spec.name_en} |" in text, spec.key


def test_relative_links_point_at_files() -> None:
    broken: list[str] = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # an absolute URL (checked below) or an anchor on the same page
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a page: lower case, punctuation dropped, - for spaces."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip()
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def test_anchors_of_relative_links_exist() -> None:
    broken: list[str] = []
    for page in _pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or "#" not in target:
                continue
            path, anchor = target.split("#", 1)
            linked = (page.parent / path) if path else page
            if linked.suffix == ".md" and linked.exists() and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to headings that do not exist:\n" + "\n".join(broken)


def test_readme_and_docs_link_nowhere_outside_the_repository() -> None:
    outside: list[str] = []
    for page in _pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith(
                ("http://127.0.0.1", "http://localhost")
            ):
                outside.append(f"{page.relative_to(ROOT)}: {target}")
                continue
            if target.startswith("#") or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            resolved = (page.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(ROOT):
                outside.append(f"{page.relative_to(ROOT)}: {target}")
    assert not outside, "links outside the repository:\n" + "\n".join(outside)


def test_nothing_links_to_the_contract_outside_the_repository() -> None:
    # Built from parts so that this file does not match itself.
    forbidden = re.compile(r"\.\./shared|" + "SPEC" + r"\.md")
    found: list[str] = []
    for path in _repo_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (the screenshot)
        for number, line in enumerate(text.splitlines(), start=1):
            if forbidden.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "files that point at the contract outside the repository:\n" + "\n".join(
        found
    )


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
