"""``registry.json``: which embedders a registry uses, its index policy, and its id counter.

It also records the dmsec and FAISS versions that last wrote it, so a registry can be replayed.
Written last on every change (after the index files and artworks.parquet), so a crash part-way
leaves at worst index entries that no artwork row refers to, which searches ignore.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmsec.match.embedder import Embedder, create_embedder
from dmsec.match.errors import RegistryError
from dmsec.match.index_policy import IndexPolicy
from dmsec.provenance import package_versions

FORMAT = "dmsec-protected-artwork-registry"
FORMAT_VERSION = 1
_KEYS = {
    "format",
    "version",
    "embedders",
    "policy",
    "next_id",
    "created_at",
    "updated_at",
    "written_by",
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """The registry's configuration and id counter."""

    embedders: list[tuple[str, dict[str, Any]]]
    policy: IndexPolicy = field(default_factory=IndexPolicy)
    next_id: int = 0
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def to_json(self) -> str:
        """The JSON text written to registry.json."""
        data = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "embedders": [{"name": n, "config": c} for n, c in self.embedders],
            "policy": self.policy.to_dict(),
            "next_id": self.next_id,
            "created_at": self.created_at,
            "updated_at": _now(),
            "written_by": package_versions(("dmsec", "faiss-cpu", "faiss-gpu-cu12")),
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def build_embedders(
        self,
        overrides: Mapping[str, Embedder] | None = None,
        model_paths: Mapping[str, str | Path] | None = None,
    ) -> dict[str, Embedder]:
        """The recorded embedders, built from their configs.

        `overrides` replaces an embedder outright; `model_paths` only moves a dense embedder's
        weights. A recorded weight fingerprint must still match (checked here for overrides,
        and by the embedder when it loads its weights otherwise).
        """
        names = [name for name, _ in self.embedders]
        moved = {str(k): str(v) for k, v in (model_paths or {}).items()}
        unknown = set(moved) - set(names)
        if unknown:
            raise RegistryError(
                f"`model_paths` names embedders not in this registry: {sorted(unknown)}"
            )
        out: dict[str, Embedder] = {}
        for name, config in self.embedders:
            if name in moved:
                config = {**config, "model_path": moved[name]}
            if overrides and name in overrides:
                out[name] = _checked_override(name, config, overrides[name])
            else:
                out[name] = create_embedder(name, config)
        return out

    @classmethod
    def from_json(cls, text: str, source: str = "registry.json") -> Manifest:
        """Parse and validate registry.json; errors name the file and field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RegistryError(f"{source}: not a dmsec registry manifest (`format` != {FORMAT!r})")
        if data.get("version") != FORMAT_VERSION:
            raise RegistryError(
                f"{source}: `version` must be {FORMAT_VERSION}; got {data.get('version')!r}"
            )
        unknown = set(data) - _KEYS
        if unknown:
            raise RegistryError(f"{source}: unknown keys {sorted(unknown)}")
        entries = data.get("embedders")
        if not isinstance(entries, list) or not entries:
            raise RegistryError(f"{source}: `embedders` must be a non-empty list")
        embedders = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise RegistryError(f"{source}: each of `embedders` needs a `name`; got {entry!r}")
            embedders.append((entry["name"], dict(entry.get("config") or {})))
        next_id = data.get("next_id", 0)
        if not isinstance(next_id, int) or next_id < 0:
            raise RegistryError(f"{source}: `next_id` must be an integer >= 0; got {next_id!r}")
        return cls(
            embedders=embedders,
            policy=IndexPolicy.from_dict(dict(data.get("policy") or {})),
            next_id=next_id,
            created_at=str(data.get("created_at", _now())),
            updated_at=str(data.get("updated_at", _now())),
        )


def _checked_override(name: str, config: Mapping[str, Any], embedder: Embedder) -> Embedder:
    if embedder.name != name:
        raise RegistryError(f"`embedders[{name!r}]` is a {embedder.name!r} embedder")
    recorded, given = config.get("fingerprint"), embedder.config().get("fingerprint")
    if recorded and given and recorded != given:
        raise RegistryError(
            f"`embedders[{name!r}]` has model fingerprint {given[:12]}; the registry was "
            f"built with {recorded[:12]}"
        )
    return embedder
