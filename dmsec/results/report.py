"""The HTML report of one scan: a single self-contained page (images inlined, no scripts).

One card (`<section class="finding">`) per finding (checkpoint revision x protected artwork,
`dmsec.results.findings`) that stood by the scan, new in that scan first, then untriaged, then by
confidence: the best recovery beside the protected artwork and CGI-DM's recovered image, best and
median similarity, support, the evidence, the confidence derived from it and why (`band_reason`,
the margin over the next registered work), CGI-DM's numbers,
the checkpoint (linked where the hub gave an http(s) or file URL), uploader and licence, first and
last seen, the latest triage decision and the command to record one. Radio buttons show all, new
or untriaged cards (pure CSS). Above them, every checkpoint of the scan with its status and reason,
and the scanners' security verdicts on its files (unsafe and error first: a hostile pickle names
the globals it imports). Hub-supplied text (repo ids, tags, titles) is untrusted: everything is HTML-escaped and only http, https and file links are made.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dmsec.results.findings import finding_order
from dmsec.results.query import connect, latest_scan_id, readable
from dmsec.results.store import ResultsError, ResultsStore, atomic_write_bytes
from dmsec.storage import is_s3

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{margin-bottom:.2rem} .meta{color:#555}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;font-size:.9rem} th{background:#f3f3f3}
section.finding{border:1px solid #bbb;border-radius:6px;padding:1rem;margin:1rem 0}
.badge{font-size:.75rem;padding:.1rem .4rem;border-radius:3px;background:#eee;vertical-align:middle}
.badge.new{background:#c00;color:#fff} .conf-high{background:#fdd} .conf-medium{background:#ffe6bf}
.triage-dismissed{background:#ddd;color:#666} .triage-confirmed{background:#cfc}
.triage-escalated{background:#fcf} input.filter{margin-left:1rem}
#show-new:checked ~ .cards section.finding:not([data-new="true"]){display:none}
#show-untriaged:checked ~ .cards section.finding:not([data-triage="untriaged"]){display:none}
.images{display:flex;gap:1.5rem;flex-wrap:wrap} figure{margin:0;text-align:center}
figure img{width:160px;height:160px;object-fit:contain;image-rendering:pixelated;
border:1px solid #999;background:#fff} figcaption{font-size:.8rem;color:#444;max-width:170px}
.missing{width:160px;height:160px;display:flex;align-items:center;justify-content:center;
border:1px dashed #999;color:#777;font-size:.8rem}
.status-error{color:#a00} .status-skipped{color:#a60} .status-ok{color:#070}
.verdict-unsafe,.verdict-error{color:#a00;font-weight:bold} .verdict-safe{color:#070}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _img(data: bytes | None, css_class: str, alt: str, caption: str) -> str:
    if not data:
        body = f'<div class="missing {css_class}">{_e(alt)}: not available</div>'
    else:
        uri = "data:image/png;base64," + base64.b64encode(data).decode()
        body = f'<img class="{css_class}" src="{uri}" alt="{_e(alt)}">'
    return f"<figure>{body}<figcaption>{caption}</figcaption></figure>"


def _link(url: str | None, text: str) -> str:
    if url and urlsplit(url).scheme in ("http", "https", "file"):
        return f'<a class="checkpoint-link" href="{_e(url)}">{_e(text)}</a>'
    return _e(text)


def _finding_card(f: dict[str, Any], m: dict[str, Any], new: bool) -> str:
    """One finding: the best recovery beside the artwork and CGI-DM's recovery, its numbers."""
    triage = f["triage_status"] or "untriaged"
    badges = (('<span class="badge new">NEW</span> ' if new else "")
              + f'<span class="badge conf-{_e(f["confidence"])}">{_e(f["confidence"])} confidence</span> '
              + f'<span class="badge triage-{_e(triage)}">{_e(triage)}</span>')  # fmt: skip
    title = f"{_e(f['repo_id'])} &rarr; {_e(f['artwork_title'])} ({_e(f['artwork_owner'])})"
    images = "".join([
        _img(m.get("recovered_image"), "recovered", "recovered generation",
             f"Best recovery by FineXtract: group {_e(m.get('candidate_rank'))}, generation {_e(m.get('sample_index'))}, seed {_e(m.get('seed'))}"),
        _img(m.get("artwork_image"), "artwork", "protected artwork",
             f"Protected artwork #{f['artwork_id']}: {_e(f['artwork_title'])}"),
        _img(m.get("evidence_image"), "evidence", "CGI-DM recovery",
             "CGI-DM: the artwork's masked part recovered by contrasting the two models"),
    ])  # fmt: skip
    decided = (f"{_e(triage)}: {_e(f['triage_note'])} ({_e(f['triage_by'])}, {_e(f['triage_at'])})"
               if f["triage_status"] else "untriaged")  # fmt: skip
    rows = [
        ("similarity", f"best {_num(f['best_similarity'])}, median {_num(f['median_similarity'])} "
                       f"({_e(f['method'])}, {_e(f['metric'])}; threshold {_num(f['threshold'])})"),
        ("support", f"{f['support']} generation(s) in {f['n_groups']} group(s) match this artwork"),
        ("evidence", f"{_e(', '.join(f['evidence']))} &rArr; {_e(f['confidence'])} confidence"),
        ("why this band", _e(f["band_reason"])),
        ("margin", f"{_num(f['margin'])} closer to this artwork than to the next registered work "
                   "its group matched (or the threshold)"),
        ("CGI-DM", f"score {_num(f['cgidm_score'])} (masked start {_num(f['cgidm_masked_score'])}; "
                   f"higher = in the training set), loss gap {_num(f['cgidm_baseline_gap'], 6)}, "
                   f"{_e(f['cgidm_status'])} {_e(f['cgidm_error'] or '')}"),
        ("checkpoint", f"{_link(f['url'], f['repo_id'])} @ {_e(f['revision'])} ({_e(f['source'])}, "
                       f"{_e(f['kind'])}, base {_e(f['base_model'])})"),
        ("uploader, licence", f"{_e(f['uploader'] or '-')}, {_e(f['license'] or '-')}"),
        ("seen", f"first {_e(f['first_seen_scan'])}, last {_e(f['last_seen_scan'])} ({f['n_scans']} scan(s) matched it)"),
        ("artwork source", _e(f["artwork_source_uri"])),
        ("triage", decided),
        ("finding", f"<code>{_e(f['finding_id'])}</code>: <code>dmsec triage {_e(f['finding_id'])} "
                    "--status confirmed|dismissed|escalated --note TEXT</code>"),
    ]  # fmt: skip
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<section class="finding" id="finding-{_e(f["finding_id"])}" data-finding-id="{_e(f["finding_id"])}" '
        f'data-new="{str(new).lower()}" data-triage="{_e(triage)}" data-confidence="{_e(f["confidence"])}">'
        f'<h3>{badges} {title}</h3><div class="images">{images}</div>'
        f'<table class="scores">{table}</table></section>'
    )  # fmt: skip


def _filter(n_all: int, n_new: int, n_untriaged: int) -> str:
    """Radio buttons that show all, new or untriaged cards (CSS only: the page runs no script)."""
    choices = (("all", f"all ({n_all})"), ("new", f"new ({n_new})"), ("untriaged", f"untriaged ({n_untriaged})"))  # fmt: skip
    return "".join(
        f'<input type="radio" name="show" id="show-{key}" class="filter"{" checked" if key == "all" else ""}>'
        f'<label for="show-{key}">{text}</label> '
        for key, text in choices
    )  # fmt: skip


def _prompt(row: dict[str, Any]) -> str:
    """The prompt FineXtract used and where it came from (hub text: escaped), or empty."""
    source = row.get("prompt_source")
    if not source:
        return ""
    text = row.get("prompt")
    return f"<q>{_e(text)}</q> ({_e(source)})" if text else f"({_e(source)})"


def _checkpoints_table(rows: list[dict[str, Any]]) -> str:
    head = "<tr><th>checkpoint</th><th>kind</th><th>prompt (source)</th><th>status</th><th>candidates</th><th>matches</th><th>best similarity</th><th>best CGI-DM</th><th>reason</th></tr>"  # fmt: skip
    body = "".join(
        f"<tr><td>{_link(r['url'], r['repo_id'])}</td><td>{_e(r['kind'])}</td>"
        f"<td>{_prompt(r)}</td>"
        f'<td class="status-{_e(r["status"])}">{_e(r["status"])}</td><td>{r["n_candidates"]}</td>'
        f"<td>{r['n_matches']}</td><td>{_num(r['best_similarity'])}</td><td>{_num(r['best_cgidm_score'])}</td>"
        f"<td>{_e((r['error_stage'] or '') + (': ' if r['error'] else '') + (r['error'] or ''))}</td></tr>"
        for r in rows
    )
    return f'<table class="checkpoints">{head}{body}</table>'


def _security_table(rows: list[dict[str, Any]]) -> str:
    """The scan's security verdicts, unsafe ones first (`dmsec.hub.security`)."""
    if not rows:
        return "<p>No pickle was scanned and the hub reported no scan for these checkpoints.</p>"
    order = {"unsafe": 0, "error": 1, "safe": 2}
    rows = sorted(rows, key=lambda r: (order.get(r["verdict"], 3), r["repo_id"], r["file"]))
    head = "<tr><th>checkpoint</th><th>file</th><th>scanner</th><th>verdict</th><th>globals</th><th>detail</th></tr>"  # fmt: skip
    body = "".join(
        f"<tr><td>{_e(r['repo_id'])}</td><td>{_e(r['file'])}</td><td>{_e(r['scanner'])} {_e(r['scanner_version'])}</td>"
        f'<td class="verdict-{_e(r["verdict"])}">{_e(r["verdict"])}</td><td>{_e(", ".join(r["globals"]))}</td><td>{_e(r["detail"])}</td></tr>'
        for r in rows
    )  # fmt: skip
    return f'<table class="security">{head}{body}</table>'


def build_report(root: str | Path, scan_id: str | None = None) -> str:
    """The report page as of scan `scan_id` (default: the newest scan with results) as HTML: its
    checkpoints, then one card per finding that stood by then (new in that scan first)."""
    root = readable(root)  # one snapshot for S3, not one per query below
    scan_id = scan_id or latest_scan_id(root)
    con = connect(root)
    try:
        ckpts = con.sql("SELECT * FROM checkpoints WHERE scan_id = ? ORDER BY repo_id", params=[scan_id]).to_arrow_table().to_pylist()  # fmt: skip
        if not ckpts:
            raise ResultsError(f"scan {scan_id!r} has no checkpoint rows in {root}; list scans with dmsec query \"SELECT scan_id, status FROM scans\"")  # fmt: skip
        security = con.sql("SELECT * FROM security WHERE scan_id = ?", params=[scan_id]).to_arrow_table().to_pylist()  # fmt: skip
        findings = con.sql("SELECT * FROM findings WHERE first_seen_scan <= ?", params=[scan_id]).to_arrow_table().to_pylist()  # fmt: skip
        best = {f["best_match_id"] for f in findings}
        images = con.sql(
            "SELECT match_id, candidate_rank, sample_index, seed, recovered_image, artwork_image, "
            "evidence_image FROM matches WHERE list_contains(?, match_id)", params=[sorted(best)]
        ).to_arrow_table().to_pylist()  # fmt: skip
    finally:
        con.close()
    by_match = {m["match_id"]: m for m in images}
    findings.sort(key=lambda f: (f["first_seen_scan"] != scan_id, *finding_order(f)[1:]))
    statuses: dict[str, int] = {}
    for r in ckpts:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    n_new = sum(f["first_seen_scan"] == scan_id for f in findings)
    n_untriaged = sum(f["triage_status"] is None for f in findings)
    n_unsafe = sum(r["verdict"] == "unsafe" for r in security)
    meta = (
        f"scan <code>{_e(scan_id)}</code> on {_e(ckpts[0]['scan_date'])}; config hash "
        f"<code>{_e(ckpts[0]['scan_config_hash'])}</code>; {len(ckpts)} checkpoints ({_e(counts)}); "
        f"{len(findings)} findings (checkpoint x protected artwork), {n_new} new in this scan, "
        f"{n_untriaged} untriaged"
    )
    cards = "".join(_finding_card(f, by_match.get(f["best_match_id"], {}), f["first_seen_scan"] == scan_id) for f in findings)  # fmt: skip
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dmsec scan {_e(scan_id)}</title>'
        f"<style>{_CSS}</style></head><body><header><h1>dmsec scan report</h1>"
        f'<p class="meta">{meta}</p></header>'
        f'<section id="checkpoints"><h2>Checkpoints</h2>{_checkpoints_table(ckpts)}</section>'
        f'<section id="security"><h2>Security ({n_unsafe} unsafe)</h2>{_security_table(security)}</section>'
        f'<section id="findings"><h2>Findings ({len(findings)})</h2>{_filter(len(findings), n_new, n_untriaged)}'
        f'<div class="cards">{cards or "<p>No findings.</p>"}</div></section></body></html>'
    )  # fmt: skip


def write_report(root: str | Path, scan_id: str | None = None, out: str | Path | None = None) -> Path:  # fmt: skip
    """Write the report of `scan_id` to `out` (default `<root>/reports/<scan_id>.html`)."""
    if out is None and is_s3(str(root)):
        raise ResultsError(f"results on S3: give `out` (the scan itself published {root}/reports/)")
    root = readable(root)
    scan_id = scan_id or latest_scan_id(root)
    page = build_report(root, scan_id)
    path = Path(out) if out else ResultsStore(root).report_path(scan_id)
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
