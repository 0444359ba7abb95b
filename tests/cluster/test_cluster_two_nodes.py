"""The scan on a two-node Ray cluster on this machine, submitted with `ray job submit`.

Ray's multi-raylet test cluster (`ray.cluster_utils.Cluster`): a head with 1 CPU (it also runs
the job's driver) and a second node with 2 CPUs, each with its own raylet, object store and
worker processes; the job server comes with `ray[default]`. The job carries the package and its
pipelines in its runtime env (`working_dir` = this checkout) and reads results, registry and
ledger from S3 (a local moto_server). Run 1 checks the findings; run 2 SIGKILLs every worker
process of the second node mid-scan (after the first checkpoint is committed): Ray restarts the
actors and retries their tasks, the job still succeeds, and every checkpoint appears exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
import ray.dashboard  # noqa: F401  (the job server needs ray[default], the dev extra)

sys.path.insert(0, str(Path(__file__).parents[1] / "scan"))
from scan_helpers import add_truncated_lora, make_hub  # noqa: E402

from dmsec.results.query import query  # noqa: E402
from dmsec.scan import build_zoo_registry  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
JOB_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster():
    """(cluster, dashboard URL, the second node): head 1 CPU, second node 2 CPUs."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    port = _free_port()
    store = 200 * 2**20
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": port, "object_store_memory": store})  # fmt: skip
    worker = c.add_node(num_cpus=2, object_store_memory=store)
    c.wait_for_nodes()
    try:
        yield c, f"http://127.0.0.1:{port}", worker
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def setup(small_zoo, moto_endpoint, tmp_path_factory):
    """(hub, registry URI, bucket, the corrupt checkpoint's repo id, job env vars)."""
    base = tmp_path_factory.mktemp("cluster-scan")
    hub = make_hub(base / "hub", small_zoo)
    corrupt = add_truncated_lora(hub, small_zoo)
    bucket = f"dmsec-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    env = {"DMSEC_S3_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "DMSEC_CACHE": str(base / "dmsec-cache"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    os.environ["DMSEC_S3_ENDPOINT_URL"] = moto_endpoint  # for this process's queries
    registry = f"s3://{bucket}/registry"
    build_zoo_registry(small_zoo.root, registry)
    return hub, registry, bucket, corrupt, env, base


def _submit(dashboard: str, setup, out: str) -> str:
    """`ray job submit --no-wait` of `dmsec scan`; returns the submission id."""
    hub, registry, _, _, env, base = setup
    sid = f"dmsec-scan-{uuid.uuid4().hex[:8]}"
    runtime_env = {"working_dir": str(ROOT), "env_vars": env,
                   "excludes": [".venv", ".git", "results", ".mypy_cache", ".devcache", "notebooks", "tests"]}  # fmt: skip
    entry = [sys.executable, "-m", "dmsec.cli", "scan", "--config", "configs/scan.yaml",
             "--source", str(hub), "--registry", registry, "--out", out,
             "--set", f"run.cache_dir={base / 'hub-cache'}", "--set", "extract.n_samples=64",
             "--set", "authenticate.steps=10", "--set", "authenticate.baseline_draws=4",
             "--set", "results.flush_every=1", "--set", "run.cpus_per_actor=0.6"]  # fmt: skip
    cmd = [RAY, "job", "submit", "--address", dashboard, "--submission-id", sid, "--no-wait",
           "--runtime-env-json", json.dumps(runtime_env), "--", *entry]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=base)
    assert done.returncode == 0, done.stdout + done.stderr
    return sid


def _wait(dashboard: str, sid: str, until=None) -> str:
    """Poll the job until it ends (or `until()` is true); returns the job status."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(dashboard)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.get_job_status(sid)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return str(status.value)
        if until is not None and until():
            return "RUNNING"
        time.sleep(1)
    client.stop_job(sid)
    pytest.fail(
        f"job {sid} did not finish in {JOB_TIMEOUT_S} s:\n{client.get_job_logs(sid)[-5000:]}"
    )


def _logs(dashboard: str, sid: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard).get_job_logs(sid)


def _committed(bucket: str, prefix: str) -> int:
    s3 = boto3.client("s3", endpoint_url=os.environ["DMSEC_S3_ENDPOINT_URL"])
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/checkpoints/")
    return len(listing.get("Contents", []))


def _kill_workers(node) -> list[str]:
    """SIGKILL every worker process of Ray node `node` (the raylet's `ray::` children, not its
    agents: Ray fate-shares the node with those); returns their titles (the actor or task each
    one ran)."""
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    killed = []
    for proc in raylet.children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
            # ray::DashboardAgent, ray::RuntimeEnvAgent
            agent = title.split(" ")[0].endswith("Agent")
            if title.startswith("ray::") and not agent and "JobSupervisor" not in title:
                proc.send_signal(signal.SIGKILL)
                killed.append(title)
        except psutil.NoSuchProcess:
            continue
    return killed


def _check_results(out: str, setup, small_zoo) -> list[dict]:
    _, _, _, corrupt, _, _ = setup
    rows = query(out, "SELECT repo_id, revision, status, error_stage, n_matches FROM checkpoints").to_pylist()  # fmt: skip
    names = [r["repo_id"] for r in rows]
    assert sorted(names) == sorted([e.name for e in small_zoo.fine_tunes] + [corrupt])  # once each
    by_name = {r["repo_id"]: r for r in rows}
    assert (by_name[corrupt]["status"], by_name[corrupt]["error_stage"]) == ("error", "pull")
    for entry in small_zoo.fine_tunes:
        assert by_name[entry.name]["status"] == "ok", by_name[entry.name]
    heavy = small_zoo.select(strength="heavy", protected=True)
    assert all(by_name[e.name]["n_matches"] >= 1 for e in heavy)
    control = small_zoo.select(protected=False)
    assert all(by_name[e.name]["n_matches"] == 0 for e in control)
    return rows


def test_scan_submitted_to_a_two_node_cluster(cluster, setup, small_zoo) -> None:
    _, dashboard, _ = cluster
    out = f"s3://{setup[2]}/run-1"
    sid = _submit(dashboard, setup, out)
    status = _wait(dashboard, sid)
    logs = _logs(dashboard, sid)
    assert status == "SUCCEEDED", logs[-5000:]
    _check_results(out, setup, small_zoo)
    assert f"results: {out}" in logs


def test_scan_survives_killed_worker_processes_of_one_node(cluster, setup, small_zoo) -> None:
    _, dashboard, node2 = cluster
    bucket = setup[2]
    out = f"s3://{bucket}/run-2"
    total = len(small_zoo.fine_tunes) + 1
    sid = _submit(dashboard, setup, out)
    status = _wait(dashboard, sid, until=lambda: _committed(bucket, "run-2") >= 1)
    assert status == "RUNNING", "the scan finished before the kill: nothing was tested"
    committed_at_kill = _committed(bucket, "run-2")
    killed = _kill_workers(node2)
    assert committed_at_kill < total
    assert any("Stage" in title or "MapWorker" in title for title in killed), killed
    status = _wait(dashboard, sid)
    logs = _logs(dashboard, sid)
    assert status == "SUCCEEDED", logs[-5000:]
    _check_results(out, setup, small_zoo)
