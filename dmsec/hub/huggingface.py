"""Hugging Face Hub as a source, through `huggingface_hub.HfApi` and `snapshot_download`.

URI: `hf://[author][?search=TEXT&tag=TAG...]`. Listing asks `/api/models` for repos tagged
`text-to-image` (or the URI's `tag`s instead; a single wanted base model is sent as the Hub's
`base_model:<id>` tag), newest first, so a `since` filter stops paging at the first older repo.
`text-to-image` rather than `diffusers`: diffusers' training scripts tag their repos with both,
but kohya LoRAs are mostly uploaded as `lora`, `stable-diffusion`, `text-to-image` only. Each
repo is classified from the listing alone, with its commit sha: file names (the file names each
row of `dmsec.models.formats` is conventionally saved as: LoRA weights -> LoRA,
`model_index.json` / `unet/config.json` -> full) and tags (`lora` / `base_model:adapter:` ->
LoRA, `dreambooth` / `base_model:finetune:` -> full). `details` then makes the one per-repo call,
`model_info(files_metadata=True, securityStatus=True)`, for sizes, LFS sha256s and the Hub's own
security scan of the repo (kept on the ref, reported as `security` rows); a scan makes it only for
the repos its ledger does not hold at that revision. The ref's `family` is read from the card's
`base_model` (or `base_model:` tag): an SD 1.x, SD 2.x, SDXL, SD 3 or FLUX.1 repo id maps to sd1,
sd2, sdxl, sd3, flux (`dmsec.models.family`). The card's `instance_prompt` and `widget` prompts go to the ref's `extra` for prompt
discovery.

Rate limits: `list_models` pages go through huggingface_hub's own backoff, which honours 429 +
Retry-After; `model_info` and `snapshot_download` are wrapped in `call_with_retry`, which
honours Retry-After too and backs off on 5xx. The token comes from `HF_TOKEN` (or
huggingface_hub's stored login) and is only ever handed to huggingface_hub, never logged.

Known limit: `snapshot_download` streams each file to disk whole and checks it against the size
in the Hub's headers only at the end; the per-file cap is enforced on the declared sizes before
the download and on the actual sizes right after, not mid-stream as for the other sources.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from dmsec.errors import ConfigError, UnsafeCheckpointError
from dmsec.hub.ref import CheckpointFile, CheckpointRef, Kind
from dmsec.hub.retry import RETRY_STATUSES, RetryPolicy, call_with_retry, parse_retry_after
from dmsec.hub.security import HUB_SECURITY_KEY
from dmsec.hub.source import HubError, HubSource, ListFilter, RefNotFoundError, register_source
from dmsec.models.family import family_from_hub
from dmsec.models.formats import ref_kind_of_files
from dmsec.models.prompts import card_extra

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
_BASE_TAG = re.compile(r"^base_model:(?:(adapter|finetune|merge|quantized):)?(.+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: the listing's hub-side filter when the URI names no `tag` (see the module docstring)
DEFAULT_TAGS = ("text-to-image",)


def _http_errors() -> tuple[type[BaseException], ...]:
    """huggingface_hub's transport-level exceptions (httpx2 in 2.x, httpx in 1.x): whichever of
    the two is installed (both may be, whatever huggingface_hub uses)."""
    import importlib

    errors: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _listing_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError

    return (HfHubHTTPError, *_http_errors())


def hf_retry_classify(exc: BaseException) -> tuple[bool, float | None]:
    """(retryable?, Retry-After seconds) for an exception out of huggingface_hub."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(exc, HfHubHTTPError) and getattr(exc, "response", None) is not None:
        status = exc.response.status_code
        return status in RETRY_STATUSES, parse_retry_after(exc.response.headers)
    # snapshot_download reports a HEAD that failed on 5xx / network as "not in the local cache".
    if isinstance(exc, (LocalEntryNotFoundError, *_http_errors())):
        return True, None
    return False, None


def classify_repo(tags: Sequence[str], filenames: Sequence[str]) -> Kind | None:
    """LoRA, full fine-tune, or None (not a diffusion checkpoint we can scan)."""
    lowered = [t.lower() for t in tags]
    by_files = ref_kind_of_files(filenames)  # the formats table's conventional file names
    if by_files is not None:
        return by_files
    if "lora" in lowered or any(t.startswith("base_model:adapter:") for t in lowered):
        return "lora"
    if "dreambooth" in lowered or any(t.startswith("base_model:finetune:") for t in lowered):
        return "full"
    return None


def base_model_of(tags: Sequence[str], card_data: Any) -> str | None:
    """The base model a repo declares: model card `base_model`, else a `base_model:` tag."""
    declared = card_data.get("base_model") if card_data is not None else None
    if isinstance(declared, list):
        declared = declared[0] if declared else None
    if isinstance(declared, str) and declared.strip():
        return declared.strip()
    for tag in tags:
        match = _BASE_TAG.match(tag)
        if match:
            return match.group(2)
    return None


def _license_of(tags: Sequence[str], card_data: Any) -> str | None:
    declared = card_data.get("license") if card_data is not None else None
    if isinstance(declared, str) and declared:
        return declared
    return next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)


@register_source
class HuggingFaceSource(HubSource):
    """Diffusers LoRA / DreamBooth / full fine-tune repos on a Hugging Face Hub endpoint."""

    name = "hf"
    schemes = ("hf",)

    def __init__(
        self,
        endpoint: str | None = None,
        author: str | None = None,
        search: str | None = None,
        tags: Sequence[str] = DEFAULT_TAGS,
        retry: RetryPolicy | None = None,
        token: str | None = None,
    ) -> None:
        from huggingface_hub import HfApi

        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        if urlsplit(self.endpoint).scheme not in ("http", "https"):
            raise ConfigError(f"`endpoint` must be an http(s) URL; got {self.endpoint!r}")
        if author is not None and (not author or "/" in author):
            raise ConfigError(f"`author` must be a user or organisation name; got {author!r}")
        self.author, self.search, self.tags = author, search or None, tuple(tags)
        self.retry = retry or RetryPolicy()
        self._token = token or os.environ.get("HF_TOKEN") or None
        self.api = HfApi(endpoint=self.endpoint, token=self._token)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> HuggingFaceSource:
        """`hf://[author][?search=...&tag=...]`; options: endpoint, retry, token."""
        parts = urlsplit(uri)
        if parts.scheme != "hf" or parts.path not in ("", "/"):
            raise ConfigError(f"`uri` must look like hf://[author][?search=..&tag=..] (one repo is a target: `dmsec scan hf://org/repo`); got {uri!r}")  # fmt: skip
        query = parse_qs(parts.query)
        unknown = set(query) - {"search", "tag"}
        if unknown:
            raise ConfigError(f"`uri` {uri!r}: unknown query keys {sorted(unknown)}")
        tags = tuple(query.get("tag", [])) or DEFAULT_TAGS
        search = query.get("search", [None])[0]
        return cls(author=parts.netloc or None, search=search, tags=tags, **options)

    @property
    def uri(self) -> str:
        query = [("search", self.search)] if self.search else []
        query += [("tag", t) for t in self.tags] if self.tags != DEFAULT_TAGS else []
        return f"hf://{self.author or ''}" + (f"?{urlencode(query)}" if query else "")

    def _retry(self, fn: Any, what: str) -> Any:
        return call_with_retry(fn, policy=self.retry, what=what, classify=hf_retry_classify)

    # -- listing ---------------------------------------------------------------------------
    def iter_refs(self, flt: ListFilter) -> Iterator[CheckpointRef]:

        hub_filter = list(self.tags)
        if flt.base_models is not None and len(flt.base_models) == 1:
            hub_filter.append(f"base_model:{next(iter(flt.base_models))}")
        models = self.api.list_models(
            filter=hub_filter or None,
            author=self.author,
            search=self.search,
            sort="last_modified",
            expand=["sha", "lastModified", "tags", "cardData", "siblings"],
        )
        try:
            for info in models:
                stamp = info.last_modified
                if flt.since is not None and stamp is not None and stamp < flt.since:
                    return  # newest first: everything after is older still
                ref = self._listed_ref(info)
                if ref is not None and ref.kind in flt.kinds:
                    yield ref
        except _listing_errors() as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            raise HubError(f"hf: listing models failed: {status or type(exc).__name__}") from None

    def _listed_ref(self, info: Any) -> CheckpointRef | None:
        """A ref from one `list_models` entry (commit sha, tags, card, file names; no sizes or
        hashes yet): None when it is no diffusion checkpoint or the entry is malformed."""
        names = [s.rfilename for s in info.siblings or []]
        kind = classify_repo([str(t) for t in info.tags or []], names)
        if kind is None or not isinstance(info.sha, str) or not _COMMIT.match(info.sha):
            return None
        try:
            return self._ref(info, kind, [CheckpointFile(path=n) for n in _safe(info.id, names)])
        except ValueError as exc:
            logger.warning("hf: %s skipped: %s", info.id, exc)
            return None

    def details(self, ref: CheckpointRef) -> CheckpointRef | None:
        """The listed revision's file sizes, LFS sha256s and the Hub's security scan: one
        `model_info` call."""
        return self._info_ref(ref.repo_id, ref.revision, ref.kind)

    def _info_ref(
        self, repo_id: str, revision: str | None, kind: Kind | None
    ) -> CheckpointRef | None:
        from huggingface_hub.errors import HfHubHTTPError

        try:
            info = self._retry(
                lambda: self.api.model_info(
                    repo_id, revision=revision, files_metadata=True, securityStatus=True
                ),
                f"hf model_info {repo_id}",
            )
        except HfHubHTTPError as exc:  # 401/403/404: gated, private or gone; not our problem
            logger.warning("hf: %s skipped: HTTP %s", repo_id, exc.response.status_code)
            return None
        siblings = {s.rfilename: s for s in info.siblings or []}
        kind = kind or classify_repo([str(t) for t in info.tags or []], list(siblings))
        if kind is None or not isinstance(info.sha, str) or not _COMMIT.match(info.sha):
            logger.warning("hf: %s skipped: not a diffusion checkpoint or no commit sha", repo_id)
            return None
        files = [
            CheckpointFile(
                path=name,
                size=siblings[name].size,
                sha256=siblings[name].lfs.sha256 if siblings[name].lfs else None,
                git_sha1=None if siblings[name].lfs else siblings[name].blob_id,
            )
            for name in _safe(repo_id, list(siblings))
        ]
        extra = {**_card_extra(info.card_data), **_security_extra(info)}
        return self._ref(info, kind, files, extra)

    def _ref(
        self,
        info: Any,
        kind: Kind,
        files: list[CheckpointFile],
        extra: dict[str, str] | None = None,
    ) -> CheckpointRef:
        """The ref of one Hub entry (`list_models` or `model_info`) with `files`."""
        tags = [str(t) for t in info.tags or []]
        base_model = base_model_of(tags, info.card_data)
        return CheckpointRef(
            source=self.name,
            repo_id=info.id,
            revision=info.sha,
            kind=kind,
            base_model=base_model,
            family=family_from_hub(base_model),
            files=tuple(files),
            tags=tuple(tags),
            license=_license_of(tags, info.card_data),
            last_modified=info.last_modified,
            url=f"{self.endpoint}/{info.id}",
            extra=extra or {},
        )

    def get(self, repo_id: str, revision: str | None = None) -> CheckpointRef:
        ref = self._info_ref(repo_id, revision, None)
        if ref is None:
            raise RefNotFoundError(f"hf: no scannable checkpoint {repo_id!r}@{revision or 'main'}")
        return ref

    # -- download --------------------------------------------------------------------------
    def fetch(
        self, ref: CheckpointRef, files: Sequence[CheckpointFile], dest: Path, max_file_bytes: int
    ) -> None:
        from huggingface_hub import snapshot_download

        with tempfile.TemporaryDirectory(prefix="hf-", dir=dest.parent) as hf_cache:
            snapshot = self._retry(
                lambda: snapshot_download(
                    ref.repo_id,
                    revision=ref.revision,
                    cache_dir=hf_cache,
                    allow_patterns=[glob.escape(f.path) for f in files],
                    endpoint=self.endpoint,
                    token=self._token,
                    max_workers=2,
                ),
                f"hf download {ref.repo_id}",
            )
            moved: dict[Path, Path] = {}
            for f in files:
                blob = (Path(snapshot) / f.path).resolve()
                target = dest / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                if blob in moved:  # two paths with the same content share one HF blob
                    shutil.copyfile(moved[blob], target)
                    continue
                if not blob.is_file():
                    raise HubError(f"hf: {ref.repo_id}: {f.path} missing from the download")
                if blob.stat().st_size > max_file_bytes:
                    raise UnsafeCheckpointError(
                        f.path, f"download is over the per-file cap of {max_file_bytes:,} bytes"
                    )
                shutil.move(blob, target)
                moved[blob] = target


def _safe(repo_id: str, names: Sequence[str]) -> Iterator[str]:
    """The file names that are safe relative paths; an unsafe one is skipped, logged."""
    for name in names:
        try:
            CheckpointFile(path=name)
        except ValueError as exc:
            logger.warning("hf: %s: file skipped: %s", repo_id, exc)
        else:
            yield name


def _card_extra(card_data: Any) -> dict[str, str]:
    """The card's `instance_prompt` and `widget` prompts (`cardData`, as diffusers' training
    scripts write them) as the ref's `extra`, for prompt discovery (`dmsec.models.prompts`)."""
    if card_data is not None and hasattr(card_data, "to_dict"):
        card_data = card_data.to_dict()
    return card_extra(card_data if isinstance(card_data, dict) else None)


def _security_extra(info: Any) -> dict[str, str]:
    """The Hub's own scan of the repo (`securityRepoStatus`) as `extra["hub_security"]` (JSON),
    recorded in the `security` results (`dmsec.hub.security`); nothing when the Hub sent none."""
    status = getattr(info, "security_repo_status", None)
    if not status:
        return {}
    return {HUB_SECURITY_KEY: json.dumps(status, sort_keys=True, default=str)}
