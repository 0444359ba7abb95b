"""`dmsec scan --log-format json`: one JSON object per line on stdout (scan id, checkpoint, stage,
status, seconds), nothing else; `text` keeps the lines people read."""

from __future__ import annotations

import json

from click.testing import CliRunner
from scan_helpers import add_truncated_lora, make_hub

from dmsec.scan.logs import scan_log, stage_records
from dmsec.scan.records import ScanItem

REF = {"source": "local", "repo_id": "alice/lora", "revision": "r1", "kind": "lora"}


def _item(**fields) -> ScanItem:
    return ScanItem(ref=dict(REF), scan_id="s1", config_hash="h", **fields)


def test_log_format_json_gives_one_object_per_stage_with_the_stage_that_ended_it():
    ok = _item(
        status="ok", timings={"pull": 0.5, "extract": 2.25, "match": 0.1, "authenticate": 1.0}
    )
    failed = _item(timings={"pull": 0.2, "extract": 0.3})
    failed.fail("extract", "CheckpointError: x: LoRA does not fit", retryable=False)
    lines: list[str] = []
    log = scan_log("json", "s1", lines.append)
    log.message("resolving source ...")
    log.checkpoint(1, 2, ok)
    log.checkpoint(2, 2, failed)
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    assert objects[0] == {"scan_id": "s1", "stage": "scan", "status": "info", "message": "resolving source ..."}  # fmt: skip
    stages = [(o["checkpoint"], o["stage"], o["status"], o["seconds"]) for o in objects[1:]]
    assert stages == [
        ("alice/lora", "pull", "ok", 0.5), ("alice/lora", "extract", "ok", 2.25),
        ("alice/lora", "match", "ok", 0.1), ("alice/lora", "authenticate", "ok", 1.0),
        ("alice/lora", "pull", "ok", 0.2), ("alice/lora", "extract", "error", 0.3),
    ]  # fmt: skip
    assert all(o["scan_id"] == "s1" and o["revision"] == "r1" for o in objects[1:])
    assert objects[-1]["error"].startswith("CheckpointError") and objects[-1]["retryable"] is False
    skipped = _item()
    skipped.skip("pull", "refused by the pull policy: only pickle-format weights")
    assert stage_records(skipped) == [{"source": "local", "checkpoint": "alice/lora", "revision": "r1",
                                       "stage": "pull", "status": "skipped", "seconds": 0.0,
                                       "error": skipped.error, "retryable": False}]  # fmt: skip


def test_log_format_text_is_the_progress_line():
    lines: list[str] = []
    scan_log("text", "s1", lines.append).checkpoint(1, 1, _item(status="ok", timings={"pull": 1.0}))
    assert lines and lines[0].startswith("[1/1] ok") and not lines[0].startswith("{")


def test_log_format_json_cli_scan_prints_only_json(small_zoo, zoo_registry, tmp_path):
    from dmsec.cli import main

    hub = make_hub(tmp_path / "hub", small_zoo, ["base"])  # the base only
    broken = add_truncated_lora(hub, small_zoo)
    args = ["scan", "--source", str(hub), "--registry", str(zoo_registry), "--out", str(tmp_path / "out"),
            "--local", "--set", f"run.cache_dir={json.dumps(str(tmp_path / 'cache'))}",
            "--log-format", "json"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    scan_ids = {o["scan_id"] for o in objects}
    assert len(scan_ids) == 1
    pull = [o for o in objects if o.get("checkpoint") == broken]
    assert [(o["stage"], o["status"]) for o in pull] == [("pull", "error")]
    assert isinstance(pull[0]["seconds"], float)
    assert objects[-1]["stage"] == "summary" and objects[-1]["checkpoints"] == {"error": 1}
