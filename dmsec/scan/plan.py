"""Planning a scan: list the source, drop what the ledger holds, complete the rest.

    plan = plan_scan(resolved, ledger, scan_id)

1. one target (`source.target`): the source's `get` for that repo id and revision; else the
   source's `listing` under the config's filter, page by page as it is consumed;
2. a listed ref the ledger holds at its revision with this config hash is dropped before the hub
   is asked anything about it (`already_scanned`);
3. the rest get their `details` (HF: one `model_info` call each); a ref whose weights and config
   files hash the same as a revision the ledger already holds (`Ledger.unchanged`: a README-only
   commit) becomes a `skipped` item, committed without pulling anything;
4. pending items are ordered by base model, so warm bases serve runs of fine-tunes.
A listing page that fails (after the source's retries) ends the listing there: the plan is
*partial* (`listing_error` says why), what was listed is scanned, the scan still exits 0, and the
next run lists again (nothing unlisted reached the ledger). A per-repo call that fails after its
retries becomes that checkpoint's error item, retried next run.
Known limit: the pending items are collected before the executor starts (Ray Data's `from_items`
takes a list, and ordering by base model needs them all); what is no longer collected is the
part of the listing the ledger already holds, and its per-repo calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from dmsec.hub import CheckpointRef, HubSource, Ledger, ListFilter, source_from_uri
from dmsec.hub.ledger import unchanged_entry
from dmsec.hub.ref import parse_timestamp
from dmsec.hub.source import HubError
from dmsec.scan.records import ScanItem, describe, is_retryable
from dmsec.scan.resolve import ResolvedScan

logger = logging.getLogger(__name__)


@dataclass
class ScanPlan:
    """What a scan will do with what its source listed."""

    listed: list[tuple[str, str, str]] = field(default_factory=list)  # (source, repo, revision)
    already: list[CheckpointRef] = field(default_factory=list)  # in the ledger: no hub call made
    settled: list[ScanItem] = field(default_factory=list)  # ended before any stage
    items: list[ScanItem] = field(default_factory=list)  # to run through the stages
    listing_error: str | None = None  # why the listing stopped early (a partial listing)

    @property
    def partial(self) -> bool:
        """True when a listing page failed, so not everything was listed."""
        return self.listing_error is not None


def list_filter(resolved: ResolvedScan) -> ListFilter:
    """The listing filter the config's `source` section asks for."""
    s = resolved.config.source
    return ListFilter(
        kinds=frozenset(s.kinds),
        base_models=frozenset(s.base_models) if s.base_models else None,
        since=parse_timestamp(s.since) if s.since else None,
        limit=s.limit,
    )


def where_listed(resolved: ResolvedScan) -> str:
    """The listing, or the one target, in words for the log."""
    s = resolved.config.source
    if s.target is None:
        return resolved.source_uri
    return f"{resolved.source_uri} (one target: {s.target}@{s.revision or 'newest'})"


def _listed(source: HubSource, resolved: ResolvedScan, plan: ScanPlan) -> Iterator[CheckpointRef]:
    """The refs to plan: the one target, or the listing until it ends or a page fails."""
    s = resolved.config.source
    if s.target is not None:
        yield source.get(s.target, s.revision)  # a missing target is the caller's error
        return
    try:
        yield from source.listing(list_filter(resolved))
    except HubError as exc:
        plan.listing_error = describe(exc)
        logger.warning("listing of %s stopped early: %s", resolved.source_uri, plan.listing_error)


def plan_scan(resolved: ResolvedScan, ledger: Ledger, scan_id: str) -> ScanPlan:
    """Plan the scan of `resolved` against `ledger` (see the module docstring)."""
    source = source_from_uri(resolved.source_uri)
    config_hash = resolved.config_hash
    plan = ScanPlan()
    entries = ledger.entries()  # read once; the scan marks it only after planning
    known = ledger.scanned(config_hash)
    pending: list[CheckpointRef] = []
    for listed in _listed(source, resolved, plan):
        plan.listed.append(listed.key)
        if listed.key in known:
            plan.already.append(listed)
            continue
        item = ScanItem(ref=listed.to_dict(), scan_id=scan_id, config_hash=config_hash)
        try:
            ref = source.details(listed)
        except Exception as exc:  # one repo's failure is its row, never the scan's
            item.fail("pull", f"hub details: {describe(exc)}", retryable=is_retryable(exc))
            plan.settled.append(item)
            continue
        if ref is None:  # gone, gated, private, or a token that expired: retried next run
            item.fail("pull", "hub details: the hub no longer serves it as a checkpoint (gone, gated or private)", retryable=True)  # fmt: skip
            plan.settled.append(item)
            continue
        same = unchanged_entry(entries, ref, config_hash)
        if same is not None:
            item = ScanItem(ref=ref.to_dict(), scan_id=scan_id, config_hash=config_hash)
            item.skip("pull", f"unchanged: weights and configs hash as at revision {same.revision} (scanned {same.scanned_at:%Y-%m-%d}, {same.status}); not scanned again")  # fmt: skip
            plan.settled.append(item)
            continue
        pending.append(ref)
    pending.sort(key=lambda r: (r.base_model or "", r.repo_id, r.revision))
    plan.items = [ScanItem(ref=r.to_dict(), scan_id=scan_id, config_hash=config_hash, order=i)
                  for i, r in enumerate(pending)]  # fmt: skip
    return plan
