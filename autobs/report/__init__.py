"""Stage 6, the report: one self-contained HTML page per run directory. Public entry: ``write_report``.

The page's content is computed by ``data.report_data`` from the stage files (tests check it there); the
plots are inline SVG (``plots.py``); the page is a Jinja2 template with autoescaping on, so every string
that came from the user (task file name, search-space name, exception text) is shown as text. No script,
style or font is fetched: the page works offline from a ``file://`` URL.
"""

from __future__ import annotations

from pathlib import Path

from ..units import format_batch_size
from .data import report_data

REPORT_FILE = "report.html"


def render(data: dict) -> str:
    """The HTML page for ``report_data``'s dict."""
    from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

    from .plots import all_plots

    # Autoescape on for the template (its name ends in .j2); ChainableUndefined: a stage file written by an
    # older autobs without some optional key renders that spot empty instead of failing the whole page.
    env = Environment(loader=PackageLoader("autobs.report", ""), autoescape=select_autoescape(["html", "j2"]),
                      undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["batch_size"] = format_batch_size  # as the terminal's summary writes it
    return env.get_template("template.html.j2").render(plots=all_plots(data), **data)


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` in ``run_dir`` (atomically) from whatever stages it holds; return its path."""
    from ..rundir import write_text

    run_dir = Path(run_dir)
    return write_text(run_dir / REPORT_FILE, render(report_data(run_dir)))


__all__ = ["REPORT_FILE", "report_data", "render", "write_report"]
