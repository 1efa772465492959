"""The documentation: generated parts up to date, links that resolve, a README that stays a guide.

* ``README.md`` and the ``<!-- BEGIN generated -->`` blocks of ``docs/*.md`` must equal what
  ``scripts/build_readme.py`` produces (the loss tables come from the registry, so a loss added,
  renamed or re-documented without rerunning the script fails here, with the diff).
* Every relative link in ``README.md`` and ``docs/*.md`` points to an existing file, and a
  ``#anchor`` to an existing heading; every ``docs/*.md`` named in the source code exists.
* The README stays a guide: a size budget, no Markdown table inside a code fence (it would render as
  raw pipes), no issue references, and its Python examples run.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_BUDGET = 25 * 1024  # bytes; details belong in docs/*.md


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_readme", ROOT / "scripts" / "build_readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_readme", module)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


# ----------------------------------------------------------------------------------------------
# Markdown helpers (outside code fences only)
# ----------------------------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str):
    """(line number, line) of every line outside fenced code blocks, inline code spans blanked."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, re.sub(r"`+[^`]*`+", lambda c: "`" * len(c.group(0)), line)


def fenced_lines(text: str):
    """(line number, line) of every line inside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is not None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def heading_anchors(path: Path) -> set:
    """Anchors of every heading of ``path`` (headings read with their code spans)."""
    seen: dict = {}
    out = set()
    fence = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1) == fence else fence)
            continue
        if fence is not None:
            continue
        h = HEADING.match(line)
        if h:
            base = slug(h.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list:
    """``"file:line: target (why)"`` for every relative link of ``path`` that does not resolve."""
    problems = []
    text = path.read_text(encoding="utf-8")
    for number, line in prose_lines(text):
        targets = INLINE_LINK.findall(line) + IMAGE_LINK.findall(line)
        m = REF_LINK.match(line)
        if m:
            targets.append(m.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}: {target}"
            if not dest.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest):
                problems.append(f"{where} (no heading with anchor #{anchor} in {dest.name})")
    return problems


# ----------------------------------------------------------------------------------------------
# generated parts
# ----------------------------------------------------------------------------------------------


def test_generated_readme_and_docs_are_up_to_date():
    diffs = builder.check()
    assert not diffs, "run `python scripts/build_readme.py`; these files differ from what it generates:\n" + "\n".join(diffs)


def test_every_registered_loss_is_in_the_readme_table_and_the_catalogue():
    import seglosses

    readme = README.read_text(encoding="utf-8")
    catalogue = (ROOT / "docs" / "losses.md").read_text(encoding="utf-8")
    for name in seglosses.list_losses():
        assert f"| `{name}` |" in readme, name
        assert f"| `{name}` |" in catalogue, name


def _copy_sources(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(README, root / "README.md")
    return root


def test_check_reports_a_hand_edited_readme_with_a_diff(tmp_path, capsys):
    root = _copy_sources(tmp_path)
    assert builder.check(root) == []
    (root / "README.md").write_text(README.read_text(encoding="utf-8").replace("## Losses", "## Loss functions", 1))
    diffs = builder.check(root)
    assert len(diffs) == 1 and "README.md (checked in)" in diffs[0]
    assert "-## Loss functions" in diffs[0] and "+## Losses" in diffs[0]
    assert builder.main(["--check"], root=root) == 1
    assert "+## Losses" in capsys.readouterr().out
    assert builder.main([], root=root) == 0  # rewrites it
    assert builder.check(root) == []


def test_check_reports_a_stale_generated_block_in_docs(tmp_path):
    root = _copy_sources(tmp_path)
    page = root / "docs" / "losses.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| `dice` |", "| `dice_old` |", 1))
    diffs = builder.check(root)
    assert len(diffs) == 1 and "docs/losses.md" in diffs[0] and "dice_old" in diffs[0]


def test_a_readme_part_edit_changes_the_readme(tmp_path):
    root = _copy_sources(tmp_path)
    part = root / "docs" / "readme" / builder.README_PARTS[0]
    part.write_text(part.read_text(encoding="utf-8") + "\nOne more sentence.\n")
    diffs = builder.check(root)
    assert len(diffs) == 1 and "+One more sentence." in diffs[0]


def test_unknown_generated_block_is_an_error_naming_it(tmp_path):
    root = _copy_sources(tmp_path)
    part = root / "docs" / "readme" / builder.README_PARTS[0]
    part.write_text(part.read_text(encoding="utf-8") + "\n<!-- generated: loss-tabel -->\n")
    with pytest.raises(KeyError, match="loss-tabel.*loss-table"):
        builder.check(root)


def test_every_readme_part_exists_and_every_part_is_listed():
    parts_dir = ROOT / builder.PARTS_DIR
    assert all((parts_dir / name).is_file() for name in builder.README_PARTS)
    assert sorted(p.name for p in parts_dir.glob("*.md")) == sorted(builder.README_PARTS), "a part in docs/readme/ is not in README_PARTS"


# ----------------------------------------------------------------------------------------------
# links
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_link_checker_finds_broken_files_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md) [ok anchor](other.md#a-code-heading) [self](#page) [web](https://example.org/x)\n"
        "[missing](nothere.md) [bad anchor](other.md#nope)\n"
        "```\n[in a fence](ignored.md)\n```\n"
        "`[in code](ignored.md)`\n"
        "[ref]: missing_ref.md\n"
    )
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "nothere.md (no such file)" in problems[0]
    assert "other.md#nope (no heading" in problems[1]
    assert "missing_ref.md (no such file)" in problems[2]


def test_docs_named_in_the_code_exist():
    named = set()
    for base in ("src", "scripts", "benchmarks", "tests"):
        for path in (ROOT / base).rglob("*.py"):
            for m in re.finditer(r"\bdocs/([\w./-]+\.md)\b", path.read_text(encoding="utf-8")):
                named.add((m.group(1), str(path.relative_to(ROOT))))
    missing = sorted(f"{src}: docs/{name}" for name, src in named if not (ROOT / "docs" / name).exists())
    assert missing == []


# ----------------------------------------------------------------------------------------------
# the README is a guide
# ----------------------------------------------------------------------------------------------


def test_readme_stays_a_guide():
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert size <= README_BUDGET, f"README.md is {size} bytes, budget {README_BUDGET}: move details to docs/*.md"
    issue_refs = [line for _, line in prose_lines(text) if re.search(r"\bissues?\s*#?\d+", line, re.I)]
    assert issue_refs == [], "the README names issues; say what is true instead"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_markdown_table_inside_a_code_fence(path):
    rows = [f"{number}: {line}" for number, line in fenced_lines(path.read_text(encoding="utf-8")) if re.match(r"^\s*\|.*\|\s*$", line)]
    assert rows == [], "a table inside ``` renders as raw pipes: take it out of the fence"


def _python_blocks(text: str) -> list:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_readme_has_python_examples():
    assert len(_python_blocks(README.read_text(encoding="utf-8"))) >= 3


@pytest.mark.parametrize("index", range(len(_python_blocks(README.read_text(encoding="utf-8")))))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _python_blocks(README.read_text(encoding="utf-8"))[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": f"readme_example_{index}"})
