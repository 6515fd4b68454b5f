"""Inline SVG plots of the report data (``data.py``), drawn with matplotlib's SVG backend.

Each function takes one section of ``report_data`` and returns an ``<svg>`` element as text, or None when
the section has nothing to draw. Text stays text (``svg.fonttype: none``: the browser's own sans-serif, no
embedded or fetched font), and each figure gets its own id salt so that several SVGs on one page never
share an element id. No user-supplied string is drawn: labels are fixed or the metric name, which the
task contract limits to "loss" or "accuracy".
"""

from __future__ import annotations

import io
import math
from typing import Any

from .data import log_grid

WIDTH, HEIGHT = 6.4, 3.4  # inches at 72 dpi in SVG: 460 × 245 px
LR_COLORMAP = "viridis"


def _figure():
    from matplotlib.figure import Figure  # a bare Figure: no pyplot, no GUI backend, nothing global

    fig = Figure(figsize=(WIDTH, HEIGHT))
    return fig, fig.add_subplot()


def _plain_log_labels(fig) -> None:
    """Log-axis tick labels as plain text ("16", "0.001") instead of matplotlib's default TeX-like "2^4",
    "10^-3": a batch size reads as itself, and the mathtext parser these need was over half the report's time
    (1.5 s of 3 s for the 8 figures of a digits run, on 2 CPU cores)."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):  # keeps LogFormatter's choice of which ticks get a label; only the text differs
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                base = axis.get_transform().base
                axis.set_major_formatter(Plain(base=base))
                axis.set_minor_formatter(Plain(base=base, labelOnlyBase=False))


def _svg(fig, salt: str) -> str:
    import matplotlib

    _plain_log_labels(fig)
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt, "font.size": 9}):
        fig.tight_layout()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: inline SVG in HTML needs neither
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if 0 <= start < end:  # and matplotlib's RDF block (creator, date): nothing a reader sees
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def _finish(fig, ax, salt: str, xlabel: str, ylabel: str, *, log2_x: bool = True, log_y: bool = False,
            legend: bool = True) -> str:
    """Scales, axis labels (with units) and legend, then the SVG text."""
    if log2_x:
        ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize=7)
    return _svg(fig, salt)


def _ok(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def memory_plot(memory: dict) -> str | None:
    probes = [p for p in memory.get("probes", []) if p["peak_bytes"] is not None]
    if not memory.get("available") or not probes:
        return None
    fig, ax = _figure()
    mib = 2**20
    ax.plot([p["batch_size"] for p in probes], [p["peak_bytes"] / mib for p in probes], "o-", color="C0",
            label="peak memory of a step")
    if _ok(memory.get("budget_bytes")):
        ax.axhline(memory["budget_bytes"] / mib, color="C3", ls="--", lw=1, label="budget (limit − headroom)")
    if _ok(memory.get("memory_limit_bytes")):
        ax.axhline(memory["memory_limit_bytes"] / mib, color="C3", lw=1, label="memory limit")
    ax.axvline(memory["max_batch_size"], color="k", ls=":", lw=1, label="max_batch_size")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")  # a small model's peaks sit decades below a CPU's RAM limit: both stay visible
    ax.set_xlabel("batch size (samples)")
    ax.set_ylabel("peak memory (MiB)")
    rates = [(p["batch_size"], p["samples_per_s"]) for p in memory["probes"] if _ok(p["samples_per_s"])]
    if rates:
        twin = ax.twinx()
        twin.plot(*zip(*rates), "s--", color="C2", label="throughput")
        twin.set_ylabel("throughput (samples/s)", color="C2")
    ax.legend(loc="center left", fontsize=7)
    return _svg(fig, "memory")


def lr_range_plot(lr_range: dict) -> str | None:
    if not lr_range.get("available") or not lr_range["curves"]:
        return None
    fig, ax = _figure()
    low, start = math.inf, -math.inf
    for i, c in enumerate(lr_range["curves"]):
        pts = [(lr, s) for lr, s in zip(c["lrs"], c["smoothed"]) if _ok(lr) and _ok(s)]
        if not pts:
            continue
        low, start = min(low, min(s for _, s in pts)), max(start, pts[0][1])
        ax.plot(*zip(*pts), color=f"C{i}", label=f"batch {c['batch_size']}")
        if _ok(c.get("suggestion")):
            ax.axvline(c["suggestion"], color=f"C{i}", ls="--", lw=1)
        if c.get("interval") and all(_ok(v) for v in c["interval"]):
            ax.axvspan(*c["interval"], color=f"C{i}", alpha=0.08)
    if math.isfinite(low) and start > low:
        # The sweep ends where the loss blows up; showing all of that would flatten the part that matters.
        ax.set_ylim(low - 0.1 * (start - low), start + 0.5 * (start - low))
    ax.set_xscale("log")
    ax.legend(fontsize=7, title="dashed: suggestion; band: interval", title_fontsize=7)
    return _finish(fig, ax, "lr_range", "learning rate", "training loss (smoothed)", log2_x=False, legend=False)


def lr_vs_batch_plot(lr_range: dict, scaling: dict) -> str | None:
    measured = [(r["batch_size"], r["lr"]) for r in scaling.get("per_batch", []) if _ok(r.get("lr"))]
    suggested = [(c["batch_size"], c["suggestion"]) for c in lr_range.get("curves", []) if _ok(c.get("suggestion"))]
    if not measured and not suggested:
        return None
    fig, ax = _figure()
    if measured:
        ax.plot(*zip(*measured), "o", color="C0", label="best trial's LR at each batch size")
    if suggested:
        ax.plot(*zip(*suggested), "^", color="C1", label="range-test suggestion")
    fit = scaling.get("lr_fit")
    if fit:
        sizes = [b for b, _ in measured + suggested]
        lo, hi = min(sizes), max(sizes)
        grid = log_grid(lo, hi, 40)
        ax.plot(grid, [fit["lr_ref"] * (b / fit["batch_ref"]) ** fit["alpha"] for b in grid], "-", color="C0",
                label=f"fit: lr ∝ B^{fit['alpha']:.2f}")
    if _ok(scaling.get("batch_size")):
        ax.axvline(scaling["batch_size"], color="k", ls=":", lw=1, label="recommended batch size")
        if _ok(scaling.get("lr")):  # the centre of its LR basin: not the best trial's LR when a neighbour tied it
            ax.plot([scaling["batch_size"]], [scaling["lr"]], "*", color="k", ms=9, label="recommended LR")
    return _finish(fig, ax, "lr_vs_batch", "batch size (samples)", "peak learning rate", log_y=True)


def noise_plot(noise: dict) -> str | None:
    pts = [(p["step"], p["b_simple"]) for p in noise.get("points", []) if _ok(p.get("b_simple"))]
    if not noise.get("available") or not pts:
        return None
    fig, ax = _figure()
    ax.plot(*zip(*pts), "o-", color="C4", label="B_simple (running estimate)")
    return _finish(fig, ax, "noise", "training step of the measuring run", "B_simple (samples)", log2_x=False)


def trials_plot(trials: dict) -> str | None:
    rows = [r for r in trials.get("rows", []) if _ok(r.get("val_metric")) and _ok(r.get("lr"))]
    if not rows:
        return None
    import matplotlib.colors as mcolors

    fig, ax = _figure()
    lrs = [r["lr"] for r in rows]
    norm = mcolors.LogNorm(min(lrs), max(lrs)) if max(lrs) > min(lrs) else None
    points = ax.scatter([r["batch_size"] for r in rows], [r["val_metric"] for r in rows], c=lrs, norm=norm,
                        cmap=LR_COLORMAP, s=[30 if r["status"] == "completed" else 12 for r in rows],
                        edgecolors="none")
    fig.colorbar(points, ax=ax, label="peak learning rate")
    ax.set_title("large dots: ran the whole run; small: stopped early", fontsize=8)
    return _finish(fig, ax, "trials", "batch size (samples)", f"last validation {trials.get('metric') or 'metric'}",
                   legend=False)


def steps_plot(scaling: dict) -> str | None:
    pts = [(r["batch_size"], r["steps_to_target"]) for r in scaling.get("per_batch", []) if _ok(r.get("steps_to_target"))]
    if not scaling.get("available") or not pts:
        return None
    fit = scaling.get("fit") or {}
    bounds = {b for b, u in zip(fit.get("batch_sizes", []), fit.get("upper_bounds", [])) if u}
    fig, ax = _figure()
    ax.plot(*zip(*[(b, s) for b, s in pts if b not in bounds]), "o", color="C0",
            label="steps to target (reruns' median; the search's read where none)")
    if bounds:  # one untuned trial: the fit reads it as an upper bound (scaling.fit_steps_to_target)
        ax.plot(*zip(*[(b, s) for b, s in pts if b in bounds]), "v", color="C0",
                label="one default-config trial: an upper bound")
    reads = [(r["batch_size"], r["search_steps_to_target"]) for r in scaling.get("per_batch", [])
             if r.get("replicates") and _ok(r.get("search_steps_to_target"))]
    if reads:  # the rerun trial's own read in the search: where the luck of the best single run shows
        ax.plot(*zip(*reads), "o", mfc="none", color="C0", label="the same trial's read in the search")
    ax.plot([b for b, _ in pts], [b * s for b, s in pts], "s", color="C1", label="samples to target")
    curve = scaling.get("fit_curve")
    if curve:
        fit = scaling["fit"]
        ax.plot([c["batch_size"] for c in curve], [c["steps"] for c in curve], "-", color="C0",
                label=f"S(B) = {fit['s_min']:.3g}·(1 + {fit['b_noise']:.3g}/B)")
        ax.plot([c["batch_size"] for c in curve], [c["samples"] for c in curve], "-", color="C1", label="E(B) = B·S(B)")
        ax.axvline(fit["b_noise"], color="C3", ls="--", lw=1, label="B_noise (critical batch size)")
        interval = scaling.get("b_noise_interval")
        if interval and all(_ok(v) for v in interval):
            ax.axvspan(*interval, color="C3", alpha=0.08)
    return _finish(fig, ax, "steps", "batch size (samples)", "steps / samples to target", log_y=True)


def time_plot(scaling: dict) -> str | None:
    cands = [c for c in scaling.get("candidates", []) if _ok(c.get("time_to_target_s"))]
    if not cands:
        return None
    fig, ax = _figure()
    ax.plot([c["batch_size"] for c in cands], [c["time_to_target_s"] for c in cands], "o-", color="C0",
            label="S(B) × t(B)")
    pick = next((c for c in cands if c["batch_size"] == scaling.get("batch_size")), None)
    if pick:
        ax.plot([pick["batch_size"]], [pick["time_to_target_s"]], "*", ms=14, color="C3", label="recommended")
    interval = scaling.get("batch_size_interval")
    if interval and all(_ok(v) for v in interval) and interval[1] > interval[0]:
        ax.axvspan(*interval, color="C3", alpha=0.08, label="90% interval of the pick")
    return _finish(fig, ax, "time", "batch size (samples)", "time to target (s)")


def schedule_plot(schedule: dict) -> str | None:
    if not schedule.get("available"):
        return None
    fig, ax = _figure()
    pts = schedule["points"]
    ax.plot([p["step"] for p in pts], [p["lr"] for p in pts], "-", color="C0")
    if schedule["warmup_steps"]:
        ax.axvline(schedule["warmup_steps"], color="k", ls=":", lw=1, label="end of warmup")
    return _finish(fig, ax, "schedule", "optimizer step", "learning rate", log2_x=False,
                   legend=bool(schedule["warmup_steps"]))


def all_plots(data: dict) -> dict[str, str | None]:
    return {
        "memory": memory_plot(data["memory"]),
        "lr_range": lr_range_plot(data["lr_range"]),
        "lr_vs_batch": lr_vs_batch_plot(data["lr_range"], data["scaling"]),
        "noise": noise_plot(data["noise"]),
        "trials": trials_plot(data["trials"]),
        "steps": steps_plot(data["scaling"]),
        "time": time_plot(data["scaling"]),
        "schedule": schedule_plot(data["schedule"]),
    }
