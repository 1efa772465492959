"""The report's building blocks: :class:`Block` and :class:`Cell`, rendered to HTML and Markdown.

A report section (:mod:`seglosses.bench.report`) returns a list of blocks -- headings,
paragraphs, notes, error blocks, tables, images -- and this module renders them once for each
format: a self-contained HTML page (inline CSS, figures embedded as base64 PNG, no JavaScript)
and Markdown that refers to the PNG files. Inline ``**bold**`` and ```code``` in texts work in
both.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["Cell", "Block", "ReportSectionWarning", "html_document", "render_html_body", "render_markdown"]


class ReportSectionWarning(UserWarning):
    """A report section (or one of its figures) could not be produced as intended; the report
    says so where it happened."""




@dataclass
class Cell:
    text: str
    bold: bool = False
    underline: bool = False
    align: str = "right"


@dataclass
class Block:
    kind: str  # "h1", "h2", "h3", "p", "table", "img", "note", "error"
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[Cell]] = ()
    path: Optional[Path] = None


def _inline_html(text: str) -> str:
    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    return s


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;border-bottom:2px solid #4C72B0;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ddd}
h3{font-size:1.1em;margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0 1.2em 0;font-size:.86em}
th,td{border:1px solid #ccc;padding:3px 7px}
th{background:#f0f3f8}
td.l{text-align:left}td.r{text-align:right}
tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
figure{margin:0 0 1.2em 0}
figcaption{font-size:.85em;color:#555}
.note{font-size:.88em;color:#555;background:#f7f7f2;border-left:3px solid #c9b458;padding:.4em .8em}
code{background:#f3f3f3;padding:0 .2em}
.error{color:#8a1c1c;background:#fdecea;border-left:4px solid #c0392b;padding:.5em .9em;font-weight:600}
"""


def html_document(body: str, title: str) -> str:
    """A self-contained HTML page (inline CSS) around ``body``."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    return "\n".join(head + ([body] if body else []) + ["</body></html>"])


def render_html_body(blocks: Sequence[Block]) -> str:
    """The HTML of ``blocks`` (no page around them)."""
    parts: List[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            anchor = re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-")
            parts.append(f'<{b.kind} id="{anchor}">{_inline_html(b.text)}</{b.kind}>')
        elif b.kind == "p":
            parts.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "note":
            parts.append(f'<p class="note">{_inline_html(b.text)}</p>')
        elif b.kind == "error":
            parts.append(f'<div class="error" role="alert">Error: {html.escape(b.text)}</div>')
        elif b.kind == "table":
            parts.append(
                "<table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
                + "</tr></thead><tbody>"
            )
            for row in b.rows:
                cells = []
                for c in row:
                    t = html.escape(c.text)
                    if c.bold:
                        t = f"<b>{t}</b>"
                    if c.underline:
                        t = f"<u>{t}</u>"
                    cells.append(f'<td class="{"l" if c.align == "left" else "r"}">{t}</td>')
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode(Path(b.path).read_bytes()).decode("ascii")
            alt = html.escape(b.text or Path(b.path).stem)
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"><figcaption>{_inline_html(b.text)}</figcaption></figure>'
            )
    return "\n".join(parts)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: Sequence[Block], out: Path) -> str:
    lines: List[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "note":
            lines += ["> " + b.text, ""]
        elif b.kind == "error":
            lines += ["> **Error:** " + b.text, ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(_md_escape(h) for h in b.header) + " |")
            lines.append(
                "|" + "|".join("---" if c.align == "left" else "---:" for c in b.rows[0]) + "|"
                if b.rows
                else "|" + "---|" * len(b.header)
            )
            for row in b.rows:
                cells = []
                for c in row:
                    t = _md_escape(c.text)
                    if c.bold and t not in ("", "—"):
                        t = f"**{t}**"
                    if c.underline and t not in ("", "—"):
                        t = f"<ins>{t}</ins>"
                    cells.append(t)
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif b.kind == "img":
            rel = Path(b.path).relative_to(out).as_posix()
            lines += [f"![{b.text}]({rel})", "", f"*{b.text}*", ""]
    return "\n".join(lines)
