"""The HTML report: one card per finding with its images, new first, escaping, links, the new /
untriaged filter, and real Chromium."""

from __future__ import annotations

from html.parser import HTMLParser

from click.testing import CliRunner
from results_browser import probe_report
from results_factory import SCAN_A, SCAN_B, checkpoint_row, match_row, part

from dmsec.results import build_report, write_report
from dmsec.results.cli import report as report_cmd
from dmsec.results.schema import to_table
from dmsec.results.store import ResultsStore


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.imgs = 0
        self.scripts = 0
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("class") == "finding":
            self.sections.append((a["data-finding-id"], a["data-new"], a["data-triage"]))
        self.imgs += tag == "img"
        self.scripts += tag == "script"
        if tag == "a":
            self.links.append(a["href"])


def _parse(page: str) -> _Sections:
    p = _Sections()
    p.feed(page)
    return p


def test_one_card_per_finding_new_first(results):
    # scan A: full-7a and lora-9a match artwork 7; scan B: full-7a again (7) and artwork 8
    page = _parse(build_report(results, SCAN_B))
    assert len(page.sections) == 3 and len({s[0] for s in page.sections}) == 3
    assert [s[1] for s in page.sections] == ["true", "false", "false"]  # new in scan B first
    assert page.imgs == 9 and page.scripts == 0  # recovered, artwork, evidence per finding
    as_of_a = _parse(build_report(results, SCAN_A)).sections
    assert len(as_of_a) == 2 and all(s[1] == "true" for s in as_of_a)


def test_cards_show_the_latest_triage_decision(results):
    from dmsec.results.triage import record_triage

    fid = _parse(build_report(results, SCAN_B)).sections[0][0]
    record_triage(results, fid, "escalated", "ask legal", by="ana")
    page = build_report(results, SCAN_B)
    assert [s[2] for s in _parse(page).sections if s[0] == fid] == ["escalated"]
    assert "ask legal" in page and "ana" in page


def test_hostile_hub_text_is_escaped_and_links_are_filtered(tmp_path):
    scan = "20260107T000000Z-ffffff"
    evil = "<script>alert(1)</script>"
    tables = part(scan, [evil])
    tables["checkpoints"] = to_table("checkpoints", [checkpoint_row(scan, evil, url="javascript:alert(1)", prompt=f"sks {evil}", prompt_source="kohya")])  # fmt: skip
    tables["matches"] = to_table("matches", [match_row(scan, evil, "c1", "m1", artwork_title=evil, evidence_image=None)])  # fmt: skip
    store = ResultsStore(tmp_path)
    store.commit_part(scan, "2026-01-07", 0, tables)
    page = build_report(tmp_path, scan)
    parsed = _parse(page)
    assert parsed.scripts == 0 and "&lt;script&gt;" in page
    assert "<q>sks &lt;script&gt;alert(1)&lt;/script&gt;</q> (kohya)" in page  # the hub's prompt
    assert not any(link.startswith("javascript") for link in parsed.links)
    assert "CGI-DM recovery: not available" in page and parsed.imgs == 2


def test_report_cli_writes_beside_the_results(results):
    out = CliRunner().invoke(report_cmd, ["--results", str(results)])
    assert out.exit_code == 0, out.output
    assert out.output.strip().endswith(f"reports/{SCAN_B}.html")


def test_report_renders_in_headless_chromium(results, tmp_path):
    path = write_report(results, SCAN_B)
    seen = probe_report(path, tmp_path)
    assert seen["sections"] == 3 and seen["sections_loaded"] == 3
    assert seen["images"] == 9 and seen["loaded"] == 9
    assert seen["shown_new"] == 1 and seen["shown_untriaged"] == 3 and seen["shown_all"] == 3
    assert seen["painted"] and seen["title"] == f"dmsec scan {SCAN_B}"


def test_security_verdicts_are_queryable_and_shown_unsafe_first(tmp_path):
    """A part's security rows: a view like the other tables, and a report section naming the
    forbidden globals (escaped: a file name comes from the hub)."""
    from results_factory import NOW

    from dmsec.results.query import query

    store = ResultsStore(tmp_path / "results")
    tables = part(SCAN_A, ["evil-lora", "ok-lora"])
    rows = [
        {"scan_id": SCAN_A, "source": "local", "repo_id": "ok-lora", "revision": "r1",
         "file": "w.bin", "scanner": "picklescan", "scanner_version": "1.0.5", "verdict": "safe",
         "globals": [], "detail": "imports only allow-listed globals", "found_at": NOW},
        {"scan_id": SCAN_A, "source": "local", "repo_id": "evil-lora", "revision": "r1",
         "file": "<b>w.bin</b>", "scanner": "picklescan", "scanner_version": "1.0.5",
         "verdict": "unsafe", "globals": ["posix.system"], "detail": "refused", "found_at": NOW},
    ]  # fmt: skip
    tables["security"] = to_table("security", rows)
    store.commit_part(SCAN_A, "2026-01-02", 0, tables)
    got = query(store.root, "SELECT repo_id, globals FROM security WHERE verdict = 'unsafe'")
    assert got.to_pylist() == [{"repo_id": "evil-lora", "globals": ["posix.system"]}]
    page = build_report(store.root, SCAN_A)
    section = page[page.index('<section id="security">') :]
    section = section[: section.index("</section>")]
    assert "Security (1 unsafe)" in section and "posix.system" in section
    assert section.index("evil-lora") < section.index("ok-lora"), "unsafe verdicts first"
    assert "<b>w.bin</b>" not in section and "&lt;b&gt;w.bin&lt;/b&gt;" in section
