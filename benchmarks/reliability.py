"""Count the fault and security cases autobs is tested against, by category, with their outcomes.

Runs the tests that exercise faults (they live with the code they cover; see each category's selector),
reads pytest's JUnit XML, and writes reports/reliability.md: cases tried and passed per category, and the
command to rerun each category.

    python benchmarks/reliability.py
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# category -> (what is expected, pytest selectors)
CATEGORIES = {
    "Bad task files (every case of the contract)": (
        "a TaskError naming file, name and fix; `autobs check` exits 2 without a traceback",
        ["tests/test_task.py", "tests/test_cli.py"]),
    "Bad search spaces": (
        "SearchSpaceError naming file, key and line",
        ["tests/test_search.py::test_bad_space_file_names_file_key_and_line"]),
    "Bad settings (budget, device, memory limit, target, sampler, space, trial time limit)": (
        "one-paragraph error, exit 2, no traceback, before any stage runs",
        ["tests/test_faults.py::test_bad_settings_are_one_paragraph_errors_before_any_work",
         "tests/test_pipeline.py::test_too_small_a_budget_is_a_clear_error"]),
    "Trials that raise, diverge, run out of memory, hang, report then crash; failures in a row": (
        "recorded with the right status, the search goes on; N in a row stop it with a message",
        ["tests/test_search.py::test_search_records_completed_diverged_oom_and_failed_trials_and_goes_on",
         "tests/test_search.py::test_hung_trial_is_ended_after_the_time_limit_and_the_search_goes_on",
         "tests/test_search.py::test_trial_that_reported_and_then_crashed_is_failed_not_complete",
         "tests/test_search.py::test_failures_in_a_row_stop_the_search_with_a_message"]),
    "A model that learns nothing (a data bug, a task it cannot learn in its run), a range test with no descent, "
    "a first round that diverges": (
        "a sweep with no descent beyond batch noise (and 1% of the loss) suggests no LR; none at any size is an "
        "error in `autobs lr-find` and the optimizer's default LR in `autobs recommend`; a first round no better "
        "than the luckiest untrained model, or diverged at every size, is a clear error naming the diverged LRs, "
        "not a recommendation read off noise; the LR ladder never steps past a divergence",
        ["tests/test_lr_range.py::test_a_task_that_learns_nothing_is_a_clear_error_not_a_suggestion",
         "tests/test_lr_range.py::test_descent_is_told_from_batch_noise",
         "tests/test_lr_range.py::test_recommend_starts_from_the_optimizers_default_lr_when_no_sweep_reads_one",
         "tests/test_scaling.py::test_trials_that_learned_nothing_give_a_clear_error_not_a_target",
         "tests/test_search.py::test_after_the_first_round_a_sizes_lr_is_laddered_in_half_decades_from_its_default_until_bracketed"]),
    "Reruns whose reads tie (the same evaluation, or the first)": (
        "the rerun allocation floors a size's scatter at the evaluation grid's resolution and the search goes on",
        ["tests/test_replicate.py::test_reruns_that_read_the_same_steps_do_not_stop_the_search"]),
    "Driver interrupted or killed (-9) in the probe, the range test or the search, then rerun": (
        "finished stages and trials kept, none rerun, the trial count never exceeded; no process left",
        ["tests/test_faults.py::test_kill_9_during_the_probe_and_the_range_test_loses_nothing_finished",
         "tests/test_search.py::test_tune_cli_resumes_after_kill_9_without_losing_or_rerunning_trials",
         "tests/test_pipeline.py::test_interrupted_run_resumes_without_redoing_finished_stages"]),
    "Damaged or foreign run directory (recommend, probe, lr-find, noise)": (
        "detected and reported, never silently overwritten; other results survive",
        ["tests/test_faults.py::test_damaged_stage_file_is_reported_and_left_as_it_is",
         "tests/test_faults.py::test_stage_file_of_another_task_is_refused_not_overwritten"]),
    "Unwritable, full or symlinked output directory; its permissions": (
        "clear error before work; no partial file; the old file kept; a symlink not followed; created 0o700",
        ["tests/test_memory.py::test_cli_probe_json_has_the_design_keys",
         "tests/test_faults.py::test_unwritable_run_directory_is_refused_before_work",
         "tests/test_faults.py::test_full_disk_leaves_the_old_file_and_no_partial_file",
         "tests/test_faults.py::test_run_directory_given_as_a_symlink_is_refused"]),
    "Two processes on one run directory": (
        "the second refused with the holder's pid; the lock freed when the holder dies",
        ["tests/test_pipeline.py::test_a_second_process_on_the_same_run_directory_is_refused"]),
    "Ray: started by autobs, or a cluster joined": (
        "nothing listens on a non-loopback address; no dashboard (port 8265); joining a cluster without "
        "authentication warns",
        ["tests/test_search.py::test_local_ray_listens_on_loopback_only_and_has_no_dashboard",
         "tests/test_search.py::test_joining_a_ray_cluster_without_authentication_warns"]),
    "Unpickling": (
        "no pickle.load, no Ray restore, torch.load only with weights_only=True",
        ["tests/test_faults.py::test_autobs_never_unpickles"]),
    "Hostile strings in the report": (
        "task name, space name and exception text shown as text",
        ["tests/test_report.py::test_hostile_strings_are_shown_as_text"]),
    "Partial runs, failed trials and NaN in the report": (
        "the page renders and says what is missing and why",
        ["tests/test_report.py::test_partial_run_renders_and_says_what_is_missing",
         "tests/test_report.py::test_all_trials_failed_and_nan_values_still_render"]),
}


def run(selectors: list[str]) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                        *selectors], cwd=ROOT, capture_output=True, text=True)
        counts = {"cases": 0, "passed": 0, "failed": 0, "skipped": 0}
        for case in ET.parse(xml).getroot().iter("testcase"):
            counts["cases"] += 1
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    return counts


def main() -> None:
    rows, total = [], {"cases": 0, "passed": 0, "failed": 0, "skipped": 0}
    for name, (expected, selectors) in CATEGORIES.items():
        counts = run(selectors)
        for k in total:
            total[k] += counts[k]
        rows.append(f"| {name} | {expected} | {counts['cases']} | {counts['passed']} | {counts['failed']} | "
                     f"{counts['skipped']} | `python -m pytest {' '.join(selectors)}` |")
        print(rows[-1], file=sys.stderr)
    lines = [
        "# Reliability and security cases",
        "",
        "Command: `python benchmarks/reliability.py`  ",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, CPU; Python {platform.python_version()}  ",
        f"Date: {time.strftime('%Y-%m-%d')}  ",
        "Each category's cases are tests (parametrized cases count one each); the last column reruns them.",
        "",
        "| category | expected behaviour | cases | passed | failed | skipped | rerun |",
        "|---|---|---:|---:|---:|---:|---|",
        *rows,
        f"| **all** | | **{total['cases']}** | **{total['passed']}** | **{total['failed']}** | **{total['skipped']}** | |",
    ]
    (ROOT / "reports/reliability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
