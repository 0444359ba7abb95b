"""`dmsec scan --dry-run`: what a scan would list, pull and scan, with nothing pulled or extracted.

    dry = dry_run(config, echo)          # one line per listed checkpoint, then a total line

It plans exactly as a scan does (`dmsec.scan.plan`: the same listing or target, the same ledger,
the same per-repo hub calls for what is not in the ledger) and then, for each checkpoint the scan
would run, prints what the pull policy would download (or why it refuses) and which base model it
would be paired with (through the base registry `source.bases`) and the prompt the hub's metadata
names (`dmsec.models.prompts`; a kohya file's own metadata is read only once pulled). No
checkpoint file is downloaded, no result row or ledger mark is written. The registry is resolved as for a scan (a zoo source
builds its default registry from the zoo's images if it has none yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dmsec.hub import CheckpointRef, Ledger
from dmsec.hub.bases import base_locations, parse_bases
from dmsec.hub.pull_policy import PullPolicy
from dmsec.models.prompts import (
    HUB_INSTANCE_PROMPT,
    HUB_TRAINED_WORDS,
    HUB_WIDGET_PROMPTS,
    PublishedText,
    discover_prompt,
    hub_list,
)
from dmsec.scan.config import ScanConfig
from dmsec.scan.plan import ScanPlan, plan_scan, where_listed
from dmsec.scan.resolve import resolve_scan
from dmsec.storage import is_s3

Echo = Callable[[str], None]


@dataclass(frozen=True)
class DryRun:
    """What `dry_run` found: the plan, and the refs the pull policy would refuse."""

    plan: ScanPlan
    refused: int

    @property
    def to_scan(self) -> int:
        """Checkpoints the scan would pull and extract."""
        return len(self.plan.items) - self.refused


def results_ledger(out: str) -> Ledger:
    """The ledger of results location `out`, read where it is (no mirror, no lock)."""
    if not is_s3(out):
        from dmsec.results.store import ResultsStore

        return Ledger(ResultsStore(out).ledger_path)
    from dmsec.results.remote import S3Results

    return Ledger(f"{out[len('s3://') :].rstrip('/')}/ledger.parquet", filesystem=S3Results(out).fs)


def _short(ref: dict | CheckpointRef | tuple[str, str, str]) -> str:
    if isinstance(ref, tuple):
        return f"{ref[1]}@{ref[2][:12]}"
    row = ref.to_dict() if isinstance(ref, CheckpointRef) else ref
    return f"{row['repo_id']}@{str(row['revision'])[:12]}"


def plan_line(ref: CheckpointRef, policy: PullPolicy, bases: tuple[str, ...]) -> tuple[str, bool]:
    """(the line for a checkpoint the scan would run, whether the pull policy refuses it)."""
    selection = policy.select(ref)
    if selection.refusal is not None:
        return f"  skip     {_short(ref)}  refused by the pull policy: {selection.refusal}", True
    where = base_locations(ref.base_model, ref.family, parse_bases(bases))
    base = (
        " or ".join(f"{w.source_uri}:{w.repo_id}" if w.source_uri else w.repo_id for w in where)
        or None
    )
    hub = ref.extra or {}
    published = PublishedText(
        readme_prompt=hub.get(HUB_INSTANCE_PROMPT),
        trained_words=hub_list(hub, HUB_TRAINED_WORDS),
        widget_prompts=hub_list(hub, HUB_WIDGET_PROMPTS),
    )
    prompt = discover_prompt(published)
    said = f"prompt {prompt.text!r} ({prompt.source})" if prompt.text else "prompt: from the weights' card or metadata once pulled, else none"  # fmt: skip
    sizes = [f.size for f in selection.files]
    size = (
        f", {sum(s for s in sizes if s is not None) / 2**20:.1f} MiB" if None not in sizes else ""
    )
    names = ", ".join(f.path for f in selection.files[:4])
    more = f" (+{len(selection.files) - 4} more)" if len(selection.files) > 4 else ""
    return (
        f"  scan     {_short(ref)}  {ref.kind}, base {base or 'unknown'} (family {ref.family or 'unknown'}); "
        f"{said}; pull {len(selection.files)} files{size}: {names}{more}",
        False,
    )


def dry_run(config: ScanConfig, echo: Echo = print) -> DryRun:
    """Plan the scan `config` describes and print it (see the module docstring)."""
    resolved = resolve_scan(config, echo)
    plan = plan_scan(resolved, results_ledger(config.results.out), scan_id="dry-run")
    echo(f"dry run: listing {where_listed(resolved)}")
    for ref in plan.already:
        echo(f"  ledger   {_short(ref)}  already scanned at this revision with this config")
    for item in plan.settled:
        echo(f"  {item.status:<8} {_short(item.ref)}  {item.error}")
    refused = 0
    for item in plan.items:
        line, refusal = plan_line(CheckpointRef.from_dict(item.ref), config.pull, config.source.bases)  # fmt: skip
        refused += refusal
        echo(line)
    dry = DryRun(plan, refused)
    echo(f"dry run: {len(plan.listed)} listed, {dry.to_scan} would be pulled and scanned, "
         f"{refused} refused by the pull policy, {len(plan.already)} already in the ledger, "
         f"{len(plan.settled)} settled without scanning; nothing was pulled or extracted")  # fmt: skip
    if plan.partial:
        echo(f"listing PARTIAL: a page failed ({plan.listing_error}); a scan would list the rest next time")  # fmt: skip
    return dry
