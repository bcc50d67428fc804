"""docker/ and deploy/ cannot run here (no container engine, no cluster), so check what can be
checked: every YAML parses, names refer to things that exist, every AVAGENT_* variable is a real
Settings field, and every container command is a real ``avagent`` subcommand with real queues."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from avagent.service.cli import COMMANDS
from avagent.service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = REPO / "docker"
FIELDS = {f"AVAGENT_{name.upper()}" for name in Settings.model_fields}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[dict[str, Any]]:
    return [d for p in sorted(DEPLOY.glob("*.yaml")) for d in _docs(p) if d.get("kind") != "Kustomization"]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


@pytest.mark.parametrize("path", sorted([*DEPLOY.glob("*.yaml"), *DOCKER.glob("*.yml")]),
                         ids=lambda p: p.name)
def test_yaml_parses(path: Path) -> None:
    assert _docs(path), f"{path} is empty"


def _check_command(args: list[str], where: str) -> None:
    assert args and args[0] in COMMANDS, f"{where}: {args} is not an avagent subcommand"
    if args[0] == "worker":
        queues = args[args.index("--queues") + 1].split(",")
        assert set(queues) <= {"cpu", "gpu"}, f"{where}: queues {queues}"


def test_compose_services_refer_to_each_other_and_to_real_settings() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"api", "worker-cpu", "worker-gpu", "redis", "postgres", "seaweedfs", "vllm"} <= set(services)
    assert services["worker-gpu"]["profiles"] == ["gpu"] and services["vllm"]["profiles"] == ["gpu"]
    for name, svc in services.items():
        deps = svc.get("depends_on", [])
        for dep in deps:  # a list or a mapping: both iterate over service names
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith((".", "/", "$")):
                assert src in compose.get("volumes", {}), f"{name}: volume {src} not declared"
            elif src.startswith("./"):
                assert (DOCKER / src).exists(), f"{name}: {src} does not exist"
        env = svc.get("environment") or {}
        for key in env:
            if key.startswith("AVAGENT_"):
                assert key in FIELDS, f"{name}: {key} is not a Settings field"
        build = svc.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).exists()
        if (svc.get("image", "").startswith("${AVAGENT") or build) and svc.get("entrypoint") is None:
            _check_command(svc["command"], f"compose {name}")
    # The API and the CPU worker share one image; the GPU worker has its own.
    assert services["api"]["image"] == services["worker-cpu"]["image"] != services["worker-gpu"]["image"]
    assert services["api"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["worker-gpu"]["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    # Every AVAGENT_*_URL in the shared environment names a compose service as its host.
    for key, value in services["api"]["environment"].items():
        m = re.match(r"^[a-z+]+://(?:[^@/]*@)?([a-z0-9-]+)[:/]", str(value))
        if key.endswith("_URL") and m:
            assert m.group(1) in services, f"{key}={value}: no service {m.group(1)}"


def test_dockerfiles_copy_what_exists_and_run_avagent() -> None:
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (DOCKER / name).read_text()
        for src in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
            assert (REPO / src).exists(), f"{name}: COPY {src} does not exist"
        assert 'ENTRYPOINT ["avagent"]' in text
        cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.M)
        assert cmd is not None
        _check_command(yaml.safe_load(cmd.group(1)), name)
        assert (DOCKER / f"{name}.dockerignore").exists()


def test_manifests_are_consistent() -> None:
    docs = _manifests()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "avagent-config")
    secret = next(d for d in docs if d["kind"] == "Secret")
    for key in [*config["data"], *secret["stringData"]]:
        assert key in FIELDS or not key.startswith("AVAGENT_"), f"{key} is not a Settings field"
    pvcs = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for w in workloads:
        name = w["metadata"]["name"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        for c in w["spec"]["template"]["spec"]["containers"]:
            for ref in c.get("envFrom", []):
                ref_name = (ref.get("configMapRef") or ref.get("secretRef"))["name"]
                assert ("ConfigMap", ref_name) in kinds or ("Secret", ref_name) in kinds
            for e in c.get("env", []):
                if e["name"].startswith("AVAGENT_"):
                    assert e["name"] in FIELDS, f"{name}: {e['name']}"
            if c["image"] in ("avagent", "avagent-gpu"):
                _check_command(c["args"], name)
        for v in w["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in pvcs
    for svc in (d for d in docs if d["kind"] == "Service"):
        sel = svc["spec"]["selector"].items()
        assert any(sel <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads), \
            f"Service {svc['metadata']['name']} selects nothing"
    queues = {config["data"]["AVAGENT_CPU_QUEUE"]: "avagent-worker-cpu",
              config["data"]["AVAGENT_GPU_QUEUE"]: "avagent-worker-gpu"}
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 2
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]["name"]
        assert ("Deployment", target) in kinds
        metric = hpa["spec"]["metrics"][0]["external"]["metric"]
        assert metric["name"] == "avagent_queue_depth"  # the gauge service/api/routes/health.py exports
        assert queues[metric["selector"]["matchLabels"]["queue"]] == target
    worker_args = {w["metadata"]["name"]: w["spec"]["template"]["spec"]["containers"][0]["args"]
                   for w in workloads if w["metadata"]["name"].startswith("avagent-worker")}
    assert "cpu" in worker_args["avagent-worker-cpu"] and "gpu" in worker_args["avagent-worker-gpu"]


def test_the_hpa_metric_is_what_the_api_exports(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from avagent.service.api import create_app
    from avagent.service.jobs import Job, JobStore, new_id

    settings = Settings(cache_dir=tmp_path, environment="test")
    JobStore.from_settings(settings).create_job(Job(
        id=new_id(), owner="o", source="s3://b/k.mp4", input_name="k.mp4", output_prefix="s3://b/o",
        queue=settings.cpu_queue))
    with TestClient(create_app(settings)) as client:
        assert f'avagent_queue_depth{{queue="{settings.cpu_queue}"}} 1.0' in client.get("/metrics").text
