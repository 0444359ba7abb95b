"""CheckpointRef / CheckpointFile / ListFilter validation, and the source registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dmsec.errors import ConfigError
from dmsec.hub import source_from_uri, source_names
from dmsec.hub.ref import CheckpointFile, CheckpointRef, check_relative_path
from dmsec.hub.source import HubSource, ListFilter, get_source_class, register_source

SHA = "ab" * 32


def _ref(**kw: object) -> CheckpointRef:
    base: dict = {"source": "hf", "repo_id": "a/b", "revision": "1" * 40, "kind": "lora"}
    return CheckpointRef(**{**base, **kw})


@pytest.mark.parametrize(
    "path", ["../x", "a/../../x", "/etc/passwd", "a\\b", "C:/x", "a//b", "./a", "", "a\x00b"]
)
def test_paths_that_escape_the_checkpoint_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match="`path`"):
        CheckpointFile(path=path)


def test_good_paths_and_hashes_are_normalised() -> None:
    f = CheckpointFile("unet/model.safetensors", 3, sha256=SHA.upper(), git_sha1="C" * 40)
    assert f.sha256 == SHA and f.git_sha1 == "c" * 40 and f.suffix == ".safetensors"
    assert check_relative_path("a/b.json") == "a/b.json"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"sha256": "xyz"}, "sha256"),
        ({"git_sha1": "12"}, "git_sha1"),
        ({"size": -1}, "size"),
        ({"size": True}, "size"),
    ],
)
def test_file_validation_names_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        CheckpointFile("a.safetensors", **kw)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"kind": "dreambooth"}, "kind"),
        ({"repo_id": ""}, "repo_id"),
        ({"revision": " "}, "revision"),
        ({"last_modified": datetime(2025, 1, 1)}, "last_modified"),
        ({"files": (CheckpointFile("a"), CheckpointFile("a"))}, "files"),
    ],
)
def test_ref_validation_names_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        _ref(**kw)


def test_ref_round_trips_through_a_dict() -> None:
    ref = _ref(
        base_model="sd15",
        files=(CheckpointFile("w.safetensors", 10, sha256=SHA),),
        tags=("lora",),
        license="mit",
        last_modified=datetime(2025, 1, 2, 3, tzinfo=timezone(timedelta(hours=2))),
        url="https://x/a/b",
        extra={"name": "n"},
    )
    again = CheckpointRef.from_dict(ref.to_dict())
    assert again == ref and again.extra == {"name": "n"}
    assert again.last_modified == datetime(2025, 1, 2, 1, tzinfo=UTC)
    assert ref.key == ("hf", "a/b", "1" * 40) and ref.declared_size == 10
    with pytest.raises(ValueError, match="unknown CheckpointRef fields"):
        CheckpointRef.from_dict({**ref.to_dict(), "bogus": 1})


def test_list_filter_matches_and_validates() -> None:
    when = datetime(2025, 6, 1, tzinfo=UTC)
    flt = ListFilter(kinds=frozenset({"lora"}), base_models=frozenset({"SD 1.5"}), since=when)
    assert flt.matches(_ref(base_model="sd 1.5", last_modified=when))
    assert not flt.matches(_ref(base_model="sd 1.5", last_modified=when - timedelta(days=1)))
    assert not flt.matches(_ref(base_model=None, last_modified=when))
    assert not flt.matches(_ref(kind="full", base_model="SD 1.5"))
    assert flt.matches(_ref(base_model="SD 1.5"))  # unknown time: kept, it might be new
    assert not ListFilter().matches(_ref(kind="base"))  # base models are not scanned by default
    for bad, field in [
        ({"kinds": frozenset({"x"})}, "kinds"),
        ({"since": datetime(2025, 1, 1)}, "since"),
        ({"limit": 0}, "limit"),
        ({"base_models": frozenset({""})}, "base_models"),
    ]:
        with pytest.raises(ConfigError, match=f"`{field}`"):
            ListFilter(**bad)


def test_registry_knows_every_builtin_and_rejects_duplicates() -> None:
    assert source_names() == ["civitai", "hf", "local", "s3"]
    names = [get_source_class(n).name for n in source_names()]
    assert names == source_names()  # the registry key is the class's own name

    class Impostor(HubSource):
        name = "hf"
        schemes = ("impostor",)

    with pytest.raises(ConfigError, match="already registered"):
        register_source(Impostor)
    with pytest.raises(ConfigError, match="unknown hub source"):
        get_source_class("nope")
    with pytest.raises(ConfigError, match="no hub source handles"):
        source_from_uri("ftp://x/y")


@pytest.mark.parametrize(
    "uri", ["hf://alice/extra", "hf://?bogus=1", "civitai://host", "s3://", "civitai://?x=1"]
)
def test_malformed_uris_are_config_errors(uri: str) -> None:
    with pytest.raises(ConfigError, match="`uri`"):
        source_from_uri(uri)


def test_uris_round_trip() -> None:
    for uri in ["hf://alice?search=pets&tag=lora", "civitai://?query=cats", "hf://"]:
        assert source_from_uri(uri).uri == uri
