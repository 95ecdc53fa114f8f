"""Presentation: one self-contained HTML file with inline SVG figures.

The report package takes pandas frames, numpy arrays and plain dicts (never a store or a
model) and writes ONE HTML file that needs no network to view: every figure is an inline
``<svg>`` drawn by matplotlib (Agg backend, ``format="svg"``), every table plain HTML, the
style inline, and a Content-Security-Policy forbids fetching anything (no scripts either).

Why matplotlib and not plotly: the page needs no JavaScript at all (plotly inlines ~3.5 MB of
it), so the file is small, renders with scripts disabled, prints, and diffs as text; and a
report has nothing to gain from interactivity that a table beside the figure does not give.

Modules: :mod:`.html` (the :class:`Report` builder: headings, paragraphs, notes for omitted
pieces, tables, figures), :mod:`.figures` (the figures, each a function returning SVG text),
:mod:`.pool` (the pool report: ranking, task map, gain heatmaps, predictor-vs-gold table and
scatter, each piece omitted with a sentence when its input is missing), :mod:`.browser` (find
Debian's chromium, render headless: DOM dump and screenshot). Depends only on
:mod:`taskscout.evaluation`.
"""

from taskscout.report.html import Report
from taskscout.report.pool import PoolReportInputs, pool_report

__all__ = ["PoolReportInputs", "Report", "pool_report"]
