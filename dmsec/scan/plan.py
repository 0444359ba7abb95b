"""Planning a scan: list the source, drop what the ledger holds, complete the rest.

    plan = ScanPlan()
    for window in plan_windows(resolved, ledger, scan_id, plan):   # as the listing is consumed
        ...                                                       # window.settled, window.items
    plan = plan_scan(resolved, ledger, scan_id)                   # all at once (dry run)

1. one target (`source.target`): the source's `get` for that repo id and revision; else the
   source's `listing` under the config's filter, page by page as it is consumed;
2. a listed ref the ledger holds at its revision with this config hash is dropped before the hub
   is asked anything about it (`already_scanned`);
3. the rest get their `details` (HF: one `model_info` call each); a ref whose weights and config
   files hash the same as a revision the ledger already holds (`Ledger.unchanged`: a README-only
   commit) becomes a `skipped` item, committed without pulling anything;
4. every `WINDOW` pending checkpoints are handed on as a window, ordered by base model so warm
   bases serve runs of fine-tunes; the listing resumes when the window has been scanned.
A listing page that fails (after the source's retries) ends the listing there: the plan is
*partial* (`listing_error` says why), what was listed is scanned, the scan still exits 0, and the
next run lists again (nothing unlisted reached the ledger). A per-repo call that fails after its
retries becomes that checkpoint's error item, retried next run.
Known limit: streaming is by window, not by checkpoint (Ray Data's `from_items` takes a list, and
ordering by base model needs a batch), and a window's progress total is known only per window.
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
#: checkpoints handed to the executor at once: the listing goes on after each window is scanned,
#: so extraction starts after one window's per-repo calls and only the listed keys accumulate; large enough
#: that ordering by base model inside a window keeps bases warm, and that restarting the
#: executor's workers per window (Ray: actor pools, warm bases) costs little next to the window
WINDOW = 256


@dataclass
class ScanWindow:
    """Up to `WINDOW` checkpoints to run through the stages, and those settled on the way."""

    settled: list[ScanItem] = field(default_factory=list)
    items: list[ScanItem] = field(default_factory=list)


@dataclass
class ScanPlan:
    """What a scan will do with what its source listed."""

    listed: list[tuple[str, str, str]] = field(default_factory=list)  # (source, repo, revision)
    already: list[tuple[str, str, str]] = field(default_factory=list)  # in the ledger: not asked
    settled: list[ScanItem] = field(default_factory=list)  # ended before any stage
    items: list[ScanItem] = field(default_factory=list)  # to run through the stages
    listing_error: str | None = None  # why the listing stopped early (a partial listing)
    seen: set[tuple[str, str, str]] = field(default_factory=set, repr=False)

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


def _item(ref: CheckpointRef, scan_id: str, config_hash: str, order: int = 0) -> ScanItem:
    return ScanItem(ref=ref.to_dict(), scan_id=scan_id, config_hash=config_hash, order=order)


def plan_windows(
    resolved: ResolvedScan,
    ledger: Ledger,
    scan_id: str,
    plan: ScanPlan,
    window: int | None = WINDOW,
) -> Iterator[ScanWindow]:
    """Plan the scan of `resolved` against `ledger` window by window as the listing is consumed
    (see the module docstring); `plan` gathers what was listed, what the ledger held and whether
    the listing is partial. `window` None: one window, after the whole listing."""
    source = source_from_uri(resolved.source_uri)
    config_hash = resolved.config_hash
    entries = ledger.entries()  # read once: this scan's own marks never make a ref known here
    known = ledger.scanned(config_hash)
    current, order = ScanWindow(), 0
    pending: list[CheckpointRef] = []
    for listed in _listed(source, resolved, plan):
        if listed.key in plan.seen:  # a repo updated while the listing was paged shows twice
            continue
        plan.seen.add(listed.key)
        plan.listed.append(listed.key)
        if listed.key in known:
            plan.already.append(listed.key)
            continue
        try:
            ref = source.details(listed)
        except Exception as exc:  # one repo's failure is its row, never the scan's
            item = _item(listed, scan_id, config_hash)
            item.fail("pull", f"hub details: {describe(exc)}", retryable=is_retryable(exc))
            current.settled.append(item)
            continue
        if ref is None:  # gone, gated, private, or a token that expired: retried next run
            item = _item(listed, scan_id, config_hash)
            item.fail("pull", "hub details: the hub no longer serves it as a checkpoint (gone, gated or private)", retryable=True)  # fmt: skip
            current.settled.append(item)
            continue
        same = unchanged_entry(entries, ref, config_hash)
        if same is not None:
            item = _item(ref, scan_id, config_hash)
            item.skip("pull", f"unchanged: weights and configs hash as at revision {same.revision} (scanned {same.scanned_at:%Y-%m-%d}, {same.status}); not scanned again")  # fmt: skip
            current.settled.append(item)
            continue
        pending.append(ref)
        if window is not None and len(pending) >= window:
            current.items, order = _ordered(pending, scan_id, config_hash, order), order + len(pending)  # fmt: skip
            yield current
            current, pending = ScanWindow(), []
    current.items = _ordered(pending, scan_id, config_hash, order)
    if current.settled or current.items:
        yield current


def _ordered(refs: list[CheckpointRef], scan_id: str, config_hash: str, start: int) -> list[ScanItem]:  # fmt: skip
    """Items ordered by base model (so warm bases serve runs of fine-tunes), numbered on."""
    refs = sorted(refs, key=lambda r: (r.base_model or "", r.repo_id, r.revision))
    return [_item(r, scan_id, config_hash, start + i) for i, r in enumerate(refs)]


def plan_scan(resolved: ResolvedScan, ledger: Ledger, scan_id: str) -> ScanPlan:
    """The whole plan at once (`--dry-run`, tests): every window's items in one."""
    plan = ScanPlan()
    for window in plan_windows(resolved, ledger, scan_id, plan, window=None):
        plan.settled += window.settled
        plan.items += window.items
    return plan
