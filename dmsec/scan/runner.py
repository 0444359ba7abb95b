"""The scan's driver: plan, run the stages through an executor, commit results, then the ledger.

    summary = run_scan(config)        # the executor `run.executor` names (dmsec.scan.executors)

1. resolve the config (source, registry, hash); lock the results folder; delete orphan parts
   (results on S3: lock the bucket prefix, recover it, refill the local mirror from it);
2. re-mark the ledger from committed checkpoint rows (a crash after data, before ledger);
3. list refs, keep those the ledger has not seen with this config hash, order them by base model;
4. hand them to the executor (the stages: pull -> extract -> match -> authenticate), which yields
   finished items in any order; every `flush_every` items are committed as one part (data files,
   then the ledger marks), with a progress line per checkpoint;
5. write the scan record (resolved config, versions, seeds, counts, the settings chosen from the
   registry and from each checkpoint's model, each distinct choice said once), which revisions were listed
   (`scans/<id>/listed.parquet`), the findings of the location (`findings/findings.parquet`,
   new first), the report and `scans/<id>/summary.json`.
A rerun with nothing new writes no table rows (only its scan record, listing and summary, and the
refreshed findings, whose `new` flags clear). With results on S3 every commit
is published to the bucket in the same order (data files, then the ledger) before the scan goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dmsec.config import config_to_yaml
from dmsec.hub import CheckpointRef, Ledger, ListFilter, source_from_uri
from dmsec.hub.ref import parse_timestamp
from dmsec.provenance import package_versions
from dmsec.results.findings import FINDINGS_FILE, write_findings, write_listed
from dmsec.results.remote import S3Results
from dmsec.results.store import ResultsStore, atomic_write_bytes
from dmsec.scan.config import ScanConfig
from dmsec.scan.executors import Executor, executor_named
from dmsec.scan.logs import scan_log
from dmsec.scan.records import ScanItem, part_tables, utc_now
from dmsec.scan.resolve import ResolvedScan, resolve_scan
from dmsec.scan.summary import ScanSummary
from dmsec.storage import is_s3

logger = logging.getLogger(__name__)

Echo = Callable[[str], None]
Publish = Callable[[list[Path]], None]


def new_scan_id(now: datetime | None = None) -> str:
    """`YYYYMMDDTHHMMSSffffffZ-xxxxxx`: sorts by start time (to the microsecond, so two scans
    started in one second still sort in order; the findings' "new" rests on it), unique per run."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def ledger_status(item: ScanItem) -> str:
    """What the ledger records: the item's status, or "failed" (retried next run) if retryable."""
    return "failed" if item.status == "error" and item.retryable else item.status


def list_refs(resolved: ResolvedScan) -> list[CheckpointRef]:
    """Every ref the source lists under the config's filter."""
    s = resolved.config.source
    flt = ListFilter(
        kinds=frozenset(s.kinds),
        base_models=frozenset(s.base_models) if s.base_models else None,
        since=parse_timestamp(s.since) if s.since else None,
        limit=s.limit,
    )
    return list(source_from_uri(resolved.source_uri).list(flt))


def repair_ledger(store: ResultsStore, ledger: Ledger, config_hash: str) -> int:
    """Mark in the ledger every committed checkpoint it lacks (data is committed first)."""
    committed = store.committed_statuses(config_hash)
    entries = {e.key[:3]: e.status for e in ledger.entries() if e.scan_config_hash == config_hash}
    missing = [(k, s) for k, s in committed.items() if entries.get(k) != s]
    if not missing:
        return 0
    refs = [(CheckpointRef(source=k[0], repo_id=k[1], revision=k[2], kind="full"), s) for k, s in missing]  # fmt: skip
    return ledger.mark_many(refs, config_hash)


def plan_items(refs: list[CheckpointRef], ledger: Ledger, scan_id: str, config_hash: str) -> list[ScanItem]:  # fmt: skip
    """Pending refs as items, ordered by base model (so warm bases serve runs of fine-tunes)."""
    pending = sorted(ledger.pending(refs, config_hash), key=lambda r: (r.base_model or "", r.repo_id, r.revision))  # fmt: skip
    return [ScanItem(ref=r.to_dict(), scan_id=scan_id, config_hash=config_hash, order=i) for i, r in enumerate(pending)]  # fmt: skip


def note_chosen(item: ScanItem, chosen: dict[str, dict[str, Any]], echo: Echo) -> None:
    """Count the extract settings chosen from `item`'s model into `chosen`; say each distinct
    choice once, when it is first made."""
    settings = item.extract_settings.get("chosen_from_model")
    if not settings:
        return
    key = json.dumps(settings, sort_keys=True)
    if key not in chosen:
        named = (("similarity", "space"), ("defaults", "guidance preset"))
        picked = ", ".join(f"{label} {settings[k]}" for k, label in named if k in settings)
        echo(f"extract settings from the model ({settings['why']}): {picked} "
             "(extract.similarity / extract.defaults override)")  # fmt: skip
        chosen[key] = {**settings, "checkpoints": 0}
    chosen[key]["checkpoints"] += 1


class _PartWriter:
    """Commits finished items in parts: data files, then ledger marks, then staging cleanup."""

    def __init__(self, store: ResultsStore, ledger: Ledger, resolved: ResolvedScan, scan_id: str, scan_date: str, publish: Publish) -> None:  # fmt: skip
        self.store, self.ledger, self.resolved, self.publish = store, ledger, resolved, publish
        self.scan_id, self.scan_date = scan_id, scan_date
        self.buffer: list[ScanItem] = []
        self.part = 0
        self.rows = {"checkpoints": 0, "candidates": 0, "matches": 0, "security": 0}

    def add(self, item: ScanItem) -> None:
        """Buffer a finished item; commit when `flush_every` are buffered."""
        self.buffer.append(item)
        if len(self.buffer) >= self.resolved.config.results.flush_every:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered items as one part, then mark them in the ledger."""
        if not self.buffer:
            return
        tables = part_tables(self.buffer)
        counts = self.store.commit_part(self.scan_id, self.scan_date, self.part, tables)
        refs = [(CheckpointRef.from_dict(it.ref), ledger_status(it)) for it in self.buffer]
        self.ledger.mark_many(refs, self.resolved.config_hash)
        written = [self.store.part_path(t, self.scan_date, self.scan_id, self.part)
                   for t in ("candidates", "matches", "security", "checkpoints") if counts[t] or t == "checkpoints"]  # fmt: skip
        self.publish([*written, self.store.ledger_path])
        for table, n in counts.items():
            self.rows[table] += n
        if not self.resolved.config.results.keep_staging:
            for it in self.buffer:
                if it.staging_dir:
                    shutil.rmtree(it.staging_dir, ignore_errors=True)
        self.part += 1
        self.buffer = []


@contextlib.contextmanager
def open_results(out: str, echo: Echo) -> Iterator[tuple[ResultsStore, Publish, str]]:
    """Lock the results location; yield (local store, publish, display name). For S3 the store is
    the recovered, refilled mirror and `publish` uploads to the bucket; locally it does nothing."""
    if not is_s3(out):
        store = ResultsStore(out)
        with store.lock():
            yield store, lambda paths: None, str(store.root.resolve())
        return
    remote = S3Results(out)
    with remote.lock(), remote.store.lock():
        removed = remote.begin()
        if removed:
            echo(f"recovered {remote.uri} from an interrupted scan: removed {len(removed)} uncommitted parts")  # fmt: skip
        yield remote.store, remote.publish, remote.uri


def run_scan(config: ScanConfig, executor: Executor | None = None, echo: Echo = print, log_format: str = "text") -> ScanSummary:  # fmt: skip
    """Run one scan end to end (see the module docstring) with `executor` (default: the one
    `config.run.executor` names); returns its summary. Progress goes to `echo` as `log_format`
    says ("text" lines, or "json" objects: `dmsec.scan.logs`)."""
    executor = executor or executor_named(config.run.executor)
    started = time.perf_counter()
    now = datetime.now(UTC)
    scan_id, scan_date = new_scan_id(now), f"{now:%Y-%m-%d}"
    log = scan_log(log_format, scan_id, echo)
    echo = log.message
    echo(f"resolving source {config.source.uri} and the registry ...")
    resolved = resolve_scan(config, echo)
    with open_results(config.results.out, echo) as (store, publish, where):
        summary = ScanSummary(scan_id=scan_id, out=where, started_at=now.isoformat())
        removed = store.recover()
        if removed:
            echo(f"recovered from an interrupted scan: removed {len(removed)} uncommitted files")
        ledger = Ledger(store.ledger_path)
        repaired = repair_ledger(store, ledger, resolved.config_hash)
        if repaired:
            echo(f"ledger: re-marked {repaired} checkpoints committed by an interrupted scan")
        refs = list_refs(resolved)
        items = plan_items(refs, ledger, scan_id, resolved.config_hash)
        summary.listed, summary.already_scanned = len(refs), len(refs) - len(items)
        echo(f"scan {scan_id}: {len(refs)} checkpoints listed from {resolved.source_uri}, "
             f"{len(items)} to scan ({summary.already_scanned} already in the ledger)")  # fmt: skip
        record: dict[str, Any] = {"scan_id": scan_id, "scan_date": scan_date, "started_at": now.isoformat(),
                  "status": "running", "config_hash": resolved.config_hash,
                  "versions": package_versions(), "seeds": resolved.seeds(),
                  "source": resolved.source_uri, "registry": resolved.registry_location,
                  "registry_embedder": {"name": resolved.embedder, "chosen": resolved.embedder_reason}}  # fmt: skip
        folder = store.write_scan_record(scan_id, record, config_to_yaml(resolved.resolved_dict()))
        listed = write_listed(store, scan_id, (r.key[:3] for r in refs))
        publish([folder / "config.yaml", folder / "run.json", listed])
        writer = _PartWriter(store, ledger, resolved, scan_id, scan_date, publish)
        staging = store.staging_dir(scan_id)
        if resolved.config.results.staging:
            staging = Path(resolved.config.results.staging).expanduser() / scan_id
        chosen: dict[str, dict[str, Any]] = {}
        if items:
            for done, item in enumerate(executor(items, resolved, staging), start=1):
                if item.pending:
                    item.status = "ok"
                item.finished_at = utc_now()
                note_chosen(item, chosen, echo)
                summary.add(item)
                log.checkpoint(done, len(items), item)
                writer.add(item)
            writer.flush()
        if not resolved.config.results.keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
        summary.rows = dict(writer.rows)
        record.update(status="finished", finished_at=utc_now(), counts=summary.counts(), rows=summary.rows,
                      extract_settings_from_model=list(chosen.values()))  # fmt: skip
        store.write_scan_record(scan_id, record)  # finished: the newest scan, for `new`
        _findings_and_report(config, store, scan_id, bool(items), summary, publish)
        summary.wall_s = time.perf_counter() - started
        record.update(wall_s=round(summary.wall_s, 2), report=summary.report)
        folder = store.write_scan_record(scan_id, record)
        atomic_write_bytes(folder / "summary.json", summary.to_json().encode())
        publish([folder / "run.json", folder / "summary.json"])
    return summary


def _findings_and_report(config: ScanConfig, store: ResultsStore, scan_id: str, scanned: bool,
                         summary: ScanSummary, publish: Publish) -> None:  # fmt: skip
    """Derive the location's findings (into `findings/findings.parquet` and the summary), then
    write the report if this scan scanned anything. Results on S3: derived from a snapshot of the
    bucket (the mirror holds only this scan's matches), written into the mirror and published."""
    view = store.root
    if is_s3(config.results.out):
        from dmsec.results.query import readable

        view = Path(readable(config.results.out))
    table, path = write_findings(view)
    summary.findings = table.to_pylist()
    if view != store.root:
        mirrored = store.root / FINDINGS_FILE
        mirrored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, mirrored)
        path = mirrored
    publish([path])
    if config.results.report and scanned:
        from dmsec.results.report import write_report

        report = write_report(view, scan_id, store.report_path(scan_id)).resolve()
        publish([report])
        where = summary.out
        summary.report = f"{where}/reports/{report.name}" if is_s3(config.results.out) else str(report)  # fmt: skip
