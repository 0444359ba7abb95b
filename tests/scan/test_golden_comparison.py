"""The golden projection's comparison rule, on the golden file itself: scores move within the
stated tolerance and pass, beyond it fail; ids, statuses and counts must be equal; generated
pixels' hashes, and the representative of a two-member group, are not compared."""

from __future__ import annotations

import copy
import json

from scan_helpers import GOLDEN, SCORE_RTOL, golden_mismatches


def _golden() -> dict:
    return json.loads(GOLDEN.read_text())


def _nudge(hex_value: str, rel: float) -> str:
    return float.hex(float.fromhex(hex_value) * (1 + rel))


def test_the_golden_equals_itself():
    assert golden_mismatches(_golden(), _golden()) == []


def test_scores_within_the_tolerance_pass_and_beyond_it_fail():
    golden = _golden()
    match = next(i for i, m in enumerate(golden["matches"]) if m["cgidm_score"])
    near, far = copy.deepcopy(golden), copy.deepcopy(golden)
    for key in ("similarity", "cgidm_score", "cgidm_masked_score"):
        near["matches"][match][key] = _nudge(golden["matches"][match][key], SCORE_RTOL / 10)
    far["matches"][match]["similarity"] = _nudge(golden["matches"][match]["similarity"], SCORE_RTOL * 10)  # fmt: skip
    assert golden_mismatches(near, golden) == []
    (only,) = golden_mismatches(far, golden)
    assert only.startswith(f"matches[{match}] similarity:")


def test_ids_statuses_counts_and_rows_must_be_equal():
    golden = _golden()
    for table, key, value in (("checkpoints", "status", "error"), ("checkpoints", "n_matches", 99),
                              ("matches", "artwork_id", 12345), ("candidates", "rank", 77),
                              ("candidates", "group_size", 1)):  # fmt: skip
        changed = copy.deepcopy(golden)
        changed[table][-1][key] = value
        assert [m.split(":")[0] for m in golden_mismatches(changed, golden)] == [f"{table}[{len(golden[table]) - 1}] {key}"]  # fmt: skip
    fewer = copy.deepcopy(golden)
    fewer["matches"].pop()
    assert golden_mismatches(fewer, golden) == [f"matches: {len(golden['matches']) - 1} rows, golden {len(golden['matches'])}"]  # fmt: skip


def test_generated_pixels_hashes_are_not_compared():
    golden = _golden()
    changed = copy.deepcopy(golden)
    changed["candidates"][0]["image_sha256"] = "0" * 64
    changed["matches"][0]["recovered_image"] = "sha256:" + "0" * 64
    assert golden_mismatches(changed, golden) == []


def test_a_two_member_groups_representative_may_differ_a_larger_groups_may_not():
    golden = _golden()
    pair = next(i for i, c in enumerate(golden["candidates"]) if c["group_size"] == 2)
    big = next(i for i, c in enumerate(golden["candidates"]) if c["group_size"] > 2)
    changed = copy.deepcopy(golden)
    for i in (pair, big):
        changed["candidates"][i]["sample_index"] += 1
        changed["candidates"][i]["seed"] += 1
    assert sorted(m.split(":")[0] for m in golden_mismatches(changed, golden)) == [
        f"candidates[{big}] sample_index", f"candidates[{big}] seed"
    ]  # fmt: skip
