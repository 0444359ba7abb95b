"""The cluster files agree with each other and with the README: the Ray cluster launcher config
(`ray_cluster.yaml`), the image (`cluster/Dockerfile`) and the KubeRay manifests (`cluster/k8s/`).

No cluster, Docker or Kubernetes here: the files are parsed and cross-checked (Ray's own launcher
schema, the scan config's keys, the install commands, the image tag, the shared staging path).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "ray_cluster.yaml"
DOCKERFILE = ROOT / "cluster" / "Dockerfile"
CLUSTER_README = ROOT / "cluster" / "README.md"
K8S = ROOT / "cluster" / "k8s"
MANIFESTS = ("rayjob-scan.yaml", "scan-configmap.yaml", "pvc-staging.yaml", "cronjob-scan.yaml")

LAUNCHER_KEYS = (
    "cluster_name",
    "max_workers",
    "upscaling_speed",
    "idle_timeout_minutes",
    "provider",
    "auth",
    "available_node_types",
    "head_node_type",
    "file_mounts",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)
# GPUs per EC2 instance type used in ray_cluster.yaml (a new GPU type must be added here).
EC2_GPUS = {"g5.xlarge": 1, "g5.2xlarge": 1, "g5.12xlarge": 4}
# The workloads the launcher config provides a worker type for, by custom resource.
WORKLOAD_RESOURCES = ("extract", "protect", "train")
# Keys the scan config may use beyond configs/scan.yaml (added with the cluster work).
EXTRA_SCAN_KEYS = {"results.staging"}
PIP_QUIET_FLAGS = {"-q", "--quiet", "--no-cache-dir", "--upgrade", "-U"}


# --- helpers ---------------------------------------------------------------------------------


def launcher() -> dict[str, Any]:
    return yaml.safe_load(LAUNCHER.read_text())


def manifest(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]


def one(name: str, kind: str) -> dict[str, Any]:
    docs = [d for d in manifest(name) if d["kind"] == kind]
    assert len(docs) == 1, f"{name}: expected one {kind}, found {len(docs)}"
    return docs[0]


def rayjob() -> dict[str, Any]:
    return one("rayjob-scan.yaml", "RayJob")


def scan_config() -> dict[str, Any]:
    return yaml.safe_load(one("scan-configmap.yaml", "ConfigMap")["data"]["scan.yaml"])


def dotted_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """Every leaf key of a nested mapping, as `section.key`."""
    keys: set[str] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def pod_specs(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The head's and every worker group's pod spec, by group name."""
    cluster = job["spec"]["rayClusterSpec"]
    pods = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    for group in cluster["workerGroupSpecs"]:
        pods[group["groupName"]] = group["template"]["spec"]
    return pods


def readme_block(path: Path, heading: str | None = None) -> list[str]:
    """The first ```bash block (after `heading`, if given) as lines."""
    lines = path.read_text().splitlines()
    start = lines.index(heading) if heading else 0
    begin = lines.index("```bash", start) + 1
    return lines[begin : lines.index("```", begin)]


def pip_installs(commands: list[str]) -> list[dict[str, Any]]:
    """Each `pip install` in shell `commands`: constraints file, editable or not, targets, and the
    directory a preceding `cd` in the same command moved to."""
    installs = []
    for command in commands:
        cwd = None
        for part in re.split(r"&&|;", command):
            tokens = shlex.split(part, comments=True)
            if tokens[:1] == ["cd"]:
                cwd = tokens[1]
            if len(tokens) < 2 or not tokens[0].endswith("pip") or tokens[1] != "install":
                continue
            found: dict[str, Any] = {
                "constraints": None,
                "editable": False,
                "targets": [],
                "cwd": cwd,
            }
            args = iter(tokens[2:])
            for arg in args:
                if arg == "-c":
                    found["constraints"] = next(args)
                elif arg in ("-e", "--editable"):
                    found["editable"] = True
                elif arg not in PIP_QUIET_FLAGS:
                    found["targets"].append(arg)
            installs.append(found)
    return installs


def extras(target: str) -> tuple[str, set[str]]:
    """`.[gpu,cluster]` -> (".", {"gpu", "cluster"})."""
    match = re.fullmatch(r"([^\[]+)(?:\[([^\]]*)\])?", target)
    assert match, target
    return match[1], set(filter(None, (match[2] or "").split(",")))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def ray_base_version() -> str:
    base = next(arg for word, arg in dockerfile_instructions() if word == "FROM")
    match = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py311-gpu", base)
    assert match, f"cluster/Dockerfile should build FROM a Ray GPU image; got {base}"
    return match[1]


def readme_image_tag() -> str:
    match = re.search(r"docker build -f cluster/Dockerfile -t (\S+) \.", CLUSTER_README.read_text())
    assert match, "cluster/README.md should show the docker build command with its tag"
    return match[1]


def assert_installs_like_the_readme(installs: list[dict[str, Any]], where: str) -> None:
    readme = pip_installs(readme_block(ROOT / "README.md", "## Install"))
    assert len(readme) == 2 and readme[0]["targets"] == ["torch==2.13.0"], readme
    assert len(installs) == 2, f"{where}: expected the torch pin, then dmsec; got {installs}"
    pin, package = installs
    assert pin["constraints"] == readme[0]["constraints"] == "constraints.txt", where
    assert pin["targets"] == readme[0]["targets"] and not pin["editable"], where
    assert package["constraints"] == readme[1]["constraints"], where
    assert len(package["targets"]) == 1, where
    base, wanted = extras(package["targets"][0])
    assert base == extras(readme[1]["targets"][0])[0] == ".", where
    assert {"gpu", "cluster"} <= wanted, f"{where}: install dmsec with the gpu and cluster extras"
    assert not package["editable"], f"{where}: install non-editable"


# --- the Ray cluster launcher ----------------------------------------------------------------


def test_launcher_config_has_the_keys_and_passes_rays_own_schema():
    config = launcher()
    missing = [k for k in LAUNCHER_KEYS if k not in config]
    assert not missing, missing
    ray_dir = Path(next(iter(importlib.util.find_spec("ray").submodule_search_locations)))
    schema = json.loads((ray_dir / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    assert config["provider"]["type"] == "aws"
    assert "docker" not in config or config["docker"]["image"] == readme_image_tag()


def test_launcher_node_types_head_without_actors_gpu_workers_from_zero():
    config = launcher()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "no actors on the head"
    for name, node in types.items():
        for key in ("node_config", "resources", "min_workers", "max_workers"):
            assert key in node, f"{name}: {key}"
        assert 0 <= node["min_workers"] <= node["max_workers"] <= config["max_workers"], name
        instance = node["node_config"]["InstanceType"]
        if instance.startswith(("g", "p")):
            assert instance in EC2_GPUS, f"{name}: add {instance}'s GPU count to EC2_GPUS"
            assert node["resources"].get("GPU") == EC2_GPUS[instance], name
            assert node["min_workers"] == 0, f"{name}: GPU types scale from zero"
        else:
            assert "GPU" not in node["resources"], name
    workers = {n: t for n, t in types.items() if n != config["head_node_type"]}
    for workload in WORKLOAD_RESOURCES:
        gpu_types = [t for t in workers.values() if t["resources"].get(workload)]
        assert gpu_types and all(t["resources"].get("GPU") for t in gpu_types), workload
    assert any(
        not t["resources"].get("GPU") and t["resources"].get("CPU") for t in workers.values()
    )
    train = next(t for t in workers.values() if t["resources"].get("train"))
    assert train["resources"]["GPU"] > 1, "Ray Train fine-tuning gets a multi-GPU node"
    assert config["idle_timeout_minutes"] > 0 and config["upscaling_speed"] > 0


def test_every_key_in_ray_cluster_yaml_is_commented():
    key_line = re.compile(r"\s*(?:-\s+)?(?:[A-Za-z_][\w.-]*|/[\w/.~-]+|\"[^\"]+\")\s*:(?:\s|$)")
    lines = LAUNCHER.read_text().splitlines()
    bare = [
        f"{i + 1}: {line.strip()}"
        for i, line in enumerate(lines)
        if key_line.match(line)
        and "#" not in line
        and not (i > 0 and lines[i - 1].strip().startswith("#"))
    ]
    assert not bare, (
        f"ray_cluster.yaml keys without a comment (inline or on the line above): {bare}"
    )


def test_launcher_installs_like_the_readme_from_the_mounted_checkout():
    config = launcher()
    installs = pip_installs(config["setup_commands"])
    assert_installs_like_the_readme(installs, "ray_cluster.yaml setup_commands")
    home = f"/home/{config['auth']['ssh_user']}"
    checkout = {remote for remote, local in config["file_mounts"].items() if local == "."}
    for install in installs:
        assert install["cwd"] and install["cwd"].replace("~", home, 1) in checkout, (
            "pip runs in the mounted checkout, where constraints.txt is"
        )
    assert pip_installs(readme_block(CLUSTER_README)) == [dict(i, cwd=None) for i in installs], (
        "cluster/README.md shows the same two installs"
    )


def test_launcher_starts_ray_from_the_venv_it_installed_into():
    config = launcher()
    pip = shlex.split(config["setup_commands"][-1].split("&&")[-1], comments=True)[0]
    ray = pip.removesuffix("pip") + "ray"
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert f"{ray} start --head --port=6379" in head
    assert "--dashboard-host=0.0.0.0" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert f"{ray} start --address=$RAY_HEAD_IP:6379" in workers


# --- the image -------------------------------------------------------------------------------


def test_dockerfile_installs_like_the_readme_after_copying_what_it_needs():
    steps = dockerfile_instructions()
    runs = [arg for word, arg in steps if word == "RUN"]
    assert_installs_like_the_readme(pip_installs(runs), "cluster/Dockerfile")
    copied: set[str] = set()
    for word, arg in steps:
        if word == "COPY":
            copied |= {p.rstrip("/") for p in arg.split()[:-1] if not p.startswith("--")}
        elif word == "RUN" and "torch==" in arg:
            assert "constraints.txt" in copied, "copy constraints.txt before the torch pin"
        elif word == "RUN" and "pip install" in arg:
            # setup.py installs pipelines/ (as dmsec_pipelines) with the package
            assert {
                "pyproject.toml",
                "setup.py",
                "README.md",
                "dmsec",
                "pipelines",
                "configs",
            } <= copied


def test_image_tag_is_the_package_version_and_ray_matches_everywhere():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    tag = readme_image_tag()
    assert tag.rsplit(":", 1)[1] == version
    assert f"-t {tag} ." in DOCKERFILE.read_text(), "the Dockerfile's header shows the same tag"
    assert rayjob()["spec"]["rayClusterSpec"]["rayVersion"] == ray_base_version()


def test_dockerignore_at_the_root_keeps_local_state_out_of_the_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "results", ".git"} <= ignored
    assert not (ROOT / "cluster" / ".dockerignore").exists(), "docker reads the context root's"


# --- KubeRay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_parses_and_opens_with_a_comment(name):
    text = (K8S / name).read_text()
    assert text.startswith("#"), f"{name}: say what it is and how to apply it"
    for doc in text.split("\n---\n"):
        assert doc.lstrip().startswith("#"), f"{name}: every document is commented"
    for doc in manifest(name):
        assert {"apiVersion", "kind", "metadata"} <= set(doc), name


def test_rayjob_runs_one_scan_on_an_autoscaling_cluster_from_the_image():
    job = rayjob()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["metadata"]["generateName"].endswith("-") and "name" not in job["metadata"]
    spec = job["spec"]
    assert spec["entrypoint"].startswith("dmsec scan ")
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] >= 0 and spec["backoffLimit"] >= 0
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0" and head["dashboard-host"] == "0.0.0.0"
    gpu_groups = [
        g
        for g in cluster["workerGroupSpecs"]
        if any(
            c["resources"]["limits"].get("nvidia.com/gpu")
            for c in g["template"]["spec"]["containers"]
        )
    ]
    assert gpu_groups, "a GPU worker group"
    for group in gpu_groups:
        assert group["minReplicas"] == 0 and group["maxReplicas"] == 4
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    image = readme_image_tag()
    for name, pod in pod_specs(job).items():
        for container in pod["containers"]:
            assert container["image"] == image, name
            assert {"secretRef": {"name": "dmsec-aws"}} in container["envFrom"], name
            endpoint = {e["name"]: e for e in container.get("env", [])}["DMSEC_S3_ENDPOINT_URL"]
            assert endpoint["valueFrom"]["secretKeyRef"]["optional"] is True, name


def test_rayjob_reads_the_configmaps_scan_config():
    job = rayjob()
    config_map = one("scan-configmap.yaml", "ConfigMap")
    head = pod_specs(job)["head"]
    volume = next(v for v in head["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    path = shlex.split(job["spec"]["entrypoint"])
    config_path = path[path.index("--config") + 1]
    assert config_path == f"{mount['mountPath']}/{next(iter(config_map['data']))}"


def test_staging_volume_is_shared_by_every_pod_at_the_configs_path():
    pvc = one("pvc-staging.yaml", "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    assert pvc["spec"]["storageClassName"]
    claim = pvc["metadata"]["name"]
    mount_paths = {}
    for name, pod in pod_specs(rayjob()).items():
        volume = next(
            (
                v
                for v in pod["volumes"]
                if v.get("persistentVolumeClaim", {}).get("claimName") == claim
            ),
            None,
        )
        assert volume, f"{name} pod does not mount the PVC {claim}"
        for container in pod["containers"]:
            mounts = [
                m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume["name"]
            ]
            assert len(mounts) == 1, f"{name}/{container['name']}"
            mount_paths[f"{name}/{container['name']}"] = mounts[0]
    assert len(set(mount_paths.values())) == 1, f"one path in every pod: {mount_paths}"
    shared = next(iter(mount_paths.values()))
    config = scan_config()
    for key in (("results", "staging"), ("run", "cache_dir")):
        value = config[key[0]][key[1]]
        assert value.startswith(shared + "/"), f"{'.'.join(key)}={value} is not under {shared}"


def test_scan_configmap_uses_known_keys_and_s3_locations():
    known = dotted_keys(yaml.safe_load((ROOT / "configs" / "scan.yaml").read_text()))
    config = scan_config()
    unknown = dotted_keys(config) - known - EXTRA_SCAN_KEYS
    assert not unknown, f"keys configs/scan.yaml does not have: {sorted(unknown)}"
    assert config["results"]["out"].startswith("s3://")
    assert config["registry"]["location"].startswith("s3://")
    assert config["source"]["uri"].startswith(("hf://", "civitai://"))
    assert config["registry"]["embedder"] == "pdq"
    assert config["run"]["address"] == "auto" and config["run"]["device"] == "auto"


def test_cronjob_creates_one_rayjob_per_run_with_one_writer_at_a_time():
    cron = one("cronjob-scan.yaml", "CronJob")
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["schedule"] == "0 3 * * *"
    assert spec["startingDeadlineSeconds"] > 0 and spec["successfulJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "a retried pod would create a second RayJob"
    assert job["activeDeadlineSeconds"] > rayjob()["spec"]["activeDeadlineSeconds"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    script = " ".join(container["command"] + container["args"])
    (volume,) = pod["volumes"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"]
    assert f"kubectl create -f {mount['mountPath']}/rayjob-scan.yaml" in script
    assert "kubectl apply" not in script, "apply does not take generateName"
    assert "jobDeploymentStatus" in script, "the pod waits for its RayJob, so Forbid covers it"
    made_by_readme = (
        f"kubectl create configmap {volume['configMap']['name']} "
        "--from-file=rayjob-scan.yaml=cluster/k8s/rayjob-scan.yaml"
    )
    assert made_by_readme in CLUSTER_README.read_text()
    account = pod["serviceAccountName"]
    assert one("cronjob-scan.yaml", "ServiceAccount")["metadata"]["name"] == account
    binding = one("cronjob-scan.yaml", "RoleBinding")
    assert {"kind": "ServiceAccount", "name": account} in binding["subjects"]
    role = one("cronjob-scan.yaml", "Role")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert any(
        "ray.io" in r["apiGroups"]
        and "rayjobs" in r["resources"]
        and {"create", "get"} <= set(r["verbs"])
        for r in role["rules"]
    )


def test_manifest_rayjob_gives_every_pod_the_hub_tokens_from_a_secret():
    """The head lists the hub and the workers pull from it: each needs the variables the sources
    read (HF_TOKEN, CIVITAI_API_KEY), from a Secret, never written into the manifest."""
    from dmsec.hub.civitai import API_KEY_ENV

    wanted = {"HF_TOKEN", API_KEY_ENV}
    for name, pod in pod_specs(rayjob()).items():
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            for var in wanted:
                assert var in env, f"{name}/{container['name']}: no {var}"
                assert "value" not in env[var], f"{name}: {var} must come from a Secret"
                ref = env[var]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "dmsec-hub", "key": var, "optional": True}, (name, ref)
    readme = CLUSTER_README.read_text()
    assert "kubectl create secret generic dmsec-hub" in readme
    assert all(f"--from-literal={var}=" in readme for var in wanted)


def test_manifest_backoff_limits_agree_with_the_readme():
    """cluster/README.md says what the manifests do about retries: no retry of a scan."""
    readme = CLUSTER_README.read_text()
    said = set(re.findall(r"backoffLimit: (\d+)", readme))
    rayjob_limit = rayjob()["spec"]["backoffLimit"]
    cron_limit = one("cronjob-scan.yaml", "CronJob")["spec"]["jobTemplate"]["spec"]["backoffLimit"]
    assert said == {str(rayjob_limit)} == {str(cron_limit)} == {"0"}, (
        said,
        rayjob_limit,
        cron_limit,
    )
