"""report.md and report.html from the results of ``squeezelab compare`` (the dict its results.json holds).

Both are built from the same pieces: the setup lines, a table whose columns say how to print their values,
the claims with their verdicts, the plots and the notes. report.html is one self-contained file (inline CSS,
every plot embedded as a base64 data URI, no scripts, no links), so it opens offline, travels as a single
attachment and reads on a phone. Every string in it comes from results and is escaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from pathlib import Path

from squeezelab.errors import ConfigError
from squeezelab.io import atomic_write
from squeezelab.report.text import human_bytes, human_count

DASH = "–"  # an en dash: a value that was not measured

_FORMATS: dict[str, Callable[[float], str]] = {
    "count": lambda v: f"{round(v):,}",
    "int": lambda v: f"{round(v)}",
    "float2": lambda v: f"{v:.2f}",
    "float4": lambda v: f"{v:.4f}",
    "percent": lambda v: f"{v:.1%}",
    "bytes": human_bytes,
    "si": human_count,
    "ratio": lambda v: f"{v:.1f}x",
}

_SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))

# CSS classes of a verdict's badge; any other verdict (not measurable here) keeps the plain badge's grey.
# The verdicts a claim can get, as the report shows them.
HOLDS, FAILS, UNMEASURABLE = "holds", "does not hold", "not measurable here"
_BADGE_CLASSES = {HOLDS: "badge holds", FAILS: "badge fails"}


def format_value(value: object, fmt: str) -> str:
    """One table cell's text: ``fmt`` is a column's format; None (not measured) is an en dash."""
    if value is None:
        return DASH
    if fmt == "text":
        return str(value)
    if fmt not in _FORMATS:
        raise ConfigError(f"unknown column format {fmt!r}; expected text or one of {', '.join(_FORMATS)}")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # a NaN is a finding (a diverged run), not a gap, and round() cannot take it
    return _FORMATS[fmt](value)


def render_report(results: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (atomically) and return their paths.

    Plot paths in ``results`` are relative to ``out_dir``; a plot whose file cannot be read is left out of both
    reports with a note saying so.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [(plot, _read_plot(out_dir, plot)) for plot in results.get("plots") or []]
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write(md_path, _markdown(results, plots))
    atomic_write(html_path, _html(results, plots))
    return md_path, html_path


def _read_plot(out_dir: Path, plot: dict) -> bytes | str:
    """The plot's PNG bytes, or the reason it could not be read."""
    try:
        return (out_dir / plot["path"]).read_bytes()
    except OSError as e:
        return f"Plot “{plot.get('title') or plot['path']}” left out: {plot['path']} could not be read ({e.strerror})."


def _facts(results: dict) -> list[tuple[str, str]]:
    """The setup as (label, text) lines: data, test set, machine and budget, each only where it is known."""
    data, machine, budget = (results.get(key) or {} for key in ("data", "machine", "budget"))
    splits = [f"{data[key]:,} {name}" for key, name in _SPLITS if data.get(key) is not None]
    data_parts = [data.get("spec")]
    if data.get("image_shape"):
        data_parts.append("x".join(map(str, data["image_shape"])) + " images")
    data_parts.append(", ".join(splits))
    machine_parts = [machine.get("description")]
    if machine.get("device"):
        machine_parts.append(f"device {machine['device']}")
    if machine.get("matmul_peak_gflops") is not None:
        machine_parts.append(f"matrix multiply peak {machine['matmul_peak_gflops']:.0f} GFLOP/s")
    budget_parts = []
    if budget.get("epochs") is not None:
        budget_parts.append(f"{budget['epochs']} epochs")
    if budget.get("max_time_s") is not None:
        budget_parts.append(f"at most {budget['max_time_s']:g} s of training")
    lines = {
        "Data": data_parts,
        "Test set": [data.get("test_source")],
        "Machine": machine_parts,
        "Budget": budget_parts,
    }
    return [(label, "; ".join(p for p in parts if p)) for label, parts in lines.items() if any(parts)]


def _header(column: dict) -> tuple[str, str]:
    return column.get("label") or column["key"], column.get("unit") or ""


def _is_number(column: dict) -> bool:
    return column.get("format", "text") != "text"


def _failed(row: dict) -> bool:
    return row.get("status") == "failed"


def _cells(row: dict, columns: list[dict]) -> list[str]:
    """The row's formatted values; a failed run measured nothing, so only its name (first column) is kept."""
    cells = [format_value(row.get(c["key"]), c.get("format", "text")) for c in columns]
    return cells[:1] + [DASH] * (len(cells) - 1) if _failed(row) else cells


# Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def _md_table(columns: list[dict], rows: list[dict]) -> list[str]:
    headers = [f"{label} ({unit})" if unit else label for label, unit in map(_header, columns)]
    lines = ["| " + " | ".join(map(_md_cell, headers)) + " |"]
    lines.append("|" + "|".join("---:" if _is_number(c) else "---" for c in columns) + "|")
    for row in rows:
        cells = _cells(row, columns)
        if _failed(row):
            cells[0] += " **failed**" + (f": {row['error']}" if row.get("error") else "")
        lines.append("| " + " | ".join(map(_md_cell, cells)) + " |")
    return lines


def _markdown(results: dict, plots: list[tuple[dict, bytes | str]]) -> str:
    lines = [f"# {results.get('title') or 'squeezelab report'}", ""]
    if results.get("summary"):
        lines += [results["summary"], ""]
    lines += [f"- **{label}:** {text}" for label, text in _facts(results)]
    lines += ["", "## Results", "", *_md_table(results.get("columns") or [], results.get("rows") or [])]
    if results.get("claims"):
        lines += ["", "## Claims", ""]
        for i, claim in enumerate(results["claims"], start=1):
            verdict, text = claim.get("verdict") or DASH, claim.get("claim") or ""
            evidence = f" Evidence: {claim['evidence']}" if claim.get("evidence") else ""
            lines.append(f"{claim.get('id', i)}. **{verdict}**: {text}{evidence}")
    if plots:
        lines += ["", "## Plots"]
        for plot, png in plots:
            title = plot.get("title") or plot["path"]
            if isinstance(png, str):
                lines += ["", f"*{png}*"]
                continue
            lines += ["", f"![{title}]({plot['path']})", "", f"**{title}.** {plot.get('caption') or ''}".rstrip()]
    if results.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in results["notes"])]
    return "\n".join(lines) + "\n"


# HTML

_CSS = """
body { margin: 0; color: #1f2328; background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0.5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.75rem; padding-bottom: 0.25rem; border-bottom: 1px solid #d0d7de; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.4rem 0.6rem; border-bottom: 1px solid #d0d7de; text-align: left; vertical-align: top;
  white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
th small { display: block; font-weight: normal; color: #59636e; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:last-child td { border-bottom: 0; }
tr.failed td { background: #ffebe9; }
tr.failed td:first-child { box-shadow: inset 4px 0 #cf222e; }
.error { min-width: 10rem; max-width: 18rem; margin-top: 0.25rem; white-space: normal; overflow-wrap: anywhere;
  font-size: 0.85em; color: #82071e; }
.badge { display: inline-block; padding: 0 0.5rem; border-radius: 1rem; color: #fff; font-size: 0.8rem;
  font-weight: 600; white-space: nowrap; background: #6e7781; }
.holds { background: #1a7f37; }
.fails { background: #cf222e; }
ol { padding-left: 1.5rem; }
ol li { margin-bottom: 0.75rem; }
.evidence { display: block; color: #59636e; font-size: 0.9em; }
figure { margin: 1.5rem 0; }
img { max-width: 100%; height: auto; }
figcaption, .missing { color: #59636e; font-size: 0.9em; }
@media (max-width: 30rem) { dl { grid-template-columns: 1fr; gap: 0; } dd { margin-bottom: 0.5rem; } }
"""


def _html_table(columns: list[dict], rows: list[dict]) -> list[str]:
    def attrs(column: dict) -> str:
        return ' class="num"' if _is_number(column) else ""

    def header(column: dict) -> str:
        label, unit = _header(column)
        small = f"<small>{html.escape(unit)}</small>" if unit else ""
        return f"<th{attrs(column)}>{html.escape(label)}{small}</th>"

    lines = ['<div class="scroll"><table>', f"<thead><tr>{''.join(map(header, columns))}</tr></thead>", "<tbody>"]
    for row in rows:
        cells = [html.escape(cell) for cell in _cells(row, columns)]
        if _failed(row):
            cells[0] += ' <span class="badge fails">failed</span>'
            if row.get("error"):
                cells[0] += f'<div class="error">{html.escape(str(row["error"]))}</div>'
        tds = "".join(f"<td{attrs(c)}>{cell}</td>" for c, cell in zip(columns, cells, strict=True))
        lines.append(f'<tr class="failed">{tds}</tr>' if _failed(row) else f"<tr>{tds}</tr>")
    lines.append("</tbody></table></div>")
    return lines


def _html(results: dict, plots: list[tuple[dict, bytes | str]]) -> str:
    e = html.escape
    title = e(results.get("title") or "squeezelab report")
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style></head>",
        f"<body><main><h1>{title}</h1>",
    ]
    if results.get("summary"):
        lines.append(f"<p>{e(results['summary'])}</p>")
    if facts := _facts(results):
        lines.append("<dl>" + "".join(f"<dt>{e(label)}</dt><dd>{e(text)}</dd>" for label, text in facts) + "</dl>")
    lines += ["<h2>Results</h2>", *_html_table(results.get("columns") or [], results.get("rows") or [])]
    if results.get("claims"):
        lines += ["<h2>Claims</h2>", "<ol>"]
        for claim in results["claims"]:
            verdict = claim.get("verdict") or DASH
            badge = f'<span class="{_BADGE_CLASSES.get(verdict, "badge")}">{e(verdict)}</span>'
            evidence = f'<span class="evidence">{e(claim["evidence"])}</span>' if claim.get("evidence") else ""
            number = f' value="{claim["id"]}"' if isinstance(claim.get("id"), int) else ""
            lines.append(f"<li{number}>{badge} {e(str(claim.get('claim') or ''))}{evidence}</li>")
        lines.append("</ol>")
    if plots:
        lines.append("<h2>Plots</h2>")
        for plot, png in plots:
            if isinstance(png, str):
                lines.append(f'<p class="missing">{e(png)}</p>')
                continue
            plot_title = e(plot.get("title") or plot["path"])
            source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            caption = f" {e(plot['caption'])}" if plot.get("caption") else ""
            lines.append(
                f'<figure><img src="{source}" alt="{plot_title}">'
                f"<figcaption><strong>{plot_title}.</strong>{caption}</figcaption></figure>"
            )
    if results.get("notes"):
        lines += ["<h2>Notes</h2>", "<ul>", *(f"<li>{e(str(note))}</li>" for note in results["notes"]), "</ul>"]
    lines.append("</main></body></html>")
    return "\n".join(lines) + "\n"
