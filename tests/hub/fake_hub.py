"""A local HTTP server that answers like the Hugging Face Hub and Civitai APIs, for tests.

The responses follow what the real services send and what huggingface_hub parses (read from
huggingface_hub's source): `/api/models` pages joined by `Link: <...>; rel="next"`, model info
with `siblings` (size, blobId, lfs.sha256) when `blobs=true`, the recursive tree endpoint,
`/resolve/` answering HEAD with `X-Repo-Commit` and `ETag`, and LFS files redirected (302) to a
"CDN" on a second port with `X-Linked-Etag` / `X-Linked-Size`. Civitai: `/api/v1/models` with
`types`, `baseModels`, cursor paging through `metadata.nextCursor` / `nextPage`, and
`/api/download/models/<version>` redirecting to the CDN.

Faults (a 429 with or without Retry-After, a 503) are queued per method and path prefix and
served before the real answer (after `skip` matching requests are answered normally: e.g. a
listing's second page); every request is recorded with its time and headers.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class HfRepo:
    """One model repo. `declared_sizes` overrides what the API says a file's size is, `served`
    what the download endpoints actually send (both: a lying or compromised hub)."""

    repo_id: str
    files: dict[str, bytes]
    tags: list[str]
    last_modified: str
    card_data: dict | None = None
    declared_sizes: dict[str, int] = field(default_factory=dict)
    served: dict[str, bytes] = field(default_factory=dict)
    security: dict | None = None  # the Hub's securityRepoStatus, served with ?securityStatus=True

    @property
    def sha(self) -> str:
        h = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            h.update(path.encode() + hashlib.sha256(self.files[path]).digest())
        return h.hexdigest()

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def size_of(self, path: str) -> int:
        return self.declared_sizes.get(path, len(self.files[path]))

    def sibling(self, path: str, blobs: bool) -> dict:
        entry: dict = {"rfilename": path}
        if blobs:
            data = self.files[path]
            entry.update(size=self.size_of(path), blobId=git_blob_sha1(data))
            if self.is_lfs(path):
                lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": self.size_of(path)}
                entry["lfs"] = {**lfs, "pointerSize": 134}
        return entry

    def info(self, blobs: bool) -> dict:
        return {
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.sha,
            "lastModified": self.last_modified,
            "private": False,
            "tags": self.tags,
            "library_name": "diffusers",
            "cardData": self.card_data,
            "siblings": [self.sibling(p, blobs) for p in sorted(self.files)],
        }


@dataclass
class CivitaiFile:
    name: str
    data: bytes
    format: str = "SafeTensor"
    declared_sha256: str | None = None


@dataclass
class CivitaiVersion:
    id: int
    base_model: str
    updated_at: str
    files: list[CivitaiFile]
    trained_words: list[str] = field(default_factory=list)  # the version's trigger words


@dataclass
class CivitaiModel:
    id: int
    name: str
    type: str
    tags: list[str]
    versions: list[CivitaiVersion]


@dataclass
class Fault:
    method: str
    path_prefix: str
    status: int
    headers: dict[str, str]
    times: int
    skip: int = 0


@dataclass
class Recorded:
    time: float
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased


class FakeHub:
    """Holds the fake hub's content; `start()` serves it on 127.0.0.1 (API port + CDN port)."""

    def __init__(self, page_size: int = 2, civitai_api_key: str | None = None) -> None:
        self.hf_repos: list[HfRepo] = []
        self.civitai_models: list[CivitaiModel] = []
        self.page_size = page_size
        self.civitai_api_key = civitai_api_key
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self.url = ""
        self.cdn_url = ""

    # -- setup -----------------------------------------------------------------------------
    def add_fault(
        self,
        method: str,
        path_prefix: str,
        status: int,
        headers: dict | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        self.faults.append(Fault(method, path_prefix, status, headers or {}, times, skip))

    def requests_to(self, method: str, path_prefix: str) -> list[Recorded]:
        with self._lock:
            return [
                r for r in self.requests if r.method == method and r.path.startswith(path_prefix)
            ]

    def start(self) -> FakeHub:
        for _ in range(2):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
            server.daemon_threads = True
            serve = lambda srv=server: srv.serve_forever(poll_interval=0.05)  # noqa: E731
            threading.Thread(target=serve, daemon=True).start()
            self._servers.append(server)
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method == method
                    and path.startswith(fault.path_prefix)
                ):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def cdn_link(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return f"{self.cdn_url}/cdn/{digest}"


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, value: object, headers: dict | None = None, status: int = 200) -> None:
            body = json.dumps(value).encode()
            self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            with hub._lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                hub.requests.append(Recorded(time.monotonic(), method, path, query, headers))
            fault = hub._take_fault(method, path)
            if fault is not None:
                return self._json(
                    {"error": f"injected {fault.status}"}, fault.headers, fault.status
                )
            try:
                if path.startswith("/cdn/"):
                    return self._cdn(path[len("/cdn/") :])
                if path.startswith("/api/v1/") or path.startswith("/api/download/"):
                    return self._civitai(path, query)
                if path == "/api/models":
                    return self._hf_list(query)
                if path.startswith("/api/models/"):
                    return self._hf_model(path[len("/api/models/") :], query)
                if "/resolve/" in path:
                    return self._hf_resolve(path)
            except (KeyError, StopIteration, ValueError, IndexError):
                pass
            self._json({"error": "not found"}, {"X-Error-Code": "RepoNotFound"}, 404)

        # -- Hugging Face ----------------------------------------------------------------
        def _repo(self, repo_id: str) -> HfRepo:
            return next(r for r in hub.hf_repos if r.repo_id == repo_id)

        def _hf_list(self, query: dict) -> None:
            repos = [
                r
                for r in hub.hf_repos
                if all(t in r.tags for t in query.get("filter", []))
                and r.repo_id.startswith(
                    query.get("author", [""])[0] + "/" if "author" in query else ""
                )
                and query.get("search", [""])[0].lower() in r.repo_id.lower()
            ]
            if query.get("sort") == ["lastModified"]:
                repos.sort(key=lambda r: r.last_modified, reverse=True)
            start = int(query.get("cursor", ["0"])[0])
            page = repos[start : start + hub.page_size]
            headers = {}
            if start + hub.page_size < len(repos):
                params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
                params.append(("cursor", str(start + hub.page_size)))
                headers["Link"] = f'<{hub.url}/api/models?{urlencode(params)}>; rel="next"'
            self._json([r.info(blobs=False) for r in page], headers)

        def _hf_model(self, rest: str, query: dict) -> None:
            author, name, *tail = rest.split("/")
            repo = self._repo(f"{author}/{name}")
            if tail and tail[0] in ("revision", "tree") and tail[1] not in (repo.sha, "main"):
                return self._json({"error": "rev"}, {"X-Error-Code": "RevisionNotFound"}, 404)
            if tail and tail[0] == "tree":
                return self._json(self._tree(repo))
            info = repo.info(blobs=query.get("blobs") in (["True"], ["true"]))
            if query.get("securityStatus") in (["True"], ["true"]) and repo.security is not None:
                info["securityRepoStatus"] = repo.security
            self._json(info)

        def _tree(self, repo: HfRepo) -> list[dict]:
            entries, folders = [], set()
            for path in sorted(repo.files):
                data = repo.files[path]
                parts = path.split("/")
                folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
                entry = {
                    "type": "file",
                    "oid": git_blob_sha1(data),
                    "size": repo.size_of(path),
                    "path": path,
                }
                if repo.is_lfs(path):
                    entry["lfs"] = {
                        "oid": hashlib.sha256(data).hexdigest(),
                        "size": repo.size_of(path),
                        "pointerSize": 134,
                    }
                entries.append(entry)
            entries += [
                {"type": "directory", "oid": "0" * 40, "size": 0, "path": f}
                for f in sorted(folders)
            ]
            return entries

        def _hf_resolve(self, path: str) -> None:
            repo_part, rest = path.lstrip("/").split("/resolve/", 1)
            revision, file_path = rest.split("/", 1)
            repo = self._repo(repo_part)
            if revision not in (repo.sha, "main"):
                return self._json({"error": "rev"}, {"X-Error-Code": "RevisionNotFound"}, 404)
            if file_path not in repo.files:
                return self._json(
                    {"error": "entry"},
                    {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.sha},
                    404,
                )
            data = repo.served.get(file_path, repo.files[file_path])
            common = {"X-Repo-Commit": repo.sha}
            if repo.is_lfs(file_path):
                digest = hashlib.sha256(data).hexdigest()
                return self._send(
                    302,
                    b"",
                    {
                        **common,
                        "Location": hub.cdn_link(data),
                        "ETag": f'"{git_blob_sha1(data)}"',
                        "X-Linked-Etag": f'"{digest}"',
                        "X-Linked-Size": str(repo.size_of(file_path)),
                    },
                )
            self._send(200, data, {**common, "ETag": f'"{git_blob_sha1(data)}"'})

        def _cdn(self, digest: str) -> None:
            self._send(200, hub.blobs[digest], {"Content-Type": "application/octet-stream"})

        # -- Civitai ---------------------------------------------------------------------
        def _civitai(self, path: str, query: dict) -> None:
            if path.startswith("/api/download/models/"):
                return self._civitai_download(int(path.rsplit("/", 1)[1]), query)
            if path == "/api/v1/models":
                return self._civitai_list(query)
            if path.startswith("/api/v1/models/"):
                model_id = int(path.rsplit("/", 1)[1])
                model = next(m for m in hub.civitai_models if m.id == model_id)
                return self._json(self._civitai_model(model))
            raise KeyError(path)

        def _civitai_model(self, model: CivitaiModel) -> dict:
            versions = []
            for v in model.versions:
                files = []
                for i, f in enumerate(v.files):
                    files.append(
                        {
                            "id": v.id * 100 + i,
                            "name": f.name,
                            "sizeKB": len(f.data) / 1024,
                            "type": "Model",
                            "metadata": {"format": f.format, "fp": "fp16", "size": "pruned"},
                            "hashes": {
                                "SHA256": (
                                    f.declared_sha256 or hashlib.sha256(f.data).hexdigest()
                                ).upper(),
                                "AutoV2": "0123456789",
                            },
                            "downloadUrl": f"{hub.url}/api/download/models/{v.id}?{urlencode({'file': i})}",
                            "primary": i == 0,
                        }
                    )
                versions.append(
                    {
                        "id": v.id,
                        "name": f"v{v.id}",
                        "baseModel": v.base_model,
                        "trainedWords": v.trained_words,
                        "createdAt": v.updated_at,
                        "updatedAt": v.updated_at,
                        "publishedAt": v.updated_at,
                        "files": files,
                    }
                )
            return {
                "id": model.id,
                "name": model.name,
                "type": model.type,
                "nsfw": False,
                "tags": model.tags,
                "creator": {"username": "someone"},
                "allowCommercialUse": ["Image"],
                "allowDerivatives": True,
                "modelVersions": versions,
            }

        def _civitai_list(self, query: dict) -> None:
            types = set(query.get("types", []))
            bases = set(query.get("baseModels", []))
            models = [
                m
                for m in hub.civitai_models
                if (not types or m.type in types)
                and (not bases or any(v.base_model in bases for v in m.versions))
            ]
            limit = int(query.get("limit", [str(hub.page_size)])[0])
            start = int(query.get("cursor", ["0"])[0])
            page = models[start : start + min(limit, hub.page_size)]
            metadata: dict = {}
            nxt = start + len(page)
            if nxt < len(models):
                params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
                params.append(("cursor", str(nxt)))
                metadata = {
                    "nextCursor": str(nxt),
                    "nextPage": f"{hub.url}/api/v1/models?{urlencode(params)}",
                }
            self._json({"items": [self._civitai_model(m) for m in page], "metadata": metadata})

        def _civitai_download(self, version_id: int, query: dict) -> None:
            wanted = f"Bearer {hub.civitai_api_key}"
            if hub.civitai_api_key is not None and self.headers.get("Authorization") != wanted:
                return self._json({"error": "Unauthorized"}, status=401)
            version = next(v for m in hub.civitai_models for v in m.versions if v.id == version_id)
            data = version.files[int(query.get("file", ["0"])[0])].data
            self._send(302, b"", {"Location": hub.cdn_link(data)})

    return Handler
