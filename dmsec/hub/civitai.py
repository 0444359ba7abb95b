"""Civitai as a source, through its public REST API (`/api/v1/models`) and `requests`.

URI: `civitai://[?query=TEXT&username=NAME&tag=TAG&sort=Newest&nsfw=true|false]`. Each model
*version* is one checkpoint: `repo_id` is the model id, `revision` the version id. Types `LORA`, `LoCon` and
`DoRA` are LoRAs, `Checkpoint` is a full model; wanted kinds and base models (Civitai's names,
e.g. "SD 1.5", "SDXL 1.0") are sent as `types` / `baseModels`. Pages are followed through
`metadata.nextPage` (only when it stays on the configured endpoint) or `metadata.nextCursor`.
`nsfw` is sent as asked (unset: Civitai's default, which hides NSFW models). With a `since`
filter and the "Newest" sort, paging stops after the first page none of whose versions is that
recent (the pages are newest first).

Each ref's `family` is read from the version's `baseModel` ("SD 1.5" -> sd1, "SDXL 1.0" and
"Pony" -> sdxl, "Flux.1 D" -> flux; `dmsec.models.family.family_from_hub`). The version's
`trainedWords` go to the ref's `extra` for prompt discovery (`dmsec.models.prompts`).

Civitai gives sizes in KB (rounded, so not checked for equality) and a SHA256 per file, which the
pull verifies. The API key comes from `CIVITAI_API_KEY` and travels only in an `Authorization`
header to the configured endpoint: never in a URL (URLs get logged), never to another host
(requests drops the header on cross-host redirects to the storage CDN, and download URLs the API
points elsewhere get no header at all). Civitai often rate-limits without Retry-After, so
retries fall back to exponential backoff (`RetryPolicy`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from dmsec.errors import ConfigError, UnsafeCheckpointError
from dmsec.hub.ref import CheckpointFile, CheckpointRef, Kind, parse_timestamp
from dmsec.hub.retry import RetryPolicy, request_with_retry
from dmsec.hub.source import HubError, HubSource, ListFilter, RefNotFoundError, register_source
from dmsec.hub.transfer import CHUNK_BYTES, stream_to_file
from dmsec.models.family import family_from_hub
from dmsec.models.prompts import trained_words_extra

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://civitai.com"
ENDPOINT_ENV = "DMSEC_CIVITAI_ENDPOINT"
API_KEY_ENV = "CIVITAI_API_KEY"
TYPE_KINDS: dict[str, Kind] = {
    "LORA": "lora",
    "LoCon": "lora",
    "DoRA": "lora",
    "Checkpoint": "full",
}
MODEL_FILE_TYPES = ("Model", "Pruned Model")
SORTS = ("Newest", "Most Downloaded", "Highest Rated", "Most Liked")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


@register_source
class CivitaiSource(HubSource):
    """LoRA and checkpoint model versions on Civitai (see the module docstring)."""

    name = "civitai"
    schemes = ("civitai",)

    def __init__(
        self,
        endpoint: str | None = None,
        query: str | None = None,
        username: str | None = None,
        tag: str | None = None,
        sort: str = "Newest",
        page_size: int = 100,
        nsfw: bool | None = None,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.endpoint = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
        if urlsplit(self.endpoint).scheme not in ("http", "https"):
            raise ConfigError(f"`endpoint` must be an http(s) URL; got {self.endpoint!r}")
        if sort not in SORTS:
            raise ConfigError(f"`sort` must be one of {SORTS}; got {sort!r}")
        if not 1 <= page_size <= 100:
            raise ConfigError(f"`page_size` must be in [1, 100]; got {page_size}")
        self.query, self.username, self.tag, self.sort = query, username, tag, sort
        self.page_size, self.timeout_s, self.nsfw = page_size, timeout_s, nsfw
        self.retry = retry or RetryPolicy()
        self._api_key = api_key or os.environ.get(API_KEY_ENV) or None
        self.session = requests.Session()

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> CivitaiSource:
        """`civitai://[?query=..&username=..&tag=..&sort=..]`; options: endpoint, retry, api_key."""
        parts = urlsplit(uri)
        if parts.scheme != "civitai" or parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(f"`uri` must look like civitai://[?query=..]; got {uri!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"query", "username", "tag", "sort", "nsfw"}
        if unknown:
            raise ConfigError(f"`uri` {uri!r}: unknown query keys {sorted(unknown)}")
        nsfw = query.get("nsfw")
        if nsfw is not None and nsfw not in ("true", "false"):
            raise ConfigError(f"`uri` {uri!r}: `nsfw` must be true or false; got {nsfw!r}")
        return cls(
            nsfw=None if nsfw is None else nsfw == "true",
            query=query.get("query"),
            username=query.get("username"),
            tag=query.get("tag"),
            sort=query.get("sort", "Newest"),
            **options,
        )

    @property
    def uri(self) -> str:
        query = {"query": self.query, "username": self.username, "tag": self.tag}
        kept = {k: v for k, v in query.items() if v}
        if self.sort != "Newest":
            kept["sort"] = self.sort
        if self.nsfw is not None:
            kept["nsfw"] = str(self.nsfw).lower()
        return "civitai://" + (f"?{urlencode(kept)}" if kept else "")

    def _headers(self, url: str) -> dict[str, str]:
        if self._api_key and _origin(url) == _origin(self.endpoint):
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    def _get_json(self, url: str, params: list[tuple[str, Any]] | None, what: str) -> Any:
        response = request_with_retry(
            self.session,
            "GET",
            url,
            policy=self.retry,
            what=what,
            params=params,
            headers=self._headers(url),
            timeout=self.timeout_s,
        )
        with response:
            if response.status_code == 404:
                raise RefNotFoundError(f"{what}: not found")
            if response.status_code != 200:
                hint = f" (set {API_KEY_ENV}?)" if response.status_code in (401, 403) else ""
                raise HubError(f"{what}: HTTP {response.status_code}{hint}")
            try:
                return response.json()
            except ValueError:
                raise HubError(f"{what}: response is not JSON") from None

    # -- listing ---------------------------------------------------------------------------
    def iter_refs(self, flt: ListFilter) -> Iterator[CheckpointRef]:
        types = sorted(t for t, kind in TYPE_KINDS.items() if kind in flt.kinds)
        if not types:
            return
        params: list[tuple[str, Any]] = [("types", t) for t in types]
        params += [("baseModels", b) for b in sorted(flt.base_models or ())]
        params += [("limit", self.page_size), ("sort", self.sort)]
        params += [(k, v) for k, v in (("query", self.query), ("username", self.username)) if v]
        params += [("tag", self.tag)] if self.tag else []
        # Civitai hides NSFW models unless asked; a leak scan usually wants them too.
        params += [("nsfw", str(self.nsfw).lower())] if self.nsfw is not None else []
        url: str = f"{self.endpoint}/api/v1/models"
        page_params: list[tuple[str, Any]] | None = params
        seen_cursors: set[str] = set()
        while True:
            data = self._get_json(url, page_params, "civitai list models")
            if not isinstance(data, dict):
                raise HubError("civitai list models: the page is not a JSON object")
            recent = False
            for item in data.get("items") or []:
                for ref in self._refs_of(item):
                    recent = recent or flt.modified_matches(ref.last_modified)
                    yield ref
            if flt.since is not None and self.sort == "Newest" and not recent:
                return  # newest first: the pages after this one are older still
            meta = data.get("metadata") or {}
            cursor, next_page = meta.get("nextCursor"), meta.get("nextPage")
            if cursor is None and not next_page:
                return
            if str(cursor or next_page) in seen_cursors:
                logger.warning("civitai: pagination repeated a cursor; stopping")
                return
            seen_cursors.add(str(cursor or next_page))
            if next_page and _origin(next_page) == _origin(self.endpoint):
                url, page_params = next_page, None
            elif cursor is not None:
                url = f"{self.endpoint}/api/v1/models"
                page_params = [*params, ("cursor", cursor)]
            else:
                logger.warning("civitai: nextPage points off the endpoint; stopping")
                return

    def _refs_of(self, item: dict) -> Iterator[CheckpointRef]:
        if not isinstance(item, dict):
            return
        kind = TYPE_KINDS.get(str(item.get("type")))
        if kind is None or "id" not in item:
            return
        for version in item.get("modelVersions") or []:
            try:
                yield self._version_ref(item, version, kind)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                logger.warning("civitai: model %s version skipped: %s", item.get("id"), exc)

    def _version_ref(self, item: dict, version: dict, kind: Kind) -> CheckpointRef:
        files: list[CheckpointFile] = []
        for f in version.get("files") or []:
            if f.get("type", "Model") not in MODEL_FILE_TYPES:
                continue
            name = str(f["name"])
            if "/" in name or name in {x.path for x in files}:
                logger.warning("civitai: %s: file name %r skipped", item["id"], name)
                continue
            files.append(
                CheckpointFile(
                    path=name,
                    size=round(float(f["sizeKB"]) * 1024) if f.get("sizeKB") is not None else None,
                    sha256=(f.get("hashes") or {}).get("SHA256"),
                    size_exact=False,
                    url=str(f["downloadUrl"]),
                )
            )
        stamp = version.get("updatedAt") or version.get("publishedAt") or version.get("createdAt")
        extra = {
            "name": str(item.get("name", "")),
            "version_name": str(version.get("name", "")),
            "allow_commercial_use": ",".join(map(str, item.get("allowCommercialUse") or [])),
            "allow_derivatives": str(item.get("allowDerivatives", "")),
            "creator": str((item.get("creator") or {}).get("username", "")),  # the uploader
            **trained_words_extra(version.get("trainedWords")),
        }
        base_model = version.get("baseModel") or None
        return CheckpointRef(
            source=self.name,
            repo_id=str(item["id"]),
            revision=str(version["id"]),
            kind=kind,
            base_model=base_model,
            family=family_from_hub(base_model),
            files=tuple(files),
            tags=tuple(str(t) for t in item.get("tags") or []),
            license=None,  # Civitai has permission flags, not a licence: see `extra`
            last_modified=parse_timestamp(stamp) if stamp else None,
            url=f"{self.endpoint}/models/{item['id']}?modelVersionId={version['id']}",
            extra=extra,
        )

    def get(self, repo_id: str, revision: str | None = None) -> CheckpointRef:
        if not repo_id.isdigit():
            raise RefNotFoundError(f"civitai: model ids are numbers; got {repo_id!r}")
        item = self._get_json(f"{self.endpoint}/api/v1/models/{repo_id}", None, "civitai model")
        kind = TYPE_KINDS.get(str(item.get("type")))
        versions = item.get("modelVersions") or []
        for version in versions:
            if kind is not None and revision in (None, str(version.get("id"))):
                return self._version_ref(item, version, kind)
        raise RefNotFoundError(f"civitai: no checkpoint version {repo_id}@{revision or 'latest'}")

    # -- download --------------------------------------------------------------------------
    def fetch(
        self, ref: CheckpointRef, files: Sequence[CheckpointFile], dest: Path, max_file_bytes: int
    ) -> None:
        for f in files:
            if not f.url or urlsplit(f.url).scheme not in ("http", "https"):
                raise HubError(
                    f"civitai: {ref.repo_id}@{ref.revision}: {f.path} has no download URL"
                )
            response = request_with_retry(
                self.session,
                "GET",
                f.url,
                policy=self.retry,
                what=f"civitai download {ref.repo_id}@{ref.revision} {f.path}",
                headers=self._headers(f.url),
                stream=True,
                timeout=self.timeout_s,
            )
            with response:
                if response.status_code != 200:
                    raise HubError(
                        f"civitai: download of {f.path} answered HTTP {response.status_code}"
                    )
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_file_bytes:
                    raise UnsafeCheckpointError(
                        f.path,
                        f"server announces {int(declared):,} bytes, over the per-file cap of "
                        f"{max_file_bytes:,}",
                    )
                chunks = response.iter_content(CHUNK_BYTES)
                stream_to_file(chunks, dest / f.path, max_file_bytes, f.path)
