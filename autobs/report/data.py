"""The report's content, computed from the run directory's JSON apart from any drawing.

``report_data(run_dir)`` returns one plain dict: a section per stage, each with ``available`` and, when
not, ``missing`` (a sentence saying what is missing and why). Tests check this dict; ``render`` only draws
it. Values that are NaN or infinite in the stage files are None here (JSON has no such numbers).
"""

from __future__ import annotations

import math
import platform
import sys
from pathlib import Path
from typing import Any

from ..rundir import read_json
from ..scaling import CONFIRM_EVALS
from ..search import STATUSES
SCHEDULE_POINTS = 200  # points drawn along the recommended schedule


def log_grid(lo: float, hi: float, points: int) -> list[float]:
    """``points`` + 1 values from ``lo`` to ``hi``, evenly spaced in log (where a fitted curve is drawn)."""
    return [lo * (hi / lo) ** (i / points) for i in range(points + 1)] if hi > lo else [lo]


def _load(run_dir: Path, name: str) -> tuple[dict | None, str | None]:
    """A stage file, or None with the reason it is not usable."""
    path = run_dir / name
    if not path.exists():
        return None, f"{name} is not in the run directory: that stage has not run (yet)."
    try:
        return read_json(path), None
    except Exception as exc:  # noqa: BLE001 — a damaged file is reported on the page, not raised
        return None, str(exc)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _missing(reason: str) -> dict:
    return {"available": False, "missing": reason}


def _versions() -> dict[str, str]:
    from .. import __version__

    versions = {"autobs": __version__, "python": platform.python_version()}
    for name in ("torch", "ray", "optuna"):
        module = sys.modules.get(name)
        if module is None:
            try:
                from importlib.metadata import version

                versions[name] = version(name)
            except Exception:  # noqa: BLE001 — not installed: left out
                continue
        else:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def _answer(rec: dict | None, why: str | None, task: dict) -> dict:
    if rec is None:
        return _missing(why or "no recommendation yet.")
    params = rec.get("schedule_params") or {}
    args = "".join(f", {k}={v!r}" for k, v in params.items())
    snippet = "\n".join([
        "import torch",
        "from autobs import lambda_lr  # returns a torch LambdaLR; the formulas are in autobs/schedules.py",
        "",
        f"batch_size = {rec['batch_size']}",
        f"total_steps = {rec['total_steps']}  # {task.get('epochs', '?')} epochs at this batch size",
        f"optimizer = {_optimizer_text(rec.get('optimizer_name'), rec['lr'])}",
        f"scheduler = lambda_lr(optimizer, {rec['schedule']!r}, total_steps, warmup_steps={rec['warmup_steps']}{args})",
        "# in the loop: optimizer.step(); scheduler.step()",
    ])
    ttt = rec.get("time_to_target_s")
    sentence = (f"Train with batch size {rec['batch_size']} at peak LR {rec['lr']:.3g}, a {rec['schedule']} "
                f"schedule and {rec['warmup_steps']} warmup steps"
                + (f": it is expected to reach validation {rec['metric']} {rec['target']:.4g} in {ttt:.3g} s "
                   "of training on this device." if _finite(ttt) and _finite(rec.get("target")) else "."))
    return {"available": True, "sentence": sentence, "snippet": snippet, "values": rec}


def _optimizer_text(name: str | None, lr: float) -> str:
    if name and name.isidentifier():
        return f"torch.optim.{name}(model.parameters(), lr={lr:.4g})  # your task's optimizer: keep its other arguments"
    return f"make_optimizer(model.parameters(), lr={lr:.4g})  # the optimizer(params, lr) of your model.py"


def _memory(memory: dict | None, why: str | None) -> dict:
    if memory is None:
        return _missing(why)
    probes = [p for p in memory.get("probes", [])]
    return {
        "available": True, "max_batch_size": memory["max_batch_size"], "device": memory.get("device"),
        "memory_limit_bytes": memory.get("memory_limit_bytes"), "budget_bytes": memory.get("budget_bytes"),
        "headroom": memory.get("headroom"), "reason": memory.get("reason"), "notes": memory.get("notes", []),
        "probes": [{"batch_size": p["batch_size"], "fits": p["fits"], "peak_bytes": p.get("peak_bytes"),
                    "samples_per_s": p.get("samples_per_s"), "oom": p.get("oom", False)} for p in probes],
    }


def _lr_range(lr_range: dict | None, why: str | None) -> dict:
    if lr_range is None:
        return _missing(why)
    # A sweep whose loss did not fall beyond batch noise suggests nothing (``lr_range.descent_z``); its note says so.
    curves = [{"batch_size": c["batch_size"], "lrs": c["lrs"], "smoothed": c["smoothed"],
               "suggestion": c.get("suggestion") if c.get("readable", True) else None,
               "interval": c.get("interval") if c.get("readable", True) else None,
               "notes": [f"batch {c['batch_size']}: {n}" for n in c.get("notes", [])]}  # one section holds every sweep
              for c in lr_range.get("curves", [])]
    return {"available": True, "curves": curves, "rule": lr_range.get("rule"),
            "lr_scaling_exponent": lr_range.get("lr_scaling_exponent"),
            "lr_scaling_exponent_stderr": lr_range.get("lr_scaling_exponent_stderr")}


def _noise(noise: dict | None, why: str | None) -> dict:
    if noise is None:
        return _missing(why)
    return {"available": True, "b_simple": noise.get("b_simple"), "spread": noise.get("b_simple_spread"),
            "small_batch": noise.get("small_batch"), "big_batch": noise.get("big_batch"), "lr": noise.get("lr"),
            "points": [{"step": p["step"], "b_simple": p.get("b_simple")} for p in noise.get("points", [])],
            "notes": noise.get("notes", [])}


def _trials(trials: dict | None, why: str | None) -> dict:
    if trials is None:
        return _missing(why)
    rows = []
    for t in trials.get("trials", []):
        c = t.get("config", {})
        rows.append({"number": t.get("number"), "batch_size": c.get("batch_size"), "lr": c.get("lr"),
                     "schedule": c.get("schedule"), "schedule_params": c.get("schedule_params") or {},
                     "warmup_fraction": c.get("warmup_fraction"), "status": t.get("status"),
                     "stopped_at_target": bool(t.get("stopped_at_target")), "rerun_of": t.get("rerun_of"),
                     "val_metric": t.get("val_metric") if _finite(t.get("val_metric")) else None,
                     "samples": t.get("samples"), "wall_s": t.get("wall_s"),
                     "error": (t.get("error") or "").strip().splitlines()[-1:] or None})
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    section = {"available": bool(rows), "rows": rows, "counts": counts, "metric": trials.get("metric"),
               "mode": trials.get("mode"), "space": (trials.get("space") or {}).get("name"),
               "sampler": trials.get("sampler"), "target": trials.get("target"),
               "stopped_at_target": sum(r["stopped_at_target"] for r in rows), "confirm_evals": CONFIRM_EVALS,
               "reruns": sum(r["rerun_of"] is not None for r in rows)}
    if not rows:
        section["missing"] = "the search recorded no trial."
    elif not any(r["val_metric"] is not None and r["status"] in ("completed", "stopped") for r in rows):
        section["warning"] = ("no trial produced a usable result: every one diverged, ran out of memory or "
                              "failed (see the status and error columns).")
    return section


def _scaling(scaling: dict | None, why: str | None) -> dict:
    if scaling is None:
        return _missing(why)
    fit = scaling.get("fit")
    per_batch = [r for r in scaling.get("per_batch", [])]
    section = {
        "available": True, "target": scaling.get("target"), "target_rule": scaling.get("target_rule"),
        "metric": scaling.get("metric"), "per_batch": per_batch, "fit": fit,
        "b_noise_interval": scaling.get("b_noise_interval"), "batch_size_interval": scaling.get("batch_size_interval"),
        "candidates": scaling.get("candidates", []), "batch_size": scaling.get("batch_size"), "lr": scaling.get("lr"),
        "lr_fit": scaling.get("lr_fit"), "notes": scaling.get("notes", []),
        # What this run's points are, for the text to say (sizes re-measured by reruns; reads the fit took as bounds)
        "rerun_sizes": [r["batch_size"] for r in per_batch if r.get("replicates")],
        "bound_sizes": [b for b, u in zip((fit or {}).get("batch_sizes", []), (fit or {}).get("upper_bounds", []))
                        if u],
    }
    if fit:
        sizes = [c["batch_size"] for c in section["candidates"]] or [r["batch_size"] for r in per_batch]
        lo, hi = min(sizes), max(sizes)
        grid = log_grid(lo, hi, 60)
        section["fit_curve"] = [{"batch_size": b, "steps": fit["s_min"] * (1 + fit["b_noise"] / b),
                                 "samples": b * fit["s_min"] * (1 + fit["b_noise"] / b)} for b in grid]
    else:
        section["fit_missing"] = ("S(B) was not fitted: fewer than two batch sizes reached the target. "
                                  + " ".join(section["notes"]))
    return section


def _schedule(rec: dict | None) -> dict:
    if rec is None:
        return _missing("no recommendation yet.")
    from ..schedules import lr_factor

    total, warmup = rec["total_steps"], rec["warmup_steps"]
    steps = sorted({round(total * i / SCHEDULE_POINTS) for i in range(SCHEDULE_POINTS + 1)} | {warmup})
    points = [{"step": s, "lr": rec["lr"] * lr_factor(rec["schedule"], s, total, warmup,
                                                      **(rec.get("schedule_params") or {}))} for s in steps]
    return {"available": True, "points": points, "total_steps": total, "warmup_steps": warmup,
            "schedule": rec["schedule"], "lr": rec["lr"]}


def report_data(run_dir: str | Path) -> dict[str, Any]:
    """Everything the report shows, from the stage files in ``run_dir``; missing stages say why."""
    run_dir = Path(run_dir)
    loaded = {name: _load(run_dir, f"{name}.json") for name in
              ("memory", "lr_range", "noise", "trials", "scaling", "recommendation")}
    task = next((d["task"] for d, _ in loaded.values() if d and isinstance(d.get("task"), dict)), {})
    rec, rec_why = loaded["recommendation"]
    memory, _ = loaded["memory"]
    return {
        "task": task,
        "answer": _answer(rec, rec_why, task),
        "memory": _memory(*loaded["memory"]),
        "lr_range": _lr_range(*loaded["lr_range"]),
        "noise": _noise(*loaded["noise"]),
        "trials": _trials(*loaded["trials"]),
        "scaling": _scaling(*loaded["scaling"]),
        "schedule": _schedule(rec),
        "footer": {"device": (memory or {}).get("device"), "versions": _versions(),
                   "settings": {name: d.get("settings") for name, (d, _) in loaded.items() if d and d.get("settings")},
                   "stage_seconds": (rec or {}).get("stage_seconds", {}), "run_dir": str(run_dir)},
    }
