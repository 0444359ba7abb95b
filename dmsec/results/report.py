"""The HTML report of one scan: a single self-contained page (images inlined, no scripts).

One `<section class="match">` per match: the recovered generation beside the protected artwork
and CGI-DM's recovered image, the similarity and threshold, CGI-DM's score, masked score and
loss-gap baseline, and the checkpoint (linked where the hub gave an http(s) or file URL). Above
them, every checkpoint of the scan with its status and reason. Hub-supplied text (repo ids, tags,
titles) is untrusted: everything is HTML-escaped and only http, https and file links are made.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dmsec.results.query import connect, latest_scan_id, readable
from dmsec.results.store import ResultsError, ResultsStore, atomic_write_bytes
from dmsec.storage import is_s3

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{margin-bottom:.2rem} .meta{color:#555}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;font-size:.9rem} th{background:#f3f3f3}
section.match{border:1px solid #bbb;border-radius:6px;padding:1rem;margin:1rem 0}
.images{display:flex;gap:1.5rem;flex-wrap:wrap} figure{margin:0;text-align:center}
figure img{width:160px;height:160px;object-fit:contain;image-rendering:pixelated;
border:1px solid #999;background:#fff} figcaption{font-size:.8rem;color:#444;max-width:170px}
.missing{width:160px;height:160px;display:flex;align-items:center;justify-content:center;
border:1px dashed #999;color:#777;font-size:.8rem}
.status-error{color:#a00} .status-skipped{color:#a60} .status-ok{color:#070}
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


def _match_section(m: dict[str, Any]) -> str:
    title = f"{_e(m['repo_id'])} &rarr; {_e(m['artwork_title'])} ({_e(m['artwork_owner'])})"
    images = "".join(
        [
            _img(
                m["recovered_image"],
                "recovered",
                "recovered generation",
                f"Recovered by FineXtract: group {m['candidate_rank']}, generation {m['sample_index']}, seed {m['seed']}",
            ),  # fmt: skip
            _img(
                m["artwork_image"],
                "artwork",
                "protected artwork",
                f"Protected artwork #{m['artwork_id']}: {_e(m['artwork_title'])}",
            ),  # fmt: skip
            _img(
                m["evidence_image"],
                "evidence",
                "CGI-DM recovery",
                "CGI-DM: the artwork's masked part recovered by contrasting the two models",
            ),  # fmt: skip
        ]
    )
    rows = [
        (
            "similarity",
            f"{_num(m['similarity'])} ({_e(m['method'])}, {_e(m['metric'])}; threshold {_num(m['threshold'])})",
        ),  # fmt: skip
        ("support", f"{m['support']} generation(s) of the group match this artwork"),
        (
            "CGI-DM score",
            f"{_num(m['cgidm_score'])} (masked start {_num(m['cgidm_masked_score'])}; higher = in the training set)",
        ),  # fmt: skip
        ("loss-gap baseline", _num(m["cgidm_baseline_gap"], 6)),
        (
            "CGI-DM status",
            f"{_e(m['cgidm_status'])} {_e(m['cgidm_error'] or '')} ({_e(m['cgidm_steps'])} steps)",
        ),  # fmt: skip
        (
            "checkpoint",
            f"{_link(m['url'], m['repo_id'])} @ {_e(m['revision'])} ({_e(m['source'])}, {_e(m['kind'])}, base {_e(m['base_model'])})",
        ),  # fmt: skip
        ("artwork source", _e(m["artwork_source_uri"])),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<section class="match" id="match-{_e(m["match_id"])}" data-match-id="{_e(m["match_id"])}">'
        f'<h3>{title}</h3><div class="images">{images}</div>'
        f'<table class="scores">{table}</table></section>'
    )


def _checkpoints_table(rows: list[dict[str, Any]]) -> str:
    head = "<tr><th>checkpoint</th><th>kind</th><th>status</th><th>candidates</th><th>matches</th><th>best similarity</th><th>best CGI-DM</th><th>reason</th></tr>"  # fmt: skip
    body = "".join(
        f"<tr><td>{_link(r['url'], r['repo_id'])}</td><td>{_e(r['kind'])}</td>"
        f'<td class="status-{_e(r["status"])}">{_e(r["status"])}</td><td>{r["n_candidates"]}</td>'
        f"<td>{r['n_matches']}</td><td>{_num(r['best_similarity'])}</td><td>{_num(r['best_cgidm_score'])}</td>"
        f"<td>{_e((r['error_stage'] or '') + (': ' if r['error'] else '') + (r['error'] or ''))}</td></tr>"
        for r in rows
    )
    return f'<table class="checkpoints">{head}{body}</table>'


def build_report(root: str | Path, scan_id: str | None = None) -> str:
    """The report page of scan `scan_id` (default: the newest scan with results) as HTML."""
    root = readable(root)  # one snapshot for S3, not one per query below
    scan_id = scan_id or latest_scan_id(root)
    con = connect(root)
    try:
        ckpts = con.sql("SELECT * FROM checkpoints WHERE scan_id = ? ORDER BY repo_id", params=[scan_id]).to_arrow_table().to_pylist()  # fmt: skip
        if not ckpts:
            raise ResultsError(f"scan {scan_id!r} has no checkpoint rows in {root}")
        sql = (
            "SELECT m.*, c.url, c.kind, c.base_model FROM matches m JOIN checkpoints c "
            "ON m.scan_id = c.scan_id AND m.source = c.source AND m.repo_id = c.repo_id "
            "AND m.revision = c.revision WHERE m.scan_id = ? "
            "ORDER BY m.repo_id, m.similarity DESC, m.match_id"
        )
        matches = con.sql(sql, params=[scan_id]).to_arrow_table().to_pylist()
    finally:
        con.close()
    statuses: dict[str, int] = {}
    for r in ckpts:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    meta = (
        f"scan <code>{_e(scan_id)}</code> on {_e(ckpts[0]['scan_date'])}; config hash "
        f"<code>{_e(ckpts[0]['scan_config_hash'])}</code>; {len(ckpts)} checkpoints ({_e(counts)}); "
        f"{len(matches)} matches on {len({m['artwork_id'] for m in matches})} protected artworks"
    )
    sections = "".join(_match_section(m) for m in matches) or "<p>No matches.</p>"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dmsec scan {_e(scan_id)}</title>'
        f"<style>{_CSS}</style></head><body><header><h1>dmsec scan report</h1>"
        f'<p class="meta">{meta}</p></header>'
        f'<section id="checkpoints"><h2>Checkpoints</h2>{_checkpoints_table(ckpts)}</section>'
        f'<section id="matches"><h2>Matches ({len(matches)})</h2>{sections}</section></body></html>'
    )


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
