"""What an analyst gets from scheduled scans (#23), on the digit zoo with the local executor:
findings (checkpoint revision x artwork) whose `first_seen` stays and whose `new` flag clears on
a rescan, a planted fine-tune as the only new finding, triage that survives rescans, `--fail-on`
exit codes with the summary JSON, and the report as one card per finding in headless Chromium.

One results folder goes through five scans in order (module fixture); reduced settings (64
generations, 5 CGI-DM steps) keep it to minutes: efficacy is shown elsewhere, here the findings'
bookkeeping is.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scan_helpers import add_truncated_lora, make_hub, scan_config

from dmsec.cli import main
from dmsec.results.findings import FINDINGS, FINDINGS_FILE, derive_findings
from dmsec.scan.runner import run_scan

sys.path.insert(0, str(Path(__file__).parents[1] / "results"))
from results_browser import probe_report  # noqa: E402

pytestmark = pytest.mark.slow
SETTINGS = ["--set", "extract.n_samples=64", "--set", "authenticate.steps=5",
            "--set", "authenticate.baseline_draws=4"]  # fmt: skip


def _cli_scan(hub: Path, registry: Path, out: Path, cache: Path, *extra: str):
    args = ["scan", "--local", "--source", str(hub), "--registry", str(registry), "--out", str(out),
            "--set", f"run.cache_dir={cache}", *SETTINGS, *extra]  # fmt: skip
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _findings(out: Path) -> dict[str, dict]:
    return {f["finding_id"]: f for f in derive_findings(out).to_pylist()}


@pytest.fixture(scope="module")
def history(small_zoo, zoo_registry, tmp_path_factory):
    """Scans 1-2 by the CLI (a protected fine-tune, a control, a corrupt file), a triage, scan 3
    with a planted fine-tune, scan 4 with a changed config (everything rescanned); what each saw."""
    base = tmp_path_factory.mktemp("findings")
    protected = small_zoo.select(method="full", strength="heavy", protected=True)
    planted = small_zoo.select(method="lora", strength="heavy", protected=True)[0].name
    control = small_zoo.select(protected=False)[0].name
    hub = make_hub(base / "hub", small_zoo, [protected[0].name, control])
    corrupt = add_truncated_lora(hub, small_zoo)
    out, cache = base / "results", base / "cache"
    seen: dict = {"hub": hub, "out": out, "planted": planted, "corrupt": corrupt,
                  "protected": protected[0].name}  # fmt: skip
    fail_on = ["--fail-on", "new-findings", "--fail-on", "errors"]
    first = _cli_scan(hub, zoo_registry, out, cache, "--summary-json", str(base / "s1.json"), *fail_on)  # fmt: skip
    seen["scan1"] = (first.exit_code, first.output, json.loads((base / "s1.json").read_text()), _findings(out))  # fmt: skip
    second = _cli_scan(hub, zoo_registry, out, cache, "--summary-json", str(base / "s2.json"), *fail_on)  # fmt: skip
    seen["scan2"] = (second.exit_code, second.output, json.loads((base / "s2.json").read_text()), _findings(out))  # fmt: skip
    ids = sorted(seen["scan2"][3])
    dismissed = ids[0]
    triage = CliRunner().invoke(main, ["triage", dismissed, "--status", "dismissed", "--by", "ana",
                                       "--note", "the artist's own fine-tune", "--results", str(out)])  # fmt: skip
    seen["triage"] = (triage.exit_code, triage.output, dismissed)
    bad = CliRunner().invoke(main, ["triage", "0" * 16, "--status", "confirmed", "--note", "x", "--results", str(out)])  # fmt: skip
    seen["bad_triage"] = (bad.exit_code, bad.output)
    shutil.copytree(small_zoo.root / planted, hub / planted)
    config = scan_config(hub, zoo_registry, out, cache, extract={"n_samples": 64},
                         authenticate={"steps": 5, "baseline_draws": 4}, run={"executor": "local"})  # fmt: skip
    seen["scan3"] = (run_scan(config, echo=lambda _: None), _findings(out))
    rescan = scan_config(hub, zoo_registry, out, cache, extract={"n_samples": 64},
                         authenticate={"steps": 6, "baseline_draws": 4}, run={"executor": "local"})  # fmt: skip
    seen["scan4"] = (run_scan(rescan, echo=lambda _: None), _findings(out))
    return seen


def test_first_scan_finds_new_findings_and_exits_5_with_fail_on_both(history):
    code, output, summary, findings = history["scan1"]
    assert findings and all(f["new"] for f in findings.values())
    assert {f["repo_id"] for f in findings.values()} == {history["protected"]}
    assert code == 5, output  # new findings and a checkpoint error
    assert summary["findings"]["new"] == len(findings) == len(summary["new_findings"])
    assert {f["finding_id"] for f in summary["new_findings"]} == set(findings)
    (error,) = summary["errors"]
    assert error["repo_id"] == history["corrupt"] and "not retried" in error["what_to_do"]
    assert summary["results"] == str(history["out"].resolve()) and summary["report"]
    assert output.count("  NEW ") == len(findings) and "dmsec triage FINDING_ID" in output
    for f in findings.values():  # one row per (revision, artwork), with its evidence and confidence
        assert f["best_similarity"] >= f["threshold"] and f["support"] >= f["n_groups"] >= 1
        assert f["evidence"][0] == "match" and f["confidence"] in ("high", "medium", "low")
        assert f["cgidm_status"] == "ok" and f["url"] and f["base_model"]


def test_second_scan_keeps_first_seen_and_clears_new(history):
    first = history["scan1"][3]
    code, output, summary, findings = history["scan2"]
    assert code == 0, output  # nothing new, and the corrupt file is not retried
    assert set(findings) == set(first)
    scan1, scan2 = summary_ids(history)
    for fid, f in findings.items():
        assert f["first_seen_scan"] == first[fid]["first_seen_scan"] == scan1
        assert not f["new"] and f["last_seen_scan"] == scan2 and f["n_scans"] == 1
    assert summary["findings"]["new"] == 0 and summary["new_findings"] == [] and summary["errors"] == []  # fmt: skip


def summary_ids(history) -> tuple[str, str]:
    return history["scan1"][2]["scan_id"], history["scan2"][2]["scan_id"]


def test_a_planted_finetune_is_the_only_new_finding(history):
    summary, findings = history["scan3"]
    new = [f for f in findings.values() if f["new"]]
    assert new and {f["repo_id"] for f in new} == {history["planted"]}
    assert {f["finding_id"] for f in summary.new_findings()} == {f["finding_id"] for f in new}
    old = set(history["scan2"][3])
    assert {fid for fid, f in findings.items() if not f["new"]} == old
    ordered = derive_findings(history["out"]).column("new").to_pylist()
    assert ordered == sorted(ordered, reverse=True)  # new first


def test_triage_is_recorded_and_survives_rescans(history):
    code, output, dismissed = history["triage"]
    assert code == 0 and f"{dismissed}: dismissed by ana" in output
    bad_code, bad_output = history["bad_triage"]
    assert bad_code != 0 and "is not a finding" in bad_output and "dmsec query" in bad_output
    scan1 = history["scan1"][2]["scan_id"]
    summary4, findings = history["scan4"]
    f = findings[dismissed]
    assert f["scan_id"] == summary4.scan_id and f["n_scans"] == 2  # the rescan saw it again
    assert f["triage_status"] == "dismissed" and f["triage_note"] == "the artist's own fine-tune"
    assert f["triage_by"] == "ana" and f["first_seen_scan"] == scan1 and not f["new"]
    assert summary4.new_findings() == []
    assert sum(f["triage_status"] is None for f in findings.values()) == len(findings) - 1


def test_findings_parquet_reads_with_pyarrow_and_pandas(history):
    import pandas as pd

    path = history["out"] / FINDINGS_FILE
    assert pq.read_schema(path).equals(FINDINGS, check_metadata=True)
    frame = pd.read_parquet(history["out"] / "findings")
    assert len(frame) == len(history["scan4"][1]) and frame["finding_id"].is_unique


def test_query_without_sql_lists_findings_new_first(history):
    result = CliRunner().invoke(main, ["query", "--results", str(history["out"]), "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == len(history["scan4"][1]) and "finding_id" in rows[0]


def test_report_has_one_card_per_finding_in_headless_chromium(history, tmp_path):
    out = history["out"]
    report = history["scan3"][0].report
    findings = history["scan3"][1]
    seen = probe_report(Path(report), tmp_path)
    assert seen["sections"] == len(findings) > 0 and seen["sections_loaded"] == len(findings)
    assert set(seen["section_ids"]) == set(findings) and seen["painted"]
    n_new = sum(f["new"] for f in findings.values())
    assert seen["shown_new"] == n_new < len(findings)  # the "new" filter, clicked in the browser
    assert seen["shown_untriaged"] == len(findings) - 1  # one finding was dismissed
    assert out.exists()
