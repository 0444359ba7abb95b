"""The confidence rule: a work no fine-tune saw cannot reach the high band without membership
evidence, whatever the rule's parameters; bands, reasons and margins on synthetic results."""

from __future__ import annotations

import pytest
from results_factory import SCAN_A, SCAN_B, part

from dmsec.errors import ConfigError
from dmsec.results.confidence import DEFAULT_RULE, ConfidenceRule, FindingEvidence, rule_grid
from dmsec.results.findings import derive_findings
from dmsec.results.schema import to_table
from dmsec.results.store import ResultsStore

# A style fine-tune regenerates a same-artist work it never saw: many generations hit it, nothing
# else is near (a large margin), but the checkpoint fits it no better than its base does.
UNSEEN = FindingEvidence(support=9, margin=0.2, cgidm_status="ok", cgidm_score=0.40,
                         cgidm_masked_score=0.55, cgidm_baseline_gap=-0.01)  # fmt: skip
MEMBER = FindingEvidence(support=9, margin=0.2, cgidm_status="ok", cgidm_score=0.70,
                         cgidm_masked_score=0.55, cgidm_baseline_gap=0.01)  # fmt: skip


def _commit(root, matches):
    from results_factory import checkpoint_row, match_row

    tables = part(SCAN_A, ["lora-style"])
    tables["matches"] = to_table("matches", [match_row(SCAN_A, "lora-style", "c1", f"m{i}", **m) for i, m in enumerate(matches)])  # fmt: skip
    tables["checkpoints"] = to_table("checkpoints", [checkpoint_row(SCAN_A, "lora-style", n_matches=len(matches))])  # fmt: skip
    ResultsStore(root).commit_part(SCAN_A, "2026-01-02", 0, tables)
    return {f["artwork_id"]: f for f in derive_findings(root).to_pylist()}


def test_an_unseen_same_artist_work_never_reaches_high_without_membership_evidence(tmp_path):
    holdout = {"artwork_id": 21, "artwork_title": "artist/holdout", "similarity": 0.999,
               "support": 9, "cgidm_score": 0.40, "cgidm_masked_score": 0.55,
               "cgidm_baseline_gap": -0.01}  # fmt: skip
    (f,) = _commit(tmp_path, [holdout]).values()
    assert f["evidence"] == ["match", "repeated", "distinct"] and f["confidence"] == "medium"
    assert f["band_reason"] == "medium: repeated (support 9 >= 2), distinct (margin 0.009 >= 0); high needs cgi-dm + loss-gap"  # fmt: skip
    grid = rule_grid()
    assert all(
        r.assess(UNSEEN).confidence != "high" for r in grid
    )  # every rule the tuning may pick
    assert any(r.assess(MEMBER).confidence == "high" for r in grid)  # the same finding as a member
    assert DEFAULT_RULE.assess(MEMBER).confidence == "high"


def test_a_rule_without_a_membership_sign_for_high_is_refused():
    with pytest.raises(ConfigError, match="high always needs a membership sign"):
        ConfidenceRule(high_membership="none")
    with pytest.raises(ConfigError, match="`high_distinct` needs `min_margin`"):
        ConfidenceRule(high_distinct=True)


def test_margin_is_to_the_next_work_the_group_matched_else_to_the_threshold(tmp_path):
    found = _commit(tmp_path, [
        {"artwork_id": 7, "similarity": 0.995, "threshold": 0.99},
        {"artwork_id": 8, "similarity": 0.992, "threshold": 0.99, "candidate_rank": 0},
    ])  # fmt: skip
    assert found[7]["margin"] == pytest.approx(0.003) and found[8]["margin"] == pytest.approx(
        -0.003
    )
    (alone,) = _commit(tmp_path / "b", [{"artwork_id": 7, "similarity": 0.995, "threshold": 0.99}]).values()  # fmt: skip
    assert alone["margin"] == pytest.approx(0.005)


def test_distinct_counts_only_where_the_rule_sets_a_margin_and_high_can_require_it():
    close = FindingEvidence(support=3, margin=0.001, cgidm_status="ok", cgidm_score=0.7,
                            cgidm_masked_score=0.6, cgidm_baseline_gap=0.01)  # fmt: skip
    assert "distinct" not in ConfidenceRule().signs(MEMBER)  # the rule of thumb: no margin
    strict = ConfidenceRule(min_margin=0.01, high_distinct=True)
    assert strict.assess(MEMBER).confidence == "high" and "distinct" in strict.signs(MEMBER)
    got = strict.assess(close)
    assert got.confidence == "medium" and got.band_reason.endswith("high needs distinct")
    assert ConfidenceRule(high_membership="both").assess(
        FindingEvidence(3, None, "ok", 0.7, 0.6, -0.01)
    ).band_reason == "medium: repeated (support 3 >= 2), cgi-dm (score 0.700 > masked 0.600); high needs loss-gap"  # fmt: skip


def test_the_report_and_dmsec_query_show_why_each_finding_is_in_its_band(results):
    import json

    from click.testing import CliRunner

    from dmsec.results import build_report
    from dmsec.results.cli import query

    reasons = {f["finding_id"]: f["band_reason"] for f in derive_findings(results).to_pylist()}
    assert all(r.startswith(("high: ", "medium: ", "low: ")) for r in reasons.values())
    out = CliRunner().invoke(query, ["--results", str(results), "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {r["finding_id"]: r["band_reason"] for r in rows} == reasons
    page = build_report(results, SCAN_B)
    assert all(r.replace(">", "&gt;") in page for r in reasons.values())
