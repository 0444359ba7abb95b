"""One checkpoint named by a URI, for scanning it alone: `dmsec scan TARGET`.

    hf://org/repo[@revision]             a Hugging Face repo (revision: commit, branch or tag)
    civitai://models/<id>[@<version>]    a Civitai model (version: a version id; else the newest)
    s3://bucket/key                      an S3 object or prefix holding one checkpoint
    /path/to/file-or-folder, file://...  a local checkpoint file or folder

`parse_target` splits it into the source to build (`source.uri`), the repo id inside that source
(`source.target`) and the revision (`source.revision`): an HF repo lives in `hf://`, a Civitai model
in `civitai://`, an S3 key in `s3://bucket`, a local file or folder in its parent folder (so a
base model named by a relative path, as the zoo's are, must sit beside it). A source URI that
names a whole hub (`hf://org`, `civitai://?query=..`, a folder of checkpoints given as `--source`)
is a listing, not a target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dmsec.errors import ConfigError

_HF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HF_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_FORMS = (
    "hf://org/repo[@revision], civitai://models/<id>[@<version>], s3://bucket/key, "
    "or a local checkpoint file or folder"
)


@dataclass(frozen=True)
class Target:
    """One checkpoint: the source it is in, its repo id there, and a revision (None: newest)."""

    source_uri: str
    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def _bad(text: str, why: str) -> ConfigError:
    return ConfigError(f"target {text!r}: {why}; a target is {_FORMS}")


def _split_revision(text: str, rest: str) -> tuple[str, str | None]:
    name, at, revision = rest.partition("@")
    if at and not revision:
        raise _bad(text, "nothing after '@'")
    return name, revision or None


def _hf(text: str, netloc: str, path: str) -> Target:
    name, revision = _split_revision(text, path.strip("/"))
    if not netloc or not name or "/" in name:
        raise _bad(text, "an HF target is exactly one repo, org/repo")
    if not (_HF_NAME.match(netloc) and _HF_NAME.match(name)) or ".." in f"{netloc}/{name}":
        raise _bad(text, "HF org and repo names are letters, digits, '.', '_' and '-'")
    if revision is not None and (not _HF_REVISION.match(revision) or ".." in revision):
        raise _bad(text, f"{revision!r} is not a commit, branch or tag name")
    return Target("hf://", f"{netloc}/{name}", revision)


def _civitai(text: str, netloc: str, path: str) -> Target:
    model, version = _split_revision(text, path.strip("/"))
    if netloc != "models" or not model.isdigit() or (version is not None and not version.isdigit()):  # fmt: skip
        raise _bad(text, "a Civitai target is civitai://models/<model id>[@<version id>], both numbers")  # fmt: skip
    return Target("civitai://", model, version)


def _s3(text: str, bucket: str, path: str) -> Target:
    key = path.strip("/")
    if not bucket or not key:
        raise _bad(text, "an S3 target names a bucket and a key")
    return Target(f"s3://{bucket}", f"{bucket}/{key}")


def _local(text: str) -> Target:
    path = Path(unquote(urlsplit(text).path) if text.startswith("file://") else text).expanduser()
    if not path.exists():
        raise _bad(text, "no such file or folder")
    path = path.resolve()
    if path.parent == path:
        raise _bad(text, "the file-system root is not a checkpoint")
    return Target(str(path.parent), path.name)


def parse_target(text: str) -> Target:
    """The `Target` a URI or path names; `ConfigError` saying what is wrong otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(str(text), "it is empty")
    text = text.strip()
    if "://" not in text:
        return _local(text)
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise _bad(text, "a target takes no '?' query or '#' fragment (that is a listing)")
    scheme = parts.scheme.lower()
    if scheme == "hf":
        return _hf(text, parts.netloc, parts.path)
    if scheme == "civitai":
        return _civitai(text, parts.netloc, parts.path)
    if scheme == "s3":
        return _s3(text, parts.netloc, parts.path)
    if scheme == "file":
        return _local(text)
    raise _bad(text, f"no source handles the scheme {scheme!r}")
