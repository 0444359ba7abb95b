"""`dmsec query`, `dmsec report` and `dmsec triage` over a scan's results (`dmsec scan`:
`dmsec.scan.cli`).

dmsec query                       # the findings, new first (FINDINGS_SQL)
dmsec query "SELECT repo_id, artwork_title, similarity FROM matches" [--results DIR]
dmsec report [--scan ID] [--results DIR] [--out FILE]
dmsec triage FINDING_ID --status confirmed|dismissed|escalated --note TEXT [--results DIR]
"""

from __future__ import annotations

import json
import sys

import click

from dmsec.errors import DmsecError
from dmsec.results.triage import TRIAGE_STATUSES

#: what `dmsec query` without SQL shows: the findings, new and untriaged first
FINDINGS_SQL = (
    "SELECT finding_id, new, confidence, triage_status AS triage, repo_id, artwork_title, "
    "best_similarity AS best_sim, support, margin, cgidm_score AS cgi_dm, band_reason, "
    "first_seen_scan, last_seen_scan FROM findings"
)


@click.command()
@click.argument("sql", required=False)
@click.option("--results", "root", default="results", show_default=True, help="Results folder (or s3://bucket/prefix).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)  # fmt: skip
def query(sql: str | None, root: str, fmt: str) -> None:
    """Run SQL (DuckDB) over the result tables: findings, triage, checkpoints, candidates,
    matches, scans. Without SQL: the findings, new and untriaged first."""
    sql = sql or FINDINGS_SQL
    from dmsec.results.query import query as run_query

    try:
        table = run_query(root, sql)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    binary = [f.name for f in table.schema if str(f.type) in ("binary", "large_binary")]
    rows = [{k: (f"<{len(v)} bytes>" if k in binary and v is not None else v) for k, v in r.items()} for r in table.to_pylist()]  # fmt: skip
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, default=str))
    elif fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=table.column_names)
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table(table.column_names, rows)


def _print_table(columns: list[str], rows: list[dict[str, object]]) -> None:
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    click.echo(f"({len(rows)} rows)")


def _cell(value: object) -> str:
    text = f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@click.command()
@click.option("--scan", "scan_id", default=None, help="Scan id (default: the newest scan with results).")  # fmt: skip
@click.option("--results", "root", default="results", show_default=True, help="Results folder (or s3://bucket/prefix).")  # fmt: skip
@click.option("--out", default=None, help="HTML file (default: <results>/reports/<scan>.html).")
def report(scan_id: str | None, root: str, out: str | None) -> None:
    """Write the self-contained HTML report: one card per finding (new first, filterable), as of
    scan `--scan` (default: the newest)."""
    from dmsec.results.report import write_report

    try:
        path = write_report(root, scan_id, out)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))


@click.command()
@click.argument("finding_id")
@click.option("--status", type=click.Choice(TRIAGE_STATUSES), required=True, help="The decision.")
@click.option("--note", required=True, help="Why (kept with the decision).")
@click.option("--by", default=None, help="Who decides (default: $DMSEC_USER, else login@host).")
@click.option("--results", "root", default="results", show_default=True, help="Results folder (or s3://bucket/prefix).")  # fmt: skip
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=60.0, show_default=True, help="Seconds to wait for a running scan's lock on the results location.")  # fmt: skip
def triage(finding_id: str, status: str, note: str, by: str | None, root: str, wait_s: float) -> None:  # fmt: skip
    """Record a decision on a finding (appended to the `triage` table; the latest one counts and
    survives rescans). Takes the results location's writer lock, like a scan."""
    from dmsec.results.triage import record_triage

    try:
        row, where = record_triage(root, finding_id, status, note, by, wait_s)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{row['finding_id']}: {row['status']} by {row['decided_by']} at {row['decided_at']:%Y-%m-%d %H:%M:%S} UTC ({where})")  # fmt: skip
