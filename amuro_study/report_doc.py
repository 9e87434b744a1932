"""The report as a document: summary cards and sections, written as Markdown and as HTML.

:mod:`amuro_study.report` fills a :class:`Document` (every body is Markdown); this module writes
it twice from the same content:

* :meth:`Document.markdown` gives ``report.md``: plain CommonMark + GitHub tables, readable in a
  terminal and rendered by code hosts (links between sections use GitHub's heading anchors, see
  :func:`anchor`);
* :meth:`Document.html` gives ``report.html``: each Markdown body rendered by the ``markdown``
  package (``tables`` extension), laid out as a page: the summary cards first, a table of
  contents beside the sections.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field

import markdown as md_lib
import numpy as np
import pandas as pd

_MD_EXTENSIONS = ["tables", "sane_lists"]
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


# ============================================================================ Markdown pieces
def anchor(title: str) -> str:
    """The id GitHub gives a heading ``title`` (lower case; characters other than letters,
    digits, spaces, ``-`` and ``_`` dropped; each space becomes ``-``). Hand-written because
    ``markdown``'s own toc slugify collapses runs of separators and so differs from GitHub's;
    the HTML page uses the same id, so one link works in both."""
    text = title.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


_MD_SPECIAL = re.compile(r"([\\`*\[\]])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_text(value: object) -> str:
    """``value`` as literal Markdown text, the same in CommonMark and in the ``markdown``
    package: characters that would start emphasis, code or a link are backslash-escaped (an
    ``_`` only where it could open or close emphasis, so ``mnli_matched`` stays readable in a
    terminal), ``<`` becomes ``&lt;`` (the ``markdown`` package has no ``\\<`` escape)."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), str(value)).replace("<", "&lt;")


def fmt(value: object, digits: int = 3, *, signed: bool = False) -> str:
    """A table cell: floats to ``digits`` decimals (``signed`` adds ``+``), missing -> empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return md_text(value)


def md_table(frame: pd.DataFrame, digits: int = 3, *, signed: bool = False,
             markdown_cells: bool = False) -> str:
    """A GitHub-flavoured Markdown table of ``frame``: floats to ``digits`` decimals, every
    other value shown literally (escaped), or, with ``markdown_cells``, string cells taken as
    already formatted Markdown (the summary cards' ``+0.1 [...]`` and `` `code` `` cells)."""
    cols = [_cell(md_text(c)) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [v if markdown_cells and isinstance(v, str) else fmt(v, digits, signed=signed)
                 for v in row]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """One table cell: a ``|`` that is not already escaped is escaped (GFM tables and the
    ``tables`` extension both read ``\\|`` as a literal bar), no line breaks."""
    return re.sub(r"(?<!\\)\|", r"\\|", text.replace("\n", " "))


def link(text: str, target: str) -> str:
    """A Markdown link (``target``: a path relative to the report, or ``#anchor``)."""
    return f"[{md_text(text)}]({target})"


# ============================================================================ the document
@dataclass
class Card:
    """One headline in the summary: a title, a short Markdown body, the section it summarises."""

    title: str
    body: str
    section: str  # title of the section with the details
    wide: bool = False  # a whole row of the HTML summary (wide tables)


@dataclass
class Section:
    """A report section: a ``##`` heading and a Markdown body."""

    title: str
    body: str

    @property
    def anchor(self) -> str:
        """The heading's id (see :func:`anchor`)."""
        return anchor(self.title)


@dataclass
class Document:
    """The whole report: title, lead paragraph(s), summary cards, sections."""

    title: str
    lead: str = ""
    cards: list[Card] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # headlines this study cannot give
    sections: list[Section] = field(default_factory=list)
    #: display width (CSS px) of images by their path, so that every figure's text shows at
    #: the same size (see :func:`amuro_study.plots.display_width`)
    image_widths: dict[str, int] = field(default_factory=dict)

    SUMMARY = "Summary"
    CONTENTS = "Contents"

    def markdown(self) -> str:
        """``report.md``: title, lead, summary (one ``###`` per card), contents, sections."""
        out = [f"# {md_text(self.title)}\n", self.lead + "\n" if self.lead else ""]
        out.append(f"## {self.SUMMARY}\n")
        for card in self.cards:
            out.append(f"### {card.title}\n\n{card.body.strip()}\n\n"
                       f"Details: {link(card.section, '#' + anchor(card.section))}\n")
        if self.missing:
            out.append("Not in this study: " + "; ".join(self.missing) + ".\n")
        out.append(f"## {self.CONTENTS}\n\n" + "\n".join(
            f"- {link(s.title, '#' + s.anchor)}" for s in self.sections) + "\n")
        out += [f"## {s.title}\n\n{s.body.strip()}\n" for s in self.sections]
        return "\n".join(x for x in out if x)

    def html(self) -> str:
        """``report.html``: the same content, each body rendered by ``markdown``."""
        cards = "".join(
            f'<section class="card{" wide" if c.wide else ""}" id="{anchor(c.title)}">'
            f'<h3><a href="#{anchor(c.section)}" title="Details: {html.escape(c.section)}">'
            f"{html.escape(c.title)}</a></h3>{self._render(c.body)}</section>"
            for c in self.cards)
        cards += self._figure_card()
        missing = ('<p class="missing">Not in this study: '
                   f'{_render_inline("; ".join(self.missing))}.</p>' if self.missing else "")
        toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>'
                      for s in self.sections)
        sections = "".join(
            f'<section class="part" id="{s.anchor}"><h2>{html.escape(s.title)}</h2>'
            f"{self._render(s.body)}</section>" for s in self.sections)
        return (
            "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f'<header><h1>{html.escape(self.title)}</h1>{self._render(self.lead)}</header>'
            f'<div class="layout"><nav aria-label="{self.CONTENTS}"><h2>{self.CONTENTS}</h2>'
            f'<ol><li><a href="#{anchor(self.SUMMARY)}">{self.SUMMARY}</a></li>{toc}</ol></nav>'
            f'<main><section id="{anchor(self.SUMMARY)}" class="summary">'
            f'<h2>{self.SUMMARY}</h2><div class="cards">{cards}</div>{missing}</section>'
            f"{sections}</main></div></body></html>\n"
        )

    def _figure_card(self) -> str:
        """HTML only: a card of thumbnails of every figure, each linking to its section."""
        thumbs = []
        for sec in self.sections:
            for alt, src in _IMAGE.findall(sec.body):
                label = sec.title.split(":")[0]
                thumbs.append(f'<a href="#{sec.anchor}" title="{html.escape(sec.title)}">'
                              f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
                              f"<span>{html.escape(label)}</span></a>")
        if not thumbs:
            return ""
        return ('<section class="card" id="figures"><h3>Figures</h3>'
                f'<div class="thumbs">{"".join(thumbs)}</div></section>')

    def _render(self, text: str) -> str:
        """One Markdown body as HTML; images get their display width."""
        out = _render(text)
        for src, width in self.image_widths.items():
            out = out.replace(f'src="{html.escape(src)}"',
                              f'src="{html.escape(src)}" style="width:{width}px"')
        return out


def _render(text: str) -> str:
    return md_lib.markdown(text, extensions=_MD_EXTENSIONS, output_format="html") if text else ""


def _render_inline(text: str) -> str:
    out = _render(text)
    return out[3:-4] if out.startswith("<p>") and out.endswith("</p>") else out


_CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#dde1e8;--bg:#f6f7f9;--accent:#2b5fb4}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:var(--fg);background:#fff}
header{padding:14px 28px 6px;border-bottom:1px solid var(--line);background:var(--bg)}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:var(--muted);font-size:13.5px}
header ul{margin:4px 0 6px;padding-left:18px;color:var(--muted);font-size:13.5px}
.layout{display:flex;align-items:flex-start;max-width:1500px}
nav{position:sticky;top:0;flex:0 0 190px;padding:14px 8px 14px 20px;font-size:13px;
 max-height:100vh;overflow:auto}
nav h2{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
 margin:4px 0 6px}
nav ol{margin:0;padding-left:18px}nav li{margin:3px 0}
main{flex:1;min-width:0;padding:8px 28px 40px 12px}
h2{font-size:19px;margin:22px 0 8px;padding-bottom:3px;border-bottom:1px solid var(--line)}
.summary h2{margin-top:10px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:#fff}
.card.wide{grid-column:1/-1}
.card h3{margin:0 0 2px;font-size:15px}
.card h3 a{color:inherit}
.card p{margin:4px 0;font-size:13px}
.missing{color:var(--muted);font-size:13px}
.thumbs{display:flex;flex-wrap:wrap;gap:8px;margin-top:6px}
.thumbs a{display:flex;flex-direction:column;align-items:center;font-size:12px;width:105px}
.thumbs img{width:105px;height:84px;object-fit:contain;background:#fff}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px;display:block;
 overflow-x:auto;max-width:100%}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;white-space:nowrap}
th{background:var(--bg);font-weight:600}
tbody tr:nth-child(even){background:#fafbfc}
td:not(:first-child){font-variant-numeric:tabular-nums}
code{font-size:12.5px;background:var(--bg);padding:0 3px;border-radius:3px}
img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
em{color:var(--muted)}
@media (max-width:900px){.layout{display:block}nav{position:static;padding:8px 20px}}
"""
