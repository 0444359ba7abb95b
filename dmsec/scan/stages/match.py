"""The match stage: search a checkpoint's generations in the protected-artwork registry.

Every generation (or, with `members` off, each group's representative) is searched by range in
the registry with one embedder; a hit is attributed to the group holding that generation. One
`Match` per (group, artwork) is kept: its closest generation (`closer`) is the "recovered image",
and `support` counts how many generations of the group hit that artwork. `Candidate`s kept: the
`top_k` largest groups plus every group with a match. For the report and for the verifier, each
matched artwork's image is read from its `source_uri` (decoded as untrusted, under the registry's
limits) and staged as a PNG of at most `ARTWORK_MAX_SIDE` pixels a side; an artwork whose source
cannot be read keeps its match, without the image.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from dmsec.extract import generation_seed
from dmsec.images import decode_untrusted_images, rgb_to_uint8
from dmsec.match import ProtectedArtworkIndex, create_embedder
from dmsec.match.registry_records import Hit
from dmsec.scan.config import MatchSettings
from dmsec.scan.hits import Candidate, Group, Match, closer
from dmsec.scan.records import ScanItem
from dmsec.scan.stages.base import Stage
from dmsec.scan.stages.extract import sample_name

logger = logging.getLogger(__name__)
ARTWORK_MAX_SIDE = 512


def short_id(*parts: object) -> str:
    """A 16-hex-digit id from parts (stable across reruns of the same scan config)."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


class MatchStage(Stage):
    """Registry search over each checkpoint's generations; see the module docstring."""

    name: ClassVar[str] = "match"

    def __init__(
        self,
        registry_location: str,
        embedder: str = "zoo",
        threshold: float | None = None,
        settings: MatchSettings | None = None,
    ) -> None:
        self.registry = ProtectedArtworkIndex.open(registry_location)
        self.embedder = self.registry.embedder(embedder)
        self.threshold = self.embedder.validate_threshold(threshold)
        self.settings = settings or MatchSettings()
        self.artworks = {row["id"]: row for row in self.registry.artworks().to_pylist()}
        self._pdq = _pdq_embedder()

    def process(self, item: ScanItem) -> None:
        folder = Path(item.staging_dir or "")
        group_of = {m: g.rank for g in item.groups for m in g.members}
        queries = sorted(group_of) if self.settings.members else [g.representative for g in item.groups]  # fmt: skip
        paths = [str(folder / sample_name(i)) for i in queries]
        hits = self.registry.search(paths, embedder=self.embedder.name, threshold=self.threshold)
        best = self._best_per_group(hits, queries, group_of)
        matched_ranks = {rank for rank, _ in best}
        top = {g.rank for g in item.groups if g.rank < self.settings.top_k}
        by_rank = {g.rank: g for g in item.groups}
        item.candidates = [self._candidate(item, by_rank[r], folder) for r in sorted(top | matched_ranks)]  # fmt: skip
        ids = {c.rank: c.candidate_id for c in item.candidates}
        sign = 1.0 if self.embedder.metric == "hamming" else -1.0  # closest first (`closer`)
        ordered = sorted(best.items(), key=lambda kv: (sign * kv[1][0].score, kv[0]))
        item.matches = [
            self._match(item, ids[rank], rank, artwork_id, hit, sample, support, folder)
            for (rank, artwork_id), (hit, sample, support) in ordered[: self.settings.max_matches_per_checkpoint]
        ]  # fmt: skip

    def _best_per_group(
        self, hits: list[Hit], queries: list[int], group_of: dict[int, int]
    ) -> dict[tuple[int, int], tuple[Hit, int, int]]:
        """(group rank, artwork id) -> (closest hit, its sample index, generations that hit)."""
        best: dict[tuple[int, int], tuple[Hit, int, int]] = {}
        for hit in hits:
            sample = queries[hit.query_index]
            key = (group_of[sample], hit.artwork_id)
            if key not in best:
                best[key] = (hit, sample, 1)
                continue
            old, old_sample, support = best[key]
            if closer(hit.metric, hit.score, old.score):
                best[key] = (hit, sample, support + 1)
            else:
                best[key] = (old, old_sample, support + 1)
        return best

    def _candidate(self, item: ScanItem, group: Group, folder: Path) -> Candidate:
        path = folder / sample_name(group.representative)
        return Candidate(
            candidate_id=short_id(*item.key, item.config_hash, group.rank), rank=group.rank,
            group_size=group.size, score=group.score, sample_index=group.representative,
            seed=group.seed, image_path=str(path),
            image_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), pdq=self._pdq_hex(path),
        )  # fmt: skip

    def _match(self, item: ScanItem, candidate_id: str, rank: int, artwork_id: int, hit: Hit,
               sample: int, support: int, folder: Path) -> Match:  # fmt: skip
        art = self.artworks.get(artwork_id, {})
        assert item.extract_seed is not None  # set by the extract stage
        return Match(
            match_id=short_id(candidate_id, artwork_id), candidate_id=candidate_id,
            candidate_rank=rank, artwork_id=int(artwork_id), artwork_owner=art.get("owner"),
            artwork_title=art.get("title"), artwork_source_uri=art.get("source_uri"),
            artwork_sha256=art.get("sha256"),
            artwork_path=self._stage_artwork(artwork_id, art.get("source_uri"), folder),
            sample_index=sample, seed=int(generation_seed(item.extract_seed, sample)),
            recovered_path=str(folder / sample_name(sample)), similarity=float(hit.score),
            method=hit.embedder, metric=hit.metric, threshold=float(self.threshold),
            support=support,
        )  # fmt: skip

    def _stage_artwork(self, artwork_id: int, uri: str | None, folder: Path) -> str | None:
        """The artwork's image as a PNG in `folder`, or None when its source is unreadable."""
        target = folder / f"artwork_{artwork_id}.png"
        if target.exists():
            return str(target)
        if not uri or "://" in uri and not uri.startswith("file://"):
            return None
        decoded, errors = decode_untrusted_images([uri.removeprefix("file://")], self.registry.limits)  # fmt: skip
        if errors or not decoded:
            logger.warning("artwork %s: source %s unreadable: %s", artwork_id, uri, errors[:1])
            return None
        image = Image.fromarray(rgb_to_uint8(decoded[0].pixels))
        image.thumbnail((ARTWORK_MAX_SIDE, ARTWORK_MAX_SIDE))
        image.save(target, format="PNG")
        return str(target)

    def _pdq_hex(self, path: Path) -> str | None:
        if self._pdq is None:
            return None
        decoded, _ = decode_untrusted_images([str(path)])
        return bytes(self._pdq.embed([decoded[0].pixels])[0]).hex() if decoded else None


def _pdq_embedder() -> Any:
    """The PDQ embedder, or None where pdqhash is not installed (hashes are then null)."""
    try:
        return create_embedder("pdq")
    except Exception:  # an optional hash; its absence must not stop matching
        return None
