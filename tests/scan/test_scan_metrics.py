"""The Ray scan exports per-stage counters with `ray.util.metrics`: a local Ray with a metrics
port, a scan of a small hub (one checkpoint that matches, one broken at pull, one at extract),
then the Prometheus text the node's metrics agent serves is read and checked."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.request

import pytest
import ray
from scan_helpers import add_misfit_lora, add_truncated_lora, make_hub, scan_config

from dmsec.scan import run_scan

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{(stage, status) tags: value} of metric `name` (summed over workers)."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} ([0-9.e+-]+)$", line)
        if match:
            tags = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
            key = tuple(sorted((k, v) for k, v in tags.items() if k in ("stage", "status")))
            out[key] = out.get(key, 0.0) + float(match[2])
    return out


def test_ray_scan_exports_stage_metrics_prometheus_reads(small_zoo, zoo_registry, tmp_path):
    port = _free_port()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False,
             _metrics_export_port=port, _system_config={"metrics_report_interval_ms": 500})  # fmt: skip
    try:
        heavy = small_zoo.select(method="full", strength="heavy", protected=True)[0].name
        hub = make_hub(tmp_path / "hub", small_zoo, [heavy])
        add_truncated_lora(hub, small_zoo)
        add_misfit_lora(hub)
        config = scan_config(hub, zoo_registry, tmp_path / "out", tmp_path / "cache",
                             extract={"n_samples": 32}, methods={"verifier": None},
                             run={"executor": "ray", "extract_actors": 1, "authenticate_actors": 1,
                                  "cpus_per_actor": 0.5})  # fmt: skip
        summary = run_scan(config, echo=lambda _: None)
        assert summary.counts() == {"ok": 1, "error": 2}
        matches = sum(c["matches"] for c in summary.checkpoints)
        assert matches >= 1
        wanted = {
            (("stage", "pull"), ("status", "error")): 1.0,
            (("stage", "pull"), ("status", "ok")): 2.0,
            (("stage", "extract"), ("status", "error")): 1.0,
            (("stage", "extract"), ("status", "ok")): 1.0,
            (("stage", "match"), ("status", "ok")): 1.0,
            (("stage", "authenticate"), ("status", "ok")): 1.0,
        }
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()  # fmt: skip
            if _samples(text, "ray_dmsec_scan_checkpoints_total") == wanted and _samples(text, "ray_dmsec_scan_findings_total"):  # fmt: skip
                break
            time.sleep(1)
        assert _samples(text, "ray_dmsec_scan_checkpoints_total") == wanted
        assert _samples(text, "ray_dmsec_scan_findings_total") == {(("stage", "match"),): float(matches)}  # fmt: skip
        seconds = _samples(text, "ray_dmsec_scan_stage_seconds_total")
        assert seconds[(("stage", "extract"),)] > 0 and set(seconds) == {(("stage", s),) for s in ("pull", "extract", "match", "authenticate")}  # fmt: skip
    finally:
        ray.shutdown()
