"""The pull stage: download a checkpoint and its base model safely into the cache.

Outcomes: the policy refuses the checkpoint before any download (pickle-only weights, over a size
cap) -> "skipped" with the policy's reason; the pull refuses it after download (corrupt file, hash
or size mismatch) -> "error"; the hub or network fails -> "error", retryable (the ledger lists it
again next run). The base model is pulled too (every fine-tune needs it as the pair's pretrained
half): the location the base registry (`source.bases`, `dmsec.hub.bases`) gives for the hub's
base name or the family, else the ref's `base_model` as a repo id in the scan's own source, else
the registry's `*` entry. A base is pulled once per worker and location, from any source (a
Hugging Face repo at a pinned revision, an S3 key, a local folder or file), through the same
`Puller` as the checkpoints.
Scanner verdicts (the hub's own scan from the listing, our pickle scan at pull time) go to the
item's `security` rows, whatever the outcome; with `pull.allow_pickle` the item carries the
opt-in on to the loaders (`WarmModels`), which scan each pickle again before loading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from dmsec.errors import CheckpointError
from dmsec.hub import CheckpointRef, Puller, PullPolicy, source_from_uri
from dmsec.hub.bases import BaseLocation, base_locations, parse_bases
from dmsec.hub.security import hub_verdicts
from dmsec.hub.source import HubError, HubSource, RefNotFoundError
from dmsec.scan.records import ScanItem
from dmsec.scan.stages.base import Stage


class PullStage(Stage):
    """Pull each item's checkpoint and base model; record their local paths."""

    name: ClassVar[str] = "pull"

    def __init__(
        self,
        source_uri: str,
        cache_dir: str | None = None,
        policy: PullPolicy | None = None,
        bases: list[str] | None = None,
    ) -> None:
        self.source = source_from_uri(source_uri)
        self.bases = parse_bases(bases or ())  # the base registry ("name=location" entries)
        self.puller = Puller(Path(cache_dir) if cache_dir else None, policy or PullPolicy())
        self._bases: dict[str, tuple[str, str]] = {}  # location key -> (base key, local path)
        self._sources: dict[str, HubSource] = {}

    def process(self, item: ScanItem) -> None:
        ref = CheckpointRef.from_dict(item.ref)
        refusal = self.puller.policy.select(ref).refusal
        if refusal is not None:
            item.skip(self.name, f"refused by the pull policy: {refusal}")
            return
        item.security += [v.to_dict() for v in hub_verdicts(ref.extra, ref.source)]
        result = self.puller.pull(self.source, ref)
        item.security += [v.to_dict() for v in result.security]
        if not result.ok:
            item.fail(self.name, f"pull {result.status}: {result.error}", retryable=result.status == "failed")  # fmt: skip
            return
        item.local_path = str(result.path)
        item.allow_pickle = self.puller.policy.allow_pickle  # the loaders scan and load them again
        item.base_key, item.base_path = self._pull_base(ref)

    def _pull_base(self, ref: CheckpointRef) -> tuple[str, str]:
        """(key, local path) of the ref's base model, pulled once per worker and location."""
        where = base_locations(ref.base_model, ref.family, self.bases)
        if not where:
            raise CheckpointError(ref.repo_id, "names no base model; FineXtract needs the pretrained model it was fine-tuned from (map its family in `source.bases`)")  # fmt: skip
        misses = []
        for location in where:
            if location.key in self._bases:
                return self._bases[location.key]
            source = self._source(location)
            try:
                base_ref = source.get(location.repo_id, location.revision)
            except RefNotFoundError as exc:
                misses.append(f"{location.repo_id!r} is not in {source.uri!r} ({exc})")
                continue
            result = self.puller.pull(source, base_ref)
            if not result.ok:
                reason = f"base model {location.repo_id!r}: pull {result.status}: {result.error}"
                if result.status == "refused":
                    raise CheckpointError(ref.repo_id, reason)
                raise HubError(f"{ref.repo_id}: {reason}")  # the hub's fault: retried next run
            self._bases[location.key] = ("|".join(base_ref.key), str(result.path))
            return self._bases[location.key]
        raise CheckpointError(ref.repo_id, f"base model {ref.base_model!r}: {'; '.join(misses)}; map it in `source.bases`")  # fmt: skip

    def _source(self, location: BaseLocation) -> HubSource:
        """The scan's own source, or the one a registry location names (built once)."""
        if location.source_uri is None:
            return self.source
        if location.source_uri not in self._sources:
            self._sources[location.source_uri] = source_from_uri(location.source_uri)
        return self._sources[location.source_uri]
