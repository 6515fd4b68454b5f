"""The HTML report: its data, partial and failed runs, hostile strings, and a real browser."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

import autobs
from autobs.cli import main as cli_main
from autobs.report import render, report_data, write_report
from autobs.rundir import write_json
from autobs.schedules import lr_factor

from .test_pipeline import DIGITS, _fake_stages

HOSTILE = '<script>alert("x")</script>\' onload="alert(1)'


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished run directory (real probe, range test and noise on digits; a synthetic search)."""
    out = tmp_path_factory.mktemp("report") / "run"
    with pytest.MonkeyPatch.context() as mp:
        _fake_stages(mp, [])
        autobs.tune(DIGITS, budget=600, out=out, progress=False)
    return out


def test_report_data_matches_the_recommendation(run):
    data = report_data(run)
    rec = json.loads((run / "recommendation.json").read_text())
    assert all(data[s]["available"] for s in ("answer", "memory", "lr_range", "noise", "trials", "scaling", "schedule"))
    assert f"batch_size = {rec['batch_size']}" in data["answer"]["snippet"]
    assert f"torch.optim.SGD(model.parameters(), lr={rec['lr']:.4g})" in data["answer"]["snippet"]
    assert f"warmup_steps={rec['warmup_steps']}" in data["answer"]["snippet"]
    # the schedule drawn is the one recommended: warmup from 0, never above the peak, over the planned run
    points = data["schedule"]["points"]
    assert points[0]["step"] == 0 and points[-1]["step"] == rec["total_steps"]
    for p in points[:: len(points) // 10]:
        assert p["lr"] == pytest.approx(rec["lr"] * lr_factor(rec["schedule"], p["step"], rec["total_steps"],
                                                              rec["warmup_steps"], **rec["schedule_params"]))
    assert max(p["lr"] for p in points) <= rec["lr"] * (1 + 1e-9)
    # the pick drawn is the candidate on the time-to-target curve with the least expected regret (section 7)
    cands = data["scaling"]["candidates"]
    assert min(cands, key=lambda c: c["expected_regret"])["batch_size"] == rec["batch_size"]
    curve = data["scaling"]["fit_curve"]
    fit = data["scaling"]["fit"]
    assert curve[0]["steps"] == pytest.approx(fit["s_min"] * (1 + fit["b_noise"] / curve[0]["batch_size"]))
    assert data["memory"]["max_batch_size"] == rec["max_batch_size"]
    assert f"Largest batch size: {rec['max_batch_size']} ({rec['max_batch_size_limit']})" in render(data)
    assert data["trials"]["counts"]["completed"] == len(data["trials"]["rows"])
    # the search's reruns of its leaders are told apart from the trials the sampler proposed
    recorded = json.loads((run / "trials.json").read_text())["trials"]
    assert data["trials"]["reruns"] == sum(t.get("rerun_of") is not None for t in recorded) > 0
    assert "rerun of #0" in render(data)


def test_page_is_self_contained_and_small(run):
    path = write_report(run)
    html = path.read_text()
    assert path.stat().st_size < 2 * 2**20
    assert html.count("<svg") == 8  # every plot drawn
    # nothing to fetch: no linked file, no source attribute, no imported style, no link off the page (url(#id)
    # references stay inside the page)
    # (namespace declarations such as xmlns="http://www.w3.org/2000/svg" are names, never fetched)
    for external in ("<link", "src=", "@import", "url(http", "url(//", 'href="http', "<metadata>"):
        assert external not in html
    # batch-size axes are ticked with the sizes themselves ("16", "32"), not as powers ("2" with a raised "4")
    assert all(f">{b}</text>" in html for b in (16, 32, 64, 128))
    assert ">recommended LR</text>" in html  # marked on the LR-vs-batch plot: it can differ from the best trial's
    assert "<tspan" not in html


def test_partial_run_renders_and_says_what_is_missing(run, tmp_path):
    shutil.copy(run / "memory.json", tmp_path / "memory.json")
    html = render(report_data(tmp_path))
    assert html.count("<svg") == 1  # the memory plot only
    assert "lr_range.json is not in the run directory" in html
    assert "trials.json is not in the run directory" in html
    assert "recommendation.json is not in the run directory" in html


def test_each_range_sweeps_notes_name_its_batch_size(run, tmp_path):
    # The sweeps' notes stand together under one plot: without the batch size, two sweeps' "no descent" notes
    # read as one said twice.
    lr_range = json.loads((run / "lr_range.json").read_text())
    sizes = [c["batch_size"] for c in lr_range["curves"]]
    for c in lr_range["curves"]:
        c["notes"] = [f"a note of the sweep at {c['batch_size']}"]
    write_json(tmp_path / "lr_range.json", lr_range)
    html = render(report_data(tmp_path))
    for b in sizes:
        assert f"batch {b}: a note of the sweep at {b}" in html


def test_the_fits_text_says_which_sizes_were_rerun_and_which_reads_are_bounds(run, tmp_path):
    def section_6(folder) -> str:  # its text, whitespace as a reader sees it
        html = render(report_data(folder))
        return " ".join(html[html.index("6. Steps and samples"):html.index("7. Time to target")].split())

    text = section_6(run)  # the stand-in search reran a trial at each of its four sizes
    assert "reran its two leading trials with fresh seeds (batch sizes 16, 32, 64, 128)" in text
    assert "elsewhere" not in text and "▼" not in text
    for name in ("memory.json", "trials.json", "recommendation.json"):
        shutil.copy(run / name, tmp_path / name)
    scaling = json.loads((run / "scaling.json").read_text())
    for row in scaling["per_batch"]:
        row["replicates"] = row["replicates"] if row["batch_size"] == 64 else 0
    scaling["fit"]["upper_bounds"] = [b == 16 for b in scaling["fit"]["batch_sizes"]]
    write_json(tmp_path / "scaling.json", scaling)
    text = section_6(tmp_path)
    assert "(batch size 64), the better one's rerun median" in text
    assert "elsewhere the fewest among the search's trials there" in text and "(▼, batch size 16)" in text
    for row in scaling["per_batch"]:
        row["replicates"] = 0
    write_json(tmp_path / "scaling.json", scaling)
    assert "no size was rerun with fresh seeds" in section_6(tmp_path)


def test_all_trials_failed_and_nan_values_still_render(run, tmp_path):
    shutil.copy(run / "memory.json", tmp_path / "memory.json")
    failed = [{"number": i, "status": s, "val_metric": math.nan, "config": {"batch_size": 16, "lr": 0.1,
               "schedule": "constant", "schedule_params": {}, "warmup_fraction": 0.0}, "samples": 0,
               "error": "Traceback ...\nRuntimeError: boom"} for i, s in enumerate(("failed", "oom", "diverged", "hung"))]
    write_json(tmp_path / "trials.json", {"metric": "accuracy", "trials": failed})
    rec = json.loads((run / "recommendation.json").read_text())
    rec.update(critical_batch_size=math.nan, critical_batch_size_interval=None, time_to_target_s=math.inf)
    write_json(tmp_path / "recommendation.json", rec)
    html = render(report_data(tmp_path))
    assert "no trial produced a usable result" in html
    assert "4 trials (1 diverged, 1 oom, 1 failed, 1 hung)" in html  # every status counted, a hung trial too
    assert "RuntimeError: boom" in html
    assert "Critical batch size (B_noise):\nnot fitted" in html or "not fitted" in html


def test_hostile_strings_are_shown_as_text(run, tmp_path):
    for name in ("memory.json", "trials.json", "recommendation.json"):
        data = json.loads((run / name).read_text())
        data["task"] = {**data.get("task", {}), "name": HOSTILE, "path": f"/tmp/{HOSTILE}.py"}
        if name == "trials.json":
            data["space"] = {"name": HOSTILE}
            data["trials"][0].update(status="failed", error=f"Traceback\nValueError: {HOSTILE}")
        write_json(tmp_path / name, data)
    html = render(report_data(tmp_path))
    assert html.count("<script>") == 1  # the page's own sorting script, nothing injected
    assert 'onload="alert' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_report_opens_offline_in_headless_chromium(run, tmp_path):
    if not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright import sync_api
    path = write_report(run)
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        first = page.locator("#trial-table tbody tr").first.inner_text()
        page.locator("#trial-table th").nth(1).click()  # sort by batch size, twice: the order changes
        page.locator("#trial-table th").nth(1).click()
        sorted_first = page.locator("#trial-table tbody tr").first.inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert requests == [path.as_uri()]  # the page itself and nothing else
    assert first != sorted_first
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_command_rewrites_the_page_and_refuses_a_directory_without_stages(run, tmp_path, capsys):
    (run / "report.html").unlink(missing_ok=True)
    assert cli_main(["report", str(run)]) == 0
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert cli_main(["report", str(tmp_path)]) == 2
    assert "nothing to report" in capsys.readouterr().err
