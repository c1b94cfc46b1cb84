"""Static validation of deploy/: what can be checked without a container engine or cluster.

Files parse; compose, Dockerfile and Kubernetes manifests name only services, modules and
`PHOIHOP_<SVC>_<FIELD>` settings that exist in the code; every registry topic has a
KafkaTopic and is created by the init step; Deployments have probes; dashboards and alerts
name only metrics the code declares; promtool checks and unit-tests the rules.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from phoihop_schemas.topics import (
    ALL_TOPICS,
    CANONICAL,
    CO_PARTITIONED,
    INBOUND_RESPONSES,
    INBOUND_SUBMISSIONS,
    Role,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("ingest", "routing", "notify", "audit")
DEFAULT_PORTS = {"ingest": 8080, "audit": 8081, "notify": 8082, "routing": 8083}
# PHOIHOP_* variables that are not a service's own settings.
SHARED_ENV = {"PHOIHOP_CONFIG_DIR", "PHOIHOP_TOPIC_PREFIX"}
DOCKERFILE_ONLY_ENV = {"PHOIHOP_HEALTH_PORT"}  # read by the image's HEALTHCHECK command


def _yaml_docs(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def _compose() -> dict[str, Any]:
    doc = _yaml_docs(DEPLOY / "compose.yaml")[0]
    assert isinstance(doc, dict)
    return doc


def _k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(_yaml_docs(path))
    return docs


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _k8s_docs() if d["kind"] == kind]


def _dockerfile_stages() -> dict[str, list[str]]:
    """Instructions of each named stage of deploy/Dockerfile (continuation lines joined)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if m:
            current = stages.setdefault(m.group(1) or f"_{len(stages)}", [])
        if current is not None:
            current.append(line)
    return stages


def _settings_class(svc: str) -> type[Any]:
    """The pydantic-settings class of a service (skips while the module does not exist)."""
    name = f"phoihop_{svc}.settings"
    if (
        importlib.util.find_spec(f"phoihop_{svc}") is None
        or not (ROOT / "services" / svc / "src" / f"phoihop_{svc}" / "settings.py").is_file()
    ):
        pytest.skip(f"{name} does not exist yet: its env vars cannot be checked")
    module = importlib.import_module(name)
    from pydantic_settings import BaseSettings

    prefix = f"PHOIHOP_{svc.upper()}_"
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, BaseSettings)
            and obj.model_config.get("env_prefix") == prefix
        ):
            return obj
    raise AssertionError(f"{name} has no BaseSettings class with env_prefix {prefix!r}")


def _env_names() -> dict[str, set[str]]:
    """Every PHOIHOP_* env var named by compose, Kubernetes and the Dockerfile, by origin."""
    found: dict[str, set[str]] = {}

    def add(origin: str, name: str) -> None:
        if name.startswith("PHOIHOP_"):
            found.setdefault(name, set()).add(origin)

    for svc_name, svc in _compose()["services"].items():
        env = svc.get("environment") or {}
        names = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for name in names:
            add(f"compose:{svc_name}", name)
    for dep in _of_kind("Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                add(f"k8s:{dep['metadata']['name']}", e["name"])
    for stage, lines in _dockerfile_stages().items():
        for line in lines:
            if line.upper().startswith("ENV "):
                for name in re.findall(r"(PHOIHOP_\w+)=", line):
                    add(f"Dockerfile:{stage}", name)
    return found


# ---------------------------------------------------------------- files parse


def test_every_yaml_and_json_file_in_deploy_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    assert len(files) >= 15
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            assert _yaml_docs(path), f"{path} is empty"


# ---------------------------------------------------------------- compose


def test_compose_runs_kraft_cluster_of_three_brokers() -> None:
    services = _compose()["services"]
    brokers = {
        n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka")
    }
    assert len(brokers) == 3
    node_ids = set()
    for name, svc in brokers.items():
        env = svc["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        node_ids.add(env["KAFKA_NODE_ID"])
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert f"{env['KAFKA_NODE_ID']}@{name}:9093" in voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
    assert node_ids == {"1", "2", "3"}


def test_compose_services_dependencies_and_mounts_exist() -> None:
    compose = _compose()
    services = compose["services"]
    stages = _dockerfile_stages()
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
        if "build" in svc:
            build = svc["build"]
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
                DEPLOY / "Dockerfile"
            ).resolve()
            assert build["target"] in stages, f"{name}: no Dockerfile stage {build['target']}"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    for svc in SERVICES:
        assert services[svc]["build"]["target"] == svc
        assert services[svc]["depends_on"]["topics-init"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["routing"]["deploy"]["replicas"] >= 2
    assert services["notify"]["deploy"]["replicas"] >= 2
    assert {"postgres", "prometheus", "grafana", "topics-init"} <= services.keys()


def test_compose_topics_init_uses_replication_three_and_every_broker() -> None:
    init = _compose()["services"]["topics-init"]
    env = init["environment"]
    assert env["PHOIHOP_KAFKA_TOPIC_REPLICATION"] == "3"
    assert int(env["PHOIHOP_KAFKA_TOPIC_PARTITIONS"]) >= 3
    assert set(env["PHOIHOP_KAFKA_BOOTSTRAP"].split(",")) == {
        "kafka-1:9092",
        "kafka-2:9092",
        "kafka-3:9092",
    }
    entry = next(
        line for line in _dockerfile_stages()[init["build"]["target"]] if "ENTRYPOINT" in line
    )
    assert json.loads(entry.split(None, 1)[1]) == ["python", "-m", "phoihop_common.topics_init"]


def test_routing_changelogs_are_partitioned_like_the_topics_it_consumes() -> None:
    # faust refuses tables whose changelog partition count differs from the source topics'
    services = _compose()["services"]
    init = services["topics-init"]["environment"]["PHOIHOP_KAFKA_TOPIC_PARTITIONS"]
    routing = services["routing"]["environment"]
    assert routing["PHOIHOP_ROUTING_KAFKA_TOPIC_PARTITIONS"] == init
    assert routing["PHOIHOP_ROUTING_KAFKA_TOPIC_REPLICATION"] == "3"
    (dep,) = [d for d in _of_kind("Deployment") if d["metadata"]["name"] == "routing"]
    env = {
        e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    topics = {d["spec"]["topicName"]: d["spec"]["partitions"] for d in _of_kind("KafkaTopic")}
    for topic in CO_PARTITIONED:
        assert int(env["PHOIHOP_ROUTING_KAFKA_TOPIC_PARTITIONS"]) == topics[topic.name]
    assert env["PHOIHOP_ROUTING_KAFKA_TOPIC_REPLICATION"] == "3"


def test_compose_ports_match_prometheus_scrape_targets() -> None:
    services = _compose()["services"]
    prom = _yaml_docs(DEPLOY / "prometheus" / "prometheus.yml")[0]
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    for svc in SERVICES:
        port = int(services[svc]["environment"][f"PHOIHOP_{svc.upper()}_PORT"])
        assert port == DEFAULT_PORTS[svc]
        sd = jobs[svc]["dns_sd_configs"][0]
        assert sd["names"] == [svc]
        assert sd["port"] == port


def test_compose_validates_against_compose_spec_when_check_jsonschema_is_installed() -> None:
    tool = shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema not installed (pip install check-jsonschema to run this)")
    run = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------- env vars vs settings


@pytest.mark.parametrize("svc", SERVICES)
def test_env_vars_name_fields_of_the_services_settings(svc: str) -> None:
    settings = _settings_class(svc)
    prefix = f"PHOIHOP_{svc.upper()}_"
    named = {n: o for n, o in _env_names().items() if n.startswith(prefix)}
    assert named, f"no {prefix}* variable in compose/k8s/Dockerfile"
    unknown = {
        n: sorted(o)
        for n, o in named.items()
        if n[len(prefix) :].lower() not in settings.model_fields
    }
    assert not unknown, f"{settings.__name__} has no field for {unknown}"
    for field in ("host", "port", "kafka_bootstrap"):
        assert f"{prefix}{field.upper()}" in named


def test_env_vars_of_a_container_belong_to_its_service() -> None:
    for origin_names in _env_names().items():
        name, origins = origin_names
        for origin in origins:
            _kind, _, unit = origin.partition(":")
            if unit in SERVICES:
                assert name in SHARED_ENV | DOCKERFILE_ONLY_ENV or name.startswith(
                    f"PHOIHOP_{unit.upper()}_"
                ), f"{origin} sets {name}"


def test_env_vars_outside_services_are_known_settings() -> None:
    from phoihop_common.topics_init import TopicsInitSettings

    init_fields = {f"PHOIHOP_{f.upper()}" for f in TopicsInitSettings.model_fields}
    service_prefixes = tuple(f"PHOIHOP_{s.upper()}_" for s in SERVICES)
    for name, origins in _env_names().items():
        if name.startswith(service_prefixes):
            continue
        allowed = SHARED_ENV | init_fields
        if all(o.startswith("Dockerfile:") for o in origins):
            allowed |= DOCKERFILE_ONLY_ENV
        assert name in allowed, f"{name} ({sorted(origins)}) is not a known setting"


# ---------------------------------------------------------------- topics


def test_every_registry_topic_has_a_kafka_topic_with_replication_three() -> None:
    topics = {d["spec"]["topicName"]: d for d in _of_kind("KafkaTopic")}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for name, doc in topics.items():
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "phoihop", name
        assert doc["spec"]["replicas"] == 3, name
        assert int(doc["spec"]["config"]["min.insync.replicas"]) == 2, name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), name
    co = {topics[t.name]["spec"]["partitions"] for t in CO_PARTITIONED}
    assert len(co) == 1, "co-partitioned topics must have equal partition counts"
    for topic in ALL_TOPICS:
        config = topics[topic.name]["spec"]["config"]
        for name, value in topic.config.items():
            assert config.get(name) == value, f"{topic.name}: {name} {config.get(name)!r}"


def test_inbound_topics_refuse_records_over_the_edge_limit() -> None:
    from phoihop_schemas.codec import MAX_MESSAGE_BYTES

    assert MAX_MESSAGE_BYTES == 262144
    inbound = [t for t in ALL_TOPICS if t.role == Role.INBOUND]
    assert {t.name for t in inbound} == {INBOUND_SUBMISSIONS.name, INBOUND_RESPONSES.name}
    topics = {d["spec"]["topicName"]: d for d in _of_kind("KafkaTopic")}
    for topic in inbound:
        assert topic.max_message_bytes == MAX_MESSAGE_BYTES, topic.name
        assert topic.config == {"max.message.bytes": "262144"}, topic.name
        assert topics[topic.name]["spec"]["config"]["max.message.bytes"] == "262144"
    for topic in ALL_TOPICS:
        if topic.role != Role.INBOUND:
            assert "max.message.bytes" not in topics[topic.name]["spec"]["config"], topic.name


def test_topics_init_creates_every_registry_topic(tmp_path: Path) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from phoihop_embedded.broker import EmbeddedBroker

    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        env = os.environ | {
            "PHOIHOP_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PHOIHOP_KAFKA_TOPIC_PARTITIONS": "3",
        }
        env.pop("PHOIHOP_TOPIC_PREFIX", None)
        run = subprocess.run(
            [sys.executable, "-m", "phoihop_common.topics_init"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert f"created {len(ALL_TOPICS)}" in run.stdout

        async def listed() -> set[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                return set(await admin.list_topics())
            finally:
                await admin.close()

        assert {t.name for t in ALL_TOPICS} <= asyncio.run(listed())

        async def size_limit(topic: str) -> str | None:
            from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                (response,) = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic)]
                )
            finally:
                await admin.close()
            entries = response.resources[0][4]
            return next((e[1] for e in entries if e[0] == "max.message.bytes"), None)

        # created with the registry's config (Tansu keeps it, though it does not enforce it)
        assert asyncio.run(size_limit(INBOUND_SUBMISSIONS.name)) == "262144"
        assert asyncio.run(size_limit(INBOUND_RESPONSES.name)) == "262144"
        again = subprocess.run(
            [sys.executable, "-m", "phoihop_common.topics_init"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0
        assert "created 0" in again.stdout
    finally:
        broker.stop()


# ---------------------------------------------------------------- Kubernetes


def test_k8s_documents_have_kind_version_and_name() -> None:
    versions = {
        "Namespace": "v1",
        "Service": "v1",
        "Deployment": "apps/v1",
        "NetworkPolicy": "networking.k8s.io/v1",
        "ServiceMonitor": "monitoring.coreos.com/v1",
        "Kafka": "kafka.strimzi.io/v1beta2",
        "KafkaNodePool": "kafka.strimzi.io/v1beta2",
        "KafkaTopic": "kafka.strimzi.io/v1beta2",
        "KafkaUser": "kafka.strimzi.io/v1beta2",
    }
    docs = _k8s_docs()
    for doc in docs:
        assert versions.get(doc["kind"]) == doc["apiVersion"], doc["kind"]
        assert re.fullmatch(r"[a-z0-9]([-.a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Deployment"} <= kinds
    kafka = _of_kind("Kafka")[0]
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert sum(p["spec"]["replicas"] for p in _of_kind("KafkaNodePool")) >= 3
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"


def test_k8s_deployments_have_probes_ports_and_run_the_service() -> None:
    deployments = {d["metadata"]["name"]: d for d in _of_kind("Deployment")}
    assert set(deployments) == set(SERVICES)
    for name, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": DEFAULT_PORTS[name]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        env = {e["name"]: e for e in container["env"]}
        assert env[f"PHOIHOP_{name.upper()}_PORT"]["value"] == str(DEFAULT_PORTS[name])
        assert env[f"PHOIHOP_{name.upper()}_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        password = env[f"PHOIHOP_{name.upper()}_KAFKA_SASL_PASSWORD"]["valueFrom"]
        assert password["secretKeyRef"]["name"] == f"phoihop-{name}"  # the KafkaUser's Secret
        mounts = {m["name"] for m in container["volumeMounts"]}
        assert mounts <= {v["name"] for v in spec["volumes"]}
        assert dep["spec"]["selector"]["matchLabels"].items() <= (
            dep["spec"]["template"]["metadata"]["labels"].items()
        )
    assert deployments["routing"]["spec"]["replicas"] >= 2
    assert deployments["notify"]["spec"]["replicas"] >= 2
    users = {u["metadata"]["name"] for u in _of_kind("KafkaUser")}
    assert {f"phoihop-{s}" for s in SERVICES} <= users


def test_k8s_services_and_service_monitor_select_the_deployments() -> None:
    deployments = {d["metadata"]["name"]: d for d in _of_kind("Deployment")}
    for svc in _of_kind("Service"):
        dep = deployments[svc["metadata"]["name"]]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
        assert svc["spec"]["ports"][0]["targetPort"] == "http"
    (monitor,) = _of_kind("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        s for s in _of_kind("Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert len(selected) == len(SERVICES)
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # job label = service name, as the alerts and dashboards expect
    assert all(s["metadata"]["labels"][monitor["spec"]["jobLabel"]] in SERVICES for s in selected)


def test_k8s_agency_users_write_only_inbound_and_read_only_canonical() -> None:
    inbound = {t.name for t in ALL_TOPICS if t.role is Role.INBOUND}
    canonical = {t.name for t in CANONICAL.values()}

    def covered(acl: dict[str, Any]) -> set[str]:
        res = acl["resource"]
        everything = {t.name for t in ALL_TOPICS}
        if res["patternType"] == "prefix":
            return {n for n in everything if n.startswith(res["name"])}
        return {res["name"]} & everything

    agencies = [
        u for u in _of_kind("KafkaUser") if not u["metadata"]["name"].startswith("phoihop-")
    ]
    assert agencies, "no agency KafkaUser example"
    for user in agencies:
        acls = user["spec"]["authorization"]["acls"]
        for acl in acls:
            ops = set(acl["operations"])
            assert "All" not in ops
            if acl["resource"]["type"] != "topic":
                continue
            if "Write" in ops:
                assert covered(acl) <= inbound, acl
            if "Read" in ops:
                assert covered(acl) <= canonical, acl
        writable = set().union(*(covered(a) for a in acls if "Write" in a["operations"]))
        assert writable == inbound


def test_agencies_read_no_topic_that_carries_a_reporter_in_plain_text() -> None:
    from phoihop_schemas.events import EVENT_MODELS, EncryptedReporter, Reporter

    def mentions(annotation: Any, cls: type) -> bool:
        return cls.__name__ in str(annotation) or annotation is cls

    # Canonical events carry the reporter encrypted, if at all.
    for name, model in EVENT_MODELS.items():
        for field, info in model.model_fields.items():
            assert not mentions(info.annotation, Reporter) or mentions(
                info.annotation, EncryptedReporter
            ), f"{name}.{field}"
    # Plain only on the inbound submissions (and in dead letters): no agency reads those.
    plain = {INBOUND_SUBMISSIONS.name} | {t.name for t in ALL_TOPICS if t.role is Role.DEAD_LETTER}
    for user in _of_kind("KafkaUser"):
        if user["metadata"]["name"] in {"phoihop-ingest"}:
            continue
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            if res["type"] != "topic" or not {"Read", "All"} & set(acl["operations"]):
                continue
            prefix = res["patternType"] == "prefix"
            hit = {t for t in plain if t.startswith(res["name"]) if prefix or t == res["name"]}
            assert not hit, f"{user['metadata']['name']} reads {hit}"


def test_k8s_config_map_carries_the_reference_data() -> None:
    kustomization = _yaml_docs(DEPLOY / "k8s" / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    (generator,) = kustomization["configMapGenerator"]
    files = {Path(f).name for f in generator["files"]}
    for f in generator["files"]:
        assert (DEPLOY / "k8s" / f).is_file(), f
    # every reference-data file except the secrets (API keys, webhook secrets), and the
    # routing's category model
    expected = {p.name for p in (DEPLOY / "config").glob("*.y*ml")} | {
        p.name for p in (DEPLOY / "config").glob("*.json")
    }
    expected -= {
        "api_keys.yaml",
        "subscriptions.yaml",
    }
    assert files == expected


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: kustomize build not checked")
    run = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(DEPLOY / "k8s")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    assert all(
        d["metadata"].get("namespace") == "phoihop" for d in docs if d["kind"] != "Namespace"
    )
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert yaml.safe_load(cm["data"]["agencies.yaml"]) == yaml.safe_load(
        (DEPLOY / "config" / "agencies.yaml").read_text(encoding="utf-8")
    )
    # the generated (hashed) name is what the Deployments mount
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        config = next(
            v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
        )
        names = [s["configMap"]["name"] for s in config["projected"]["sources"] if "configMap" in s]
        assert names == [cm["metadata"]["name"]]


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_with_uv_runs_non_root_with_health_checks() -> None:
    stages = _dockerfile_stages()
    build = " ".join(stages["build"])
    assert "uv sync --frozen --all-packages --no-dev" in build
    runtime = stages["runtime"]
    assert any(re.match(r"USER\s+(?!0\b|root\b)\S+", line) for line in runtime)
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    for svc in SERVICES:
        lines = stages[svc]
        assert lines[0].split()[1] == "runtime", f"stage {svc} must build on runtime"
        entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
        assert json.loads(entry.split(None, 1)[1]) == ["python", "-m", f"phoihop_{svc}"]
        env = " ".join(line for line in lines if line.startswith("ENV"))
        assert f"PHOIHOP_HEALTH_PORT={DEFAULT_PORTS[svc]}" in env
        assert f"PHOIHOP_{svc.upper()}_PORT={DEFAULT_PORTS[svc]}" in env
        assert f"PHOIHOP_{svc.upper()}_HOST=0.0.0.0" in env
    for line in (line for lines in stages.values() for line in lines):
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_entrypoint_module_exists(svc: str) -> None:
    main = ROOT / "services" / svc / "src" / f"phoihop_{svc}" / "__main__.py"
    if not main.is_file():
        pytest.skip(f"phoihop_{svc}/__main__.py not written yet")
    assert importlib.util.find_spec(f"phoihop_{svc}.__main__") is not None


# ---------------------------------------------------------------- metrics, dashboards, alerts


def _undeclared(names: set[str], ops: SimpleNamespace) -> tuple[set[str], set[str]]:
    """(names no service declares, names of services not written yet)."""
    declared = ops.declared_metrics()
    pending = {
        n
        for n in names
        for s in SERVICES
        if n.startswith(f"phoihop_{s}_") and not ops.service_written(s)
    }
    known = set().union(*declared.values()) | ops.builtin_series
    return names - known - pending, pending


def test_dashboard_query_names_only_declared_metrics(
    dashboard_query: Any, ops: SimpleNamespace
) -> None:
    names = ops.promql_metric_names(dashboard_query.expr)
    assert names, f"{dashboard_query.where}: no metric in {dashboard_query.expr!r}"
    missing, pending = _undeclared(names, ops)
    assert not missing, f"{dashboard_query.where}: no service declares {sorted(missing)}"
    if pending:
        pytest.skip(f"service not written yet for {sorted(pending)}")


def test_promql_metric_name_extraction(ops: SimpleNamespace) -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, topic) (rate(phoihop_x_seconds_bucket{a="b,c"}'
        "[$__rate_interval]))) / on (job) group_left (instance) up offset 1h"
        ' or vector(0) and sum without (agency) (phoihop_y_total{agency=~"$agency"})'
    )
    assert ops.promql_metric_names(expr) == {"phoihop_x_seconds_bucket", "up", "phoihop_y_total"}
    filled = ops.substitute_grafana_variables(expr)
    assert "$" not in filled


def test_dashboards_are_provisioned_and_use_the_provisioned_datasource(
    ops: SimpleNamespace,
) -> None:
    datasources = _yaml_docs(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")[0]
    (ds,) = datasources["datasources"]
    providers = _yaml_docs(DEPLOY / "grafana/provisioning/dashboards/phoihop.yaml")[0]
    (provider,) = providers["providers"]
    grafana = _compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert ds["url"] == "http://prometheus:9090"
    dashboards = ops.load_dashboards()
    assert set(dashboards) == {"operations", "supervisors"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dash in dashboards.items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in dash["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{name}/{panel['title']} has no query"
            assert panel["datasource"]["uid"] == ds["uid"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == ds["uid"]


def test_dashboards_cover_the_issue_topics(ops: SimpleNamespace) -> None:
    text = {n: json.dumps(d) for n, d in ops.load_dashboards().items()}
    for metric in (
        "events_consumed_total",
        "events_produced_total",
        "consumer_lag_records",
        "dead_lettered_total",
        "processing_seconds_bucket",
        "http_requests_total",
        "phoihop_notify_deliveries_total",
    ):
        assert metric in text["operations"], metric
    for metric in (
        "phoihop_routing_assignments_total",
        "phoihop_audit_events_stored_total",
        "phoihop_audit_recommendations_overdue",
        "phoihop_audit_answered_on_time_ratio",
        "phoihop_routing_escalations_total",
    ):
        assert metric in text["supervisors"], metric


def test_alert_rules_name_only_declared_metrics(ops: SimpleNamespace) -> None:
    rules = _yaml_docs(DEPLOY / "prometheus" / "alerts.yml")[0]
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "PhoihopServiceDown",
        "PhoihopConsumerLagGrowing",
        "PhoihopDeadLetterGrowing",
        "PhoihopWebhookEndpointFailing",
        "PhoihopOverdueSpike",
    } <= alerts
    for group in rules["groups"]:
        for rule in group["rules"]:
            missing, _ = _undeclared(ops.promql_metric_names(rule["expr"]), ops)
            assert not missing, f"{rule['alert']}: no service declares {sorted(missing)}"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    return subprocess.run(
        [tool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_config_and_rules() -> None:
    run = _promtool("check", "config", "prometheus.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    run = _promtool("check", "rules", "alerts.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    run = _promtool("test", "rules", "alerts_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout
