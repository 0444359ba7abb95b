"""`dmsec hub list / pull` through the real entry point (the lazy top-level group)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_hub import FakeHub, HfRepo
from hub_builders import write_lora, write_malicious_pickle

from dmsec.cli import main
from dmsec.hub.cli import parse_size


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_list_with_filters(zoo: Path) -> None:
    result = CliRunner().invoke(main, ["hub", "list", str(zoo), "--kind", "lora"])
    assert result.exit_code == 0, result.output
    assert sorted(r["repo_id"] for r in _lines(result.stdout)) == ["lora-3", "lora-5"]
    result = CliRunner().invoke(
        main, ["hub", "list", zoo.as_uri(), "--kind", "base", "--kind", "full"]
    )
    assert sorted(r["repo_id"] for r in _lines(result.stdout)) == ["base", "full-7"]
    result = CliRunner().invoke(main, ["hub", "list", str(zoo), "--since", "2999-01-01"])
    assert result.exit_code == 0 and _lines(result.stdout) == []


def test_pull_then_ledger_lists_nothing_new(zoo: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    write_malicious_pickle(zoo / "evil" / "pytorch_lora_weights.bin", canary)
    (zoo / "evil" / "dmsec_model.json").write_text('{"kind": "lora"}')
    ledger = ["--ledger", str(tmp_path / "ledger.parquet"), "--config-hash", "h1"]
    args = ["hub", "pull", str(zoo), "--cache-dir", str(tmp_path / "cache"), *ledger]
    result = CliRunner().invoke(main, [*args, "--allow-pickle", "--fail-on-error"])
    assert result.exit_code == 1  # the pickle was refused
    rows = {r["repo_id"]: r for r in _lines(result.stdout)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "evil": "refused",
        "full-7": "ok",
        "lora-3": "ok",
        "lora-5": "ok",
    }
    assert "posix.system" in rows["evil"]["error"] and not canary.exists()
    assert Path(rows["lora-3"]["path"], "pytorch_lora_weights.safetensors").is_file()
    again = CliRunner().invoke(main, ["hub", "list", str(zoo), *ledger])
    assert again.exit_code == 0 and _lines(again.stdout) == []


def test_pull_one_repo_id(zoo: Path, tmp_path: Path) -> None:
    args = ["hub", "pull", str(zoo), "--repo-id", "lora-5", "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(main, args)
    (row,) = _lines(result.stdout)
    assert result.exit_code == 0 and row["repo_id"] == "lora-5" and row["status"] == "ok"


def test_hf_endpoint_option_and_token_stays_out_of_output(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_cli_SECRET")
    lora = write_lora(tmp_path / "l.safetensors", "sd").read_bytes()
    fake_hub.hf_repos = [
        HfRepo(
            "a/b",
            {"pytorch_lora_weights.safetensors": lora},
            ["diffusers", "text-to-image", "lora"],
            "2025-01-01T00:00:00Z",
        )
    ]
    args = ["hub", "pull", "hf://a", "--endpoint", fake_hub.url, "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert _lines(result.stdout)[0]["status"] == "ok" and "hf_cli_SECRET" not in result.output


def test_usage_errors_are_clear(zoo: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["hub", "list", str(zoo), "--ledger", "x.parquet"])
    assert result.exit_code != 0 and "--ledger and --config-hash go together" in result.output
    result = runner.invoke(main, ["hub", "list", str(zoo / "nope")])
    assert result.exit_code != 0 and "`root` must be an existing folder" in result.output
    result = runner.invoke(main, ["hub", "list", str(zoo), "--endpoint", "http://x"])
    assert result.exit_code != 0 and "--endpoint does not apply" in result.output
    result = runner.invoke(main, ["hub", "sources"])
    assert result.output.split() == ["civitai", "hf", "local", "s3"]


def test_parse_size() -> None:
    assert (
        parse_size("512") == 512 and parse_size("2KiB") == 2048 and parse_size("8GiB") == 8 * 2**30
    )
    assert parse_size("3m") == 3 * 2**20
