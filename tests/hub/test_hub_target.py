"""One checkpoint named by a URI (`dmsec scan TARGET`): each form, and clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmsec.errors import ConfigError
from dmsec.hub.target import Target, parse_target

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_each_form_names_its_source_repo_and_revision(tmp_path: Path) -> None:
    weights = tmp_path / "loras" / "cat.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    assert parse_target("hf://org/repo") == Target("hf://", "org/repo", None)
    assert parse_target(f"hf://org/repo@{COMMIT}") == Target("hf://", "org/repo", COMMIT)
    assert parse_target("hf://org/repo@refs/pr/3").revision == "refs/pr/3"
    assert parse_target("civitai://models/123@456") == Target("civitai://", "123", "456")
    assert parse_target("civitai://models/123") == Target("civitai://", "123", None)
    assert parse_target("s3://bucket/loras/cat") == Target("s3://bucket", "bucket/loras/cat")
    local = Target(str(weights.parent.resolve()), "cat.safetensors")
    assert parse_target(str(weights)) == local == parse_target(weights.as_uri())
    assert parse_target(str(weights.parent)) == Target(str(tmp_path.resolve()), "loras")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("hf://org", "exactly one repo"),
        ("hf://org/repo/extra", "exactly one repo"),
        ("hf://org/repo@", "nothing after '@'"),
        ("hf://org/re po", "letters, digits"),
        ("hf://org/repo@../../x", "not a commit, branch or tag"),
        ("hf://org/repo?tag=lora", "no '?' query"),
        ("civitai://models/abc", "both numbers"),
        ("civitai://models/12@v2", "both numbers"),
        ("civitai://12", "both numbers"),
        ("s3://bucket", "a bucket and a key"),
        ("http://example.com/x", "scheme 'http'"),
        ("/no/such/checkpoint", "no such file or folder"),
        ("", "empty"),
    ],
)
def test_malformed_targets_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="a target is hf://org/repo") as err:
        parse_target(text)
    assert says in str(err.value)
