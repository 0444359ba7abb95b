"""The scan's driver: plan, run the stages through an executor, commit results, then the ledger.

    summary = run_scan(config)        # the executor `run.executor` names (dmsec.scan.executors)

1. resolve the config (source, registry, hash); lock the results folder; delete orphan parts
   (results on S3: lock the bucket prefix, recover it, refill the local mirror from it);
2. re-mark the ledger from committed checkpoint rows (a crash after data, before ledger);
3. plan (`dmsec.scan.plan`): list the source page by page (or get the one `source.target`), drop
   what the ledger holds before any per-repo hub call, complete the rest, settle unchanged
   weights as skipped; a failed listing page makes the listing *partial*, not the scan failed;
4. window by window as the listing goes on: commit the settled items; hand the pending ones to
   the executor (the stages: pull -> extract -> match -> authenticate), which yields finished
   items in any order; every `flush_every` items are committed as one part (data files, then the
   ledger marks), with a progress line per checkpoint;
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
import itertools
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dmsec.config import config_to_yaml
from dmsec.hub import CheckpointRef, Ledger
from dmsec.provenance import package_versions
from dmsec.results.findings import FINDINGS_FILE, write_findings, write_listed
from dmsec.results.remote import S3Results
from dmsec.results.store import ResultsStore, atomic_write_bytes
from dmsec.scan.config import ScanConfig
from dmsec.scan.executors import Executor, executor_named
from dmsec.scan.logs import ScanLog, scan_log
from dmsec.scan.plan import ScanPlan, ScanWindow, plan_windows, where_listed
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


def repair_ledger(store: ResultsStore, ledger: Ledger, config_hash: str) -> int:
    """Mark in the ledger every committed checkpoint it lacks (data is committed first)."""
    committed = store.committed_statuses(config_hash)
    entries = {e.key[:3]: e.status for e in ledger.entries() if e.scan_config_hash == config_hash}
    missing = [(k, s) for k, s in committed.items() if entries.get(k) != s]
    if not missing:
        return 0
    refs = [(CheckpointRef(source=k[0], repo_id=k[1], revision=k[2], kind="full"), s) for k, s in missing]  # fmt: skip
    return ledger.mark_many(refs, config_hash)


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


def _run_windows(windows: Iterable[ScanWindow], executor: Executor, resolved: ResolvedScan, staging: Path,
                 writer: _PartWriter, summary: ScanSummary, log: ScanLog,
                 on_finished: Callable[[ScanItem], None]) -> bool:  # fmt: skip
    """Commit each window's settled items and run its items through `executor`, one window at a
    time (the listing goes on between windows), calling `on_finished` on each finished item; True
    when any item went through the stages."""
    done = planned = 0
    ran = False
    for window in windows:
        planned += len(window.settled) + len(window.items)
        finished = executor(window.items, resolved, staging) if window.items else ()
        for item in itertools.chain(window.settled, finished):
            if item.pending:
                item.status = "ok"
            item.finished_at = utc_now()
            on_finished(item)
            done += 1
            summary.add(item)
            log.checkpoint(done, planned, item)
            writer.add(item)
        ran = ran or bool(window.items)
    return ran


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
        echo(f"scan {scan_id}: listing {where_listed(resolved)}")
        record: dict[str, Any] = {"scan_id": scan_id, "scan_date": scan_date, "started_at": now.isoformat(),
                  "status": "running", "config_hash": resolved.config_hash,
                  "versions": package_versions(), "seeds": resolved.seeds(),
                  "source": resolved.source_uri, "target": config.source.target and f"{config.source.target}@{config.source.revision or 'newest'}",
                  "registry": resolved.registry_location,
                  "registry_embedder": {"name": resolved.embedder, "chosen": resolved.embedder_reason}}  # fmt: skip
        folder = store.write_scan_record(scan_id, record, config_to_yaml(resolved.resolved_dict()))
        publish([folder / "config.yaml", folder / "run.json"])
        writer = _PartWriter(store, ledger, resolved, scan_id, scan_date, publish)
        staging = store.staging_dir(scan_id)
        if resolved.config.results.staging:
            staging = Path(resolved.config.results.staging).expanduser() / scan_id
        chosen: dict[str, dict[str, Any]] = {}
        plan = ScanPlan()
        windows = plan_windows(resolved, ledger, scan_id, plan)
        scanned = _run_windows(
            windows,
            executor,
            resolved,
            staging,
            writer,
            summary,
            log,
            lambda item: note_chosen(item, chosen, echo),
        )
        writer.flush()
        summary.listed, summary.already_scanned = len(plan.listed), len(plan.already)
        summary.listing_error = plan.listing_error
        echo(f"scan {scan_id}: {len(plan.listed)} checkpoints listed from {where_listed(resolved)}: "
             f"{summary.already_scanned} already in the ledger, {len(summary.checkpoints)} scanned or settled")  # fmt: skip
        if plan.partial:
            echo(f"listing PARTIAL: a page failed ({plan.listing_error}); what was listed is scanned, the rest is listed again next scan")  # fmt: skip
        publish([write_listed(store, scan_id, plan.listed)])
        if not resolved.config.results.keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
        summary.rows = dict(writer.rows)
        record.update(status="finished", finished_at=utc_now(), counts=summary.counts(), rows=summary.rows,
                      extract_settings_from_model=list(chosen.values()))  # fmt: skip
        store.write_scan_record(scan_id, record)  # finished: the newest scan, for `new`
        _findings_and_report(config, store, scan_id, scanned, summary, publish)
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
