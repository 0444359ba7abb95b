"""Pull a listed checkpoint into the cache, safely; a bad checkpoint is a result, never a raise.

Steps for one ref (the same for every source):
1. the policy picks the files (safetensors + configs; pickles only by opt-in) and checks the
   declared sizes against the caps: a refusal here downloads nothing;
2. a complete snapshot of the same revision already in the cache is returned as is;
3. files whose sha256 is declared and already cached are reused; the rest are fetched into a
   staging folder (the transfer stops at the per-file cap);
4. each file is verified: actual size against the caps and the declared size, sha256 / git blob
   id against the hub's, and its format (safetensors header checked against the file size;
   pickles scanned and loaded with weights_only=True; JSON parsed). Each pickle's scan is a
   `SecurityVerdict` on the result (`dmsec.hub.security`): "safe", or "unsafe" naming the globals
   it imports outside the allow-list, which refuses the checkpoint;
5. verified files move into the blob store and the snapshot folder appears atomically.
`PullResult.status` is "ok", "refused" (the checkpoint is bad or over a cap: do not retry at
this revision) or "failed" (the hub or network failed: retry later).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from dmsec.errors import CheckpointError
from dmsec.hub.cache import CheckpointCache
from dmsec.hub.pull_policy import CONFIG_SUFFIXES, WEIGHT_SUFFIX, PullPolicy
from dmsec.hub.ref import CheckpointFile, CheckpointRef
from dmsec.hub.security import SecurityVerdict, UnsafePickleError, judge_pickle
from dmsec.hub.source import HubSource, source_from_uri
from dmsec.hub.transfer import file_digests
from dmsec.models.safe_load import (
    PICKLE_SUFFIXES,
    load_state_dict,
    read_safetensors_header,
)

logger = logging.getLogger(__name__)

PullStatus = Literal["ok", "refused", "failed"]


@dataclass(frozen=True)
class PulledFile:
    """A verified file of a pulled checkpoint."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PullResult:
    """Outcome of pulling one ref: a local folder (`status="ok"`) or an error reason."""

    ref: CheckpointRef
    status: PullStatus
    path: Path | None = None
    error: str | None = None
    files: tuple[PulledFile, ...] = ()
    skipped: tuple[str, ...] = ()
    from_cache: bool = False
    security: tuple[SecurityVerdict, ...] = ()  # the scans of its pickle files (this download)

    def __post_init__(self) -> None:
        if (self.status == "ok") != (self.path is not None and self.error is None):
            raise ValueError(
                f"`status` {self.status!r} needs {'a path' if self.status == 'ok' else 'an error'}"
            )

    @property
    def ok(self) -> bool:
        """True when the checkpoint is in the cache, verified."""
        return self.status == "ok"

    def file_path(self, rel: str) -> Path:
        """Absolute path of one pulled file (by its path within the checkpoint)."""
        if self.path is None or rel not in {f.path for f in self.files}:
            raise KeyError(f"{rel!r} is not a pulled file of {self.ref.repo_id}")
        return self.path / rel


class Puller:
    """Pulls refs from sources into one cache under one policy."""

    def __init__(
        self, cache: CheckpointCache | str | Path | None = None, policy: PullPolicy | None = None
    ) -> None:
        self.cache = cache if isinstance(cache, CheckpointCache) else CheckpointCache(cache)
        self.policy = policy or PullPolicy()

    def pull(self, source: HubSource, ref: CheckpointRef) -> PullResult:
        """Pull `ref` from `source`; never raises for a bad checkpoint or a failing hub."""
        if ref.source != source.name:
            return PullResult(
                ref, "failed", error=f"ref is from {ref.source!r}, not {source.name!r}"
            )
        selection = self.policy.select(ref)
        if selection.refusal is not None:
            return PullResult(ref, "refused", error=selection.refusal, skipped=selection.skipped)
        cached = self._from_cache(ref, selection.files)
        if cached is not None:
            return PullResult(ref, "ok", cached[0], None, cached[1], selection.skipped, True)
        try:
            path, files, verdicts = self._download_and_verify(source, ref, selection.files)
        except UnsafePickleError as exc:  # a hostile pickle: refused, and reported as such
            return PullResult(ref, "refused", error=str(exc), skipped=selection.skipped,
                              security=(exc.verdict,))  # fmt: skip
        except CheckpointError as exc:
            return PullResult(ref, "refused", error=str(exc), skipped=selection.skipped)
        except Exception as exc:  # the hub's, the network's or the disk's fault: retry later
            logger.warning("pull %s/%s failed: %s", ref.source, ref.repo_id, _describe(exc))
            return PullResult(ref, "failed", error=_describe(exc), skipped=selection.skipped)
        return PullResult(ref, "ok", path, None, files, selection.skipped, security=verdicts)

    def pull_all(self, source: HubSource, refs: Iterable[CheckpointRef]) -> Iterator[PullResult]:
        """Pull each ref in turn (lazily); one bad checkpoint never stops the others."""
        for ref in refs:
            yield self.pull(source, ref)

    # -- steps -----------------------------------------------------------------------------
    def _from_cache(
        self, ref: CheckpointRef, files: tuple[CheckpointFile, ...]
    ) -> tuple[Path, tuple[PulledFile, ...]] | None:
        manifest = self.cache.read_manifest(ref)
        if manifest is None:
            return None
        try:
            have = {f["path"]: PulledFile(**f) for f in manifest.get("files", [])}
        except (TypeError, KeyError):  # a manifest we did not write: pull again
            return None
        for f in files:
            got = have.get(f.path)
            if got is None or (f.sha256 is not None and got.sha256 != f.sha256):
                return None
            if got.size > self.policy.cap_for(f):
                return None
        if sum(have[f.path].size for f in files) > self.policy.max_checkpoint_bytes:
            return None
        return self.cache.snapshot_dir(ref), tuple(have[f.path] for f in files)

    def _download_and_verify(
        self, source: HubSource, ref: CheckpointRef, files: tuple[CheckpointFile, ...]
    ) -> tuple[Path, tuple[PulledFile, ...], tuple[SecurityVerdict, ...]]:
        reuse = {f.path for f in files if f.sha256 and self.cache.has_blob(f.sha256)}
        fetch = [f for f in files if f.path not in reuse]
        with self.cache.staging() as stage:
            if fetch:
                source.fetch(ref, fetch, stage, self.policy.max_file_bytes)
            pulled: list[PulledFile] = []
            verdicts: list[SecurityVerdict] = []
            blobs: dict[str, Path] = {}
            total = 0
            for f in files:
                if f.path in reuse:
                    assert f.sha256 is not None
                    local = self.cache.blob_path(f.sha256)
                    size, sha256 = local.stat().st_size, f.sha256
                else:
                    local = stage / f.path
                    if not local.is_file():
                        raise CheckpointError(f.path, "the hub did not deliver this file")
                    size, sha256 = self._verify_transfer(f, local)
                total += size
                if total > self.policy.max_checkpoint_bytes:
                    raise CheckpointError(
                        f.path,
                        f"checkpoint passed the per-checkpoint cap of "
                        f"{self.policy.max_checkpoint_bytes:,} bytes",
                    )
                verdict = self._check_format(f, local)
                if verdict is not None:
                    verdicts.append(verdict)
                pulled.append(PulledFile(f.path, size, sha256))
                blobs[f.path] = local if f.path in reuse else self.cache.add_blob(local, sha256)
            manifest = self._manifest(ref, pulled)
            path = self.cache.commit(ref, blobs, manifest)
        return path, tuple(pulled), tuple(verdicts)

    def _verify_transfer(self, f: CheckpointFile, local: Path) -> tuple[int, str]:
        size, sha256, git_sha1 = file_digests(local)
        cap = self.policy.cap_for(f)
        if size > cap:
            raise CheckpointError(f.path, f"{size:,} bytes, over the per-file cap of {cap:,}")
        if f.size is not None and f.size_exact and size != f.size:
            raise CheckpointError(f.path, f"hub declared {f.size:,} bytes but {size:,} arrived")
        if f.sha256 is not None and sha256 != f.sha256:
            raise CheckpointError(f.path, f"sha256 mismatch: hub says {f.sha256}, got {sha256}")
        if f.git_sha1 is not None and git_sha1 != f.git_sha1:
            raise CheckpointError(f.path, f"git blob id mismatch: hub says {f.git_sha1}")
        return size, sha256

    def _check_format(self, f: CheckpointFile, local: Path) -> SecurityVerdict | None:
        """Check one file's format; a pickle's scan verdict (None for other files)."""
        cap = self.policy.cap_for(f)
        verdict = None
        try:
            if f.suffix == WEIGHT_SUFFIX:
                read_safetensors_header(local, cap)
            elif f.suffix in PICKLE_SUFFIXES:
                # Only reached with allow_pickle (the policy drops pickles otherwise):
                # allow-list scan first, then torch.load(weights_only=True) - never False.
                verdict = judge_pickle(f.path, local, cap)
                load_state_dict(local, allow_pickle=self.policy.allow_pickle, max_bytes=cap)
            elif f.suffix == ".json":
                json.loads(local.read_bytes())
            elif f.suffix not in CONFIG_SUFFIXES:
                raise CheckpointError(local, f"unexpected file type {f.suffix!r}")
        except UnsafePickleError:
            raise
        except CheckpointError as exc:
            raise CheckpointError(f.path, exc.problem) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f.path, f"not valid JSON ({exc})") from None
        return verdict

    def _manifest(self, ref: CheckpointRef, pulled: list[PulledFile]) -> dict[str, Any]:
        return {
            "ref": ref.to_dict(),
            "files": [{"path": p.path, "size": p.size, "sha256": p.sha256} for p in pulled],
            "policy": self.policy.digest(),
            "pulled_at": datetime.now(UTC).isoformat(),
        }


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def pull(
    source: HubSource,
    ref: CheckpointRef,
    *,
    cache: CheckpointCache | str | Path | None = None,
    policy: PullPolicy | None = None,
) -> PullResult:
    """Pull one ref (see `Puller`); returns a result, never raises for a bad checkpoint."""
    return Puller(cache, policy).pull(source, ref)


class PullCheckpoint:
    """A pull step for row-wise pipelines (`Dataset.map`): build once, then call per row.

    A row is `CheckpointRef.to_dict()`; the returned row adds `local_path` ("" when not ok),
    `pull_status` and `pull_error` ("" when ok).
    """

    def __init__(
        self,
        source_uri: str,
        cache_dir: str | Path | None = None,
        policy: PullPolicy | None = None,
        **source_options: Any,
    ) -> None:
        self.source = source_from_uri(source_uri, **source_options)
        self.puller = Puller(cache_dir, policy)

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        fields = CheckpointRef.__dataclass_fields__
        ref = CheckpointRef.from_dict({k: v for k, v in row.items() if k in fields})
        result = self.puller.pull(self.source, ref)
        return {
            **row,
            "local_path": str(result.path) if result.path else "",
            "pull_status": result.status,
            "pull_error": result.error or "",
        }
