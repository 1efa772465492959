"""Rebuild README.md from its hand-written head, the loss catalogue and the section files in docs/.

    python scripts/build_readme.py

The loss table is generated from the registry (`seglosses losses --markdown`), so it cannot drift
from the code. Section files are included in a fixed order with their headings shifted to fit.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = ROOT / "docs" / "readme_head.md"
SECTIONS = [  # (file, level of its top heading in the README)
    ("readme_losses_notes.md", 2),
    ("readme_boundary.md", 3),
    ("readme_losses_perf.md", 3),
    ("readme_metrics.md", 2),
    ("readme_ranking.md", 2),
    ("readme_bench.md", 2),
    ("readme_data.md", 3),
    ("readme_tail.md", 2),
]


def shift_headings(text: str, top: int) -> str:
    lines, out, fence = text.splitlines(), [], False
    levels = [len(m.group(1)) for m in (re.match(r"^(#+) ", ln) for ln in _outside_fences(lines)) if m]
    delta = top - min(levels) if levels else 0
    for ln in lines:
        if ln.lstrip().startswith("```"):
            fence = not fence
        m = re.match(r"^(#+) ", ln)
        if m and not fence:
            ln = "#" * (len(m.group(1)) + delta) + ln[len(m.group(1)):]
        out.append(ln)
    return "\n".join(out).strip() + "\n"


def _outside_fences(lines):
    fence = False
    for ln in lines:
        if ln.lstrip().startswith("```"):
            fence = not fence
            continue
        if not fence:
            yield ln


def loss_table() -> str:
    from seglosses.registry import run_losses

    class Args:
        pattern, category, markdown = "*", None, True

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        run_losses(Args())
    return buf.getvalue()


def main() -> None:
    table = loss_table().strip()
    parts = [HEAD.read_text()]
    for name, level in SECTIONS:
        parts.append(shift_headings((ROOT / "docs" / name).read_text(), level).replace("<!-- LOSS-TABLE -->", table))
    (ROOT / "README.md").write_text("\n".join(p.strip() + "\n" for p in parts))
    print(f"wrote {ROOT / 'README.md'}")


if __name__ == "__main__":
    main()
