"""The :class:`Report` builder: an ordered list of HTML blocks written as one file.

Every block is escaped text, an HTML table made from a DataFrame, or a ``<figure id=...>``
holding one inline SVG. :meth:`Report.note` states why a piece is missing; a report is never
refused for a missing piece. The page carries a Content-Security-Policy that forbids every
fetch and every script, so viewing it needs no network and runs nothing.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""What the page may load: its own inline styles and data: images, nothing else."""

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;
max-width:1300px;color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0;display:block;overflow-x:auto;
max-width:100%}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr.baseline td{background:#fafaf0;color:#555}
.note{background:#fff7e0;border-left:4px solid #e0b000;padding:6px 10px}
.meta{color:#555;font-size:.9em}code{background:#f3f3f3;padding:1px 4px}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444;max-width:1000px}
figure svg{max-width:100%;height:auto}
"""

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def strip_svg_prolog(svg: str) -> str:
    """The ``<svg ...>...</svg>`` element of an SVG document (XML prolog and DOCTYPE
    removed), ready to inline; ``ValueError`` if there is none."""
    start = svg.find("<svg")
    end = svg.rfind("</svg>")
    if start < 0 or end < 0:
        raise ValueError("not an SVG document: no <svg> element")
    return svg[start : end + len("</svg>")]


@dataclass
class Report:
    """An HTML report under construction. ``figure_ids``: the ids of its figures in order
    (what a browser test expects to find); ``notes``: the sentences about omitted pieces."""

    title: str
    subtitle: str | None = None
    blocks: list[str] = field(default_factory=list)
    figure_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Report:
        if level not in (2, 3, 4):
            raise ValueError(f"heading level must be 2, 3 or 4, not {level}")
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, *, css: str | None = None) -> Report:
        """Escaped text; ``code`` spans may be written between backticks."""
        escaped = html.escape(text)
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        cls = f' class="{css}"' if css else ""
        self.blocks.append(f"<p{cls}>{escaped}</p>")
        return self

    def note(self, text: str) -> Report:
        """A piece left out, and why (shown highlighted, listed in :attr:`notes`)."""
        self.notes.append(text)
        return self.paragraph(text, css="note")

    def table(
        self,
        df: pd.DataFrame,
        *,
        caption: str | None = None,
        digits: int = 3,
        baseline_rows: set[str] | frozenset[str] = frozenset(),
        index: bool = False,
    ) -> Report:
        """``df`` as an HTML table (floats with ``digits`` decimals, NaN empty); rows whose
        first cell is in ``baseline_rows`` are shaded."""
        frame = df.reset_index() if index else df
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        rows = []
        for values in frame.itertuples(index=False):
            cls = ' class="baseline"' if str(values[0]) in baseline_rows else ""
            cells = "".join(f"<td>{_cell(v, digits)}</td>" for v in values)
            rows.append(f"<tr{cls}>{cells}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(
            f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        return self

    def figure(self, fig_id: str, svg: str, caption: str) -> Report:
        """One inline SVG (a whole SVG document is fine) in ``<figure id=fig_id>``; ids must
        be unique and HTML-safe (letter, then letters, digits, ``-``, ``_``)."""
        if not _ID.match(fig_id):
            raise ValueError(f"figure id must match {_ID.pattern}, got {fig_id!r}")
        if fig_id in self.figure_ids:
            raise ValueError(f"duplicate figure id {fig_id!r}")
        self.figure_ids.append(fig_id)
        self.blocks.append(
            f'<figure id="{fig_id}">{strip_svg_prolog(svg)}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return self

    def to_html(self) -> str:
        sub = f'<p class="meta">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{sub}\n"
            + "\n".join(self.blocks)
            + "\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page (UTF-8) to ``path``, creating its folder; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path
