"""Self-contained HTML reports: one file, figures embedded as base64 PNG data URIs, no
scripts or styles from the network, so it opens offline and can be mailed around.

A tiny inline script marks ``<body data-images-ok="loaded/total">`` once the page has loaded,
which lets a headless browser (and the test suite) check that every figure really rendered.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.atomic import atomic_write_text

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #334; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #ccd; padding: .3em .7em; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { font-size: .88em; color: #555; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: .92em; }
td.best { font-weight: bold; background: #e3f1e3; }
.verdict { font-size: 1.05em; background: #f4f6fb; border-left: 4px solid #446;
           padding: .6em 1em; }
footer { margin-top: 2.5em; border-top: 1px solid #ccd; padding-top: .5em; color: #555;
         font-size: .85em; }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: .1em 1em; margin: 0; }
footer dt { font-weight: bold; } footer dd { margin: 0; overflow-wrap: anywhere; }
"""

_CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-ok', ok + '/' + imgs.length);
});
"""


def png_data_uri(source: Any, *, dpi: int = 100, cmap: str = "gray", close: bool = False) -> str:
    """A figure, an image array, PNG bytes or a PNG path as a data URI: the one way sparseae
    embeds a picture in a page, so every report opens offline.

    A 2-D array is written pixel for pixel with ``cmap`` (thumbnail grids); a matplotlib
    figure is rendered at ``dpi`` and closed afterwards with ``close`` (figures made only for
    the page, so many of them do not pile up in pyplot's memory)."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | Path):
        data = Path(source).read_bytes()
    elif isinstance(source, np.ndarray):
        import matplotlib.image

        buf = io.BytesIO()
        matplotlib.image.imsave(buf, source, cmap=cmap, format="png")
        data = buf.getvalue()
    else:  # a matplotlib Figure
        buf = io.BytesIO()
        source.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        data = buf.getvalue()
        if close:
            import matplotlib.pyplot as plt

            plt.close(source)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    else:
        text = str(value)
    return html.escape(text)


class Report:
    """Build a report section by section, then `write` it.

    ``style`` is CSS added after the base style (e.g. the latent dashboard's cards);
    ``check_script=False`` leaves out the image-check script, for pages that promise to
    carry no JavaScript at all; ``provenance`` (name -> text, e.g.
    `sparseae.report.provenance.provenance`) goes in the footer, so a page found later says
    which version, command, seed and machine made it."""

    def __init__(
        self,
        title: str,
        subtitle: str | None = None,
        *,
        style: str = "",
        check_script: bool = True,
        provenance: Mapping[str, str] | None = None,
    ) -> None:
        self.title = title
        self.provenance = dict(provenance or {})
        self.style = style
        self.check_script = check_script
        self.parts: list[str] = []
        if subtitle:
            self.parts.append(f"<p class='note'>{html.escape(subtitle)}</p>")

    def heading(self, text: str) -> Report:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, css_class: str | None = None) -> Report:
        cls = f" class='{css_class}'" if css_class else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def figure(self, source: Any, caption: str = "", alt: str | None = None) -> Report:
        alt_text = html.escape(alt or caption or "figure")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(
            f"<figure><img src='{png_data_uri(source)}' alt='{alt_text}'>{cap}</figure>"
        )
        return self

    def table(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[str],
        headers: Sequence[str] | None = None,
        marks: Mapping[str, Collection[int]] | None = None,
    ) -> Report:
        """``marks``: column -> indices of the rows whose cell is that column's best; those
        cells get ``class='best'`` (bold, tinted) so the eye finds the winners."""
        marks = marks or {}
        head = "".join(f"<th>{html.escape(h)}</th>" for h in (headers or columns))

        def cell(i: int, r: Mapping[str, Any], c: str) -> str:
            cls = " class='best'" if i in marks.get(c, ()) else ""
            return f"<td{cls}>{_cell(r.get(c, ''))}</td>"

        body = "".join(
            "<tr>" + "".join(cell(i, r, c) for c in columns) + "</tr>" for i, r in enumerate(rows)
        )
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def raw_html(self, fragment: str) -> Report:
        """Insert trusted HTML made by sparseae itself (e.g. a latent dashboard's cards)."""
        self.parts.append(fragment)
        return self

    def render(self) -> str:
        script = f"<script>{_CHECK_SCRIPT}</script>" if self.check_script else ""
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}{self.style}</style>"
            f"{script}</head><body>"
            f"<h1>{html.escape(self.title)}</h1>{''.join(self.parts)}"
            f"{self._footer()}</body></html>"
        )

    def _footer(self) -> str:
        from sparseae._version import __version__

        facts = {"sparseae": __version__, **self.provenance}
        items = "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()
        )
        return (
            f"<footer><p>Made by sparseae {html.escape(__version__)}.</p><dl>{items}</dl></footer>"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.render())
        return path
