"""The pull stage: download a checkpoint and its base model safely into the cache.

Outcomes: the policy refuses the checkpoint before any download (pickle-only weights, over a size
cap) -> "skipped" with the policy's reason; the pull refuses it after download (corrupt file, hash
or size mismatch) -> "error"; the hub or network fails -> "error", retryable (the ledger lists it
again next run). The base model named by the ref (`ref.base_model`, the repo id of the pretrained
model in the same source, or the one `source.bases` maps the hub's base name or family to) is pulled
too; every fine-tune needs it as the pair's pretrained half.
Scanner verdicts (the hub's own scan from the listing, our pickle scan at pull time) go to the
item's `security` rows, whatever the outcome; with `pull.allow_pickle` the item carries the
opt-in on to the loaders (`WarmModels`), which scan each pickle again before loading it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from dmsec.errors import CheckpointError
from dmsec.hub import CheckpointRef, Puller, PullPolicy, source_from_uri
from dmsec.hub.security import hub_verdicts
from dmsec.hub.source import HubError, RefNotFoundError
from dmsec.models.family import base_for
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
        self.bases = tuple(bases or ())  # "name=repo_id": bases for family names (`base_for`)
        self.puller = Puller(Path(cache_dir) if cache_dir else None, policy or PullPolicy())
        self._bases: dict[str, tuple[str, str]] = {}

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
        """(key, local path) of the ref's base model, pulled once per worker."""
        ref = replace(ref, base_model=base_for(ref.base_model, ref.family, self.bases))
        if not ref.base_model:
            raise CheckpointError(ref.repo_id, "names no base model; FineXtract needs the pretrained model it was fine-tuned from")  # fmt: skip
        if ref.base_model not in self._bases:
            try:
                base_ref = self.source.get(ref.base_model)
            except RefNotFoundError as exc:
                raise CheckpointError(ref.repo_id, f"base model {ref.base_model!r} is not in source {self.source.uri!r} ({exc})") from None  # fmt: skip
            result = self.puller.pull(self.source, base_ref)
            if not result.ok:
                reason = f"base model {ref.base_model!r}: pull {result.status}: {result.error}"
                if result.status == "refused":
                    raise CheckpointError(ref.repo_id, reason)
                raise HubError(f"{ref.repo_id}: {reason}")  # the hub's fault: retried next run
            key = "|".join(base_ref.key)
            self._bases[ref.base_model] = (key, str(result.path))
        return self._bases[ref.base_model]
