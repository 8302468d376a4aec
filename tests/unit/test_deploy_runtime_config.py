"""deploy/compose.yaml, deploy/k8s/ and the Dockerfile, cross-checked against the code.

Every ``QW_*`` variable must be a field of a settings class, every process's environment must build
its settings classes (with the production values the issue asks for), every command must be a real
``qualitywatch`` sub-command (or the uvicorn factory of the ingest front door), the topics created
must be the ones the stream uses, and the Dockerfile must install what ``pyproject.toml`` declares.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic_settings import BaseSettings

from alerts.settings import AlertSettings
from stream.ingest import IngestSettings
from stream.settings import StreamSettings
from stream.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETTINGS: tuple[type[BaseSettings], ...] = (StreamSettings, AlertSettings, IngestSettings)
PYTHON_SERVICES = ("migrate", "worker", "alerts", "ingest")

#: what an operator puts in deploy/.env (the passwords are the test's own)
COMPOSE_VARS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "WEBHOOK_SECRET": "hook-secret",
    "SMTP_PASSWORD": "smtp-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret",
    "EPOCH": "2024-01-01T00:00:00+08:00",
}

_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``, applied to every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        have = env.get(name)
        if op and op.endswith("?") and not have:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and not have:
            return arg or ""
        return have or ""

    return _VAR.sub(sub, value)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return interpolate(raw, COMPOSE_VARS if env is None else env)  # type: ignore[no-any-return]


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def settings_fields() -> set[str]:
    return {f"QW_{name.upper()}" for cls in SETTINGS for name in cls.model_fields}


def build(cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cls`` read from exactly ``env`` (nothing else of the test process's QW_* leaks in)."""
    for key in list(os.environ):
        if key.startswith("QW_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return cls()


# --------------------------------------------------------------------------------------------------
# commands


def resolve_command(argv: list[str]) -> str:
    """Check that ``argv`` is a command this image can run; what it runs."""
    if argv[0] == "qualitywatch":
        from qualitywatch.cli import main

        cmd: click.Command = main
        args = argv[1:]
        path = ["qualitywatch"]
        while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
            ctx = click.Context(cmd, info_name=path[-1])
            sub = cmd.get_command(ctx, args[0])
            assert sub is not None, f"{' '.join(argv)}: {args[0]!r} is not a sub-command of {' '.join(path)}"
            path.append(args.pop(0))
            cmd = sub
        assert not isinstance(cmd, click.Group), f"{' '.join(argv)}: {' '.join(path)} needs a sub-command"
        cmd.make_context(path[-1], list(args))  # its options parse
        return " ".join(path)
    if argv[0] == "uvicorn":
        assert "--factory" in argv, "the ingest front door is an app factory"
        target = next(a for a in argv[1:] if ":" in a and not a.startswith("-"))
        module, attr = target.split(":")
        import importlib

        assert callable(getattr(importlib.import_module(module), attr)), target
        return f"uvicorn {target}"
    raise AssertionError(f"{argv}: not a qualitywatch command")


def test_resolve_command_refuses_what_does_not_exist() -> None:
    with pytest.raises(AssertionError):
        resolve_command(["qualitywatch", "wroker"])
    with pytest.raises(AssertionError):
        resolve_command(["qualitywatch", "alerts"])
    with pytest.raises(click.UsageError):
        resolve_command(["qualitywatch", "worker", "--no-such-option"])
    assert resolve_command(["qualitywatch", "alerts", "serve"]) == "qualitywatch alerts serve"


# --------------------------------------------------------------------------------------------------
# compose


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose({k: v for k, v in COMPOSE_VARS.items() if k != "POSTGRES_PASSWORD"})


def test_compose_kafka_is_three_kraft_nodes_rf3_min_isr2() -> None:
    services = compose()["services"]
    nodes = {
        n: s
        for n, s in services.items()
        if s.get("image", "").startswith("apache/kafka") and n != "kafka-topics"
    }
    assert len(nodes) == 3
    voters = {
        v.split("@")[0]: v.split("@")[1]
        for v in next(iter(nodes.values()))["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    }
    assert len(voters) == 3
    ids, volumes = set(), set()
    for name, svc in nodes.items():
        env = svc["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert voters[env["KAFKA_NODE_ID"]] == f"{name}:9093"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert svc["healthcheck"]["test"]
        ids.add(env["KAFKA_NODE_ID"])
        volumes.add(svc["volumes"][0].split(":")[0])
    assert len(ids) == 3 and len(volumes) == 3


def test_compose_services_have_health_checks_named_volumes_and_one_image() -> None:
    doc = compose()
    services = doc["services"]
    version = PYPROJECT["project"]["version"]
    for name in PYTHON_SERVICES:
        svc = services[name]
        assert svc["image"] == f"qualitywatch:{version}", name
        assert (
            DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]
        ).resolve() == ROOT / "Dockerfile"
    one_shot = {"migrate", "kafka-topics"}
    for name, svc in services.items():
        if name in one_shot:
            assert svc["restart"] == "no"
        else:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in doc["volumes"], f"{name}: volume {source} is not declared"
            else:
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("worker", "alerts", "ingest"):
        port = {"worker": "6066", "alerts": "8000", "ingest": "8080"}[name]
        assert f"127.0.0.1:{port}/healthz" in " ".join(services[name]["healthcheck"]["test"]), name


def test_compose_starts_things_in_order() -> None:
    services = compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "alerts", "ingest"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("worker", "alerts", "ingest"):
        assert services[name]["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"


def test_compose_commands_are_real() -> None:
    services = compose()["services"]
    ran = {name: resolve_command(services[name]["command"]) for name in PYTHON_SERVICES}
    assert ran == {
        "migrate": "qualitywatch migrate",
        "worker": "qualitywatch worker",
        "alerts": "qualitywatch alerts serve",
        "ingest": "uvicorn qualitywatch.server:create_app",
    }


def test_compose_env_names_are_settings_fields() -> None:
    known = settings_fields()
    for name, svc in compose()["services"].items():
        for key in svc.get("environment", {}):
            if key.startswith("QW_"):
                assert key in known, f"{name}: {key} is no field of {[c.__name__ for c in SETTINGS]}"


def test_compose_env_builds_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    worker = build(StreamSettings, services["worker"]["environment"], monkeypatch)
    assert worker.profile == "production"
    assert worker.bootstrap_servers == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert (worker.acks, worker.enable_idempotence, worker.replication_factor) == ("all", True, 3)
    assert (worker.session_timeout_ms, worker.fetch_max_wait_ms) == (45000, 500)
    # faust refuses to start a consumer whose session timeout exceeds its request timeout
    assert worker.session_timeout_ms <= worker.request_timeout_ms
    assert worker.checkpoint_url.startswith("postgresql+psycopg://")
    assert worker.partitions == 12 and worker.epoch is not None and worker.web_host == "0.0.0.0"

    alerts = build(AlertSettings, services["alerts"]["environment"], monkeypatch)
    assert alerts.environment == "production"
    assert alerts.bootstrap_servers == worker.bootstrap_servers
    assert alerts.topic == Topics.from_settings(worker).warnings
    assert alerts.database_url.startswith("postgresql+psycopg://")
    assert alerts.webhook_secret.get_secret_value() == "hook-secret"

    ingest_env = services["ingest"]["environment"]
    ingest = build(IngestSettings, ingest_env, monkeypatch)
    assert ingest.database_url == alerts.database_url and ingest.relay_enabled
    relay = build(StreamSettings, ingest_env, monkeypatch)
    assert Topics.from_settings(relay) == Topics.from_settings(worker)
    assert relay.bootstrap_servers == worker.bootstrap_servers
    assert build(AlertSettings, ingest_env, monkeypatch).database_url == alerts.database_url

    # the migration job migrates every store the services use
    migrate_env = services["migrate"]["environment"]
    assert build(AlertSettings, migrate_env, monkeypatch).database_url == alerts.database_url
    assert build(IngestSettings, migrate_env, monkeypatch).database_url == ingest.database_url
    assert build(StreamSettings, migrate_env, monkeypatch).checkpoint_url == worker.checkpoint_url
    postgres = services["postgres"]["environment"]
    assert (
        f"{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/" in alerts.database_url
    )


def test_compose_creates_the_topics_the_stream_uses(tmp_path: Path) -> None:
    """Run create-topics.sh as the kafka-topics service does, with kafka-topics.sh recording its calls."""
    svc = compose()["services"]["kafka-topics"]
    calls = tmp_path / "calls"
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    mounts = dict(v.split(":")[:2] for v in svc["volumes"])
    conf = next(src for src, dst in mounts.items() if dst.endswith("topics.conf"))
    script = next(src for src, dst in mounts.items() if dst == svc["entrypoint"][-1])
    env = {**svc["environment"], "KAFKA_TOPICS": str(fake), "TOPICS_CONF": str(DEPLOY / conf)}
    subprocess.run(["/bin/sh", str(DEPLOY / script)], env={**os.environ, **env}, check=True, timeout=30)
    created = {}
    for line in calls.read_text().splitlines():
        args = shlex.split(line)
        if "--create" in args:
            created[args[args.index("--topic") + 1]] = args
    stream = StreamSettings(partitions=int(svc["environment"]["PARTITIONS"]))
    assert set(created) == set(Topics.from_settings(stream).all)
    for args in created.values():
        assert args[args.index("--partitions") + 1] == str(stream.partitions)
        assert args[args.index("--replication-factor") + 1] == "3"
        assert "min.insync.replicas=2" in args
        assert "--if-not-exists" in args
    assert svc["environment"]["PARTITIONS"] == compose()["services"]["worker"]["environment"]["QW_PARTITIONS"]


# --------------------------------------------------------------------------------------------------
# kubernetes


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))


def _container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secret = next(d for d in docs if d["kind"] == "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            assert source["secretRef"]["name"] == secret["metadata"]["name"]
            env.update(secret["stringData"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"], item
            assert ref["key"] in secret["stringData"], f"the Secret has no key {ref['key']}"
            env[item["name"]] = secret["stringData"][ref["key"]]
    return env


def test_k8s_manifests_parse_and_kustomization_lists_existing_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource
    assert "secret.example.yaml" not in kustomization["resources"]  # secrets are never committed
    kinds = {d["kind"] for d in k8s_docs()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Job", "PrometheusRule", "PodMonitor"} <= kinds


def test_k8s_env_names_are_settings_fields_and_config_is_not_secret() -> None:
    known = settings_fields()
    docs = k8s_docs()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for key in doc["data"]:
                assert key in known, f"ConfigMap {doc['metadata']['name']}: {key}"
                assert not re.search(r"PASSWORD|SECRET|_URL$", key) or key == "QW_EXTERNAL_URL", key
        if doc["kind"] == "Secret":
            for key in doc["stringData"]:
                assert key in known, f"Secret: {key}"
        for container in _containers(doc):
            for item in container.get("env", []):
                assert item["name"] in known, f"{doc['metadata']['name']}: {item['name']}"


def test_k8s_containers_build_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = k8s_docs()
    version = PYPROJECT["project"]["version"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "qualitywatch", "newTag": version}]
    seen = {}
    for doc in docs:
        for container in _containers(doc):
            if container["image"] != "qualitywatch":
                continue
            ran = resolve_command(container["command"])
            env = _container_env(container, docs)
            seen[doc["metadata"]["name"]] = ran
            if ran in ("qualitywatch worker", "qualitywatch migrate") or ran.startswith("uvicorn"):
                s = build(StreamSettings, env, monkeypatch)
                assert (s.profile, s.enable_idempotence, s.replication_factor) == ("production", True, 3)
                assert s.session_timeout_ms == 45000 and s.checkpoint_url.startswith("postgresql")
                assert s.session_timeout_ms <= s.request_timeout_ms
            if ran != "qualitywatch worker":
                a = build(AlertSettings, env, monkeypatch)
                assert a.environment == "production" and a.database_url.startswith("postgresql")
            if ran.startswith("uvicorn") or ran == "qualitywatch migrate":
                build(IngestSettings, env, monkeypatch)
    assert seen == {
        "qw-migrate": "qualitywatch migrate",
        "qw-worker": "qualitywatch worker",
        "qw-alerts": "qualitywatch alerts serve",
        "qw-ingest": "uvicorn qualitywatch.server:create_app",
        "qw-ingest-relay": "uvicorn qualitywatch.server:create_app",
    }


def test_k8s_probes_services_and_one_relay() -> None:
    docs = k8s_docs()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), name
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        for c in pod["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                # a worker is ready once it holds partitions (/healthz); it is alive while detection
                # runs (/livez), so that liveness does not restart one that waits for its group
                path = "/livez" if (name, probe) == ("qw-worker", "livenessProbe") else "/healthz"
                assert c[probe]["httpGet"]["path"] == path, (name, probe)
                assert c[probe]["httpGet"]["port"] in ports, (name, probe)
            assert (
                str(ports[c["readinessProbe"]["httpGet"]["port"]])
                == pod["metadata"]["annotations"]["prometheus.io/port"]
            )
    for svc in (d for d in docs if d["kind"] == "Service"):
        targets = [
            d
            for d in deployments.values()
            if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert targets, f"Service {svc['metadata']['name']} selects no pod"
        for d in targets:
            names = {p["name"] for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
            assert all(p["targetPort"] in names for p in svc["spec"]["ports"])
    assert deployments["qw-ingest-relay"]["spec"]["replicas"] == 1
    assert deployments["qw-worker"]["spec"]["replicas"] >= 2
    env = {
        d["metadata"]["name"]: {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for d in deployments.values()
        if d["metadata"]["name"].startswith("qw-ingest")
    }
    assert (
        env["qw-ingest"]["QW_RELAY_ENABLED"] == "false"
        and env["qw-ingest-relay"]["QW_RELAY_ENABLED"] == "true"
    )
    stream_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "qualitywatch-stream"
    )
    assert deployments["qw-worker"]["spec"]["replicas"] <= int(stream_map["data"]["QW_PARTITIONS"])


def test_k8s_kafka_topics_match_topics_conf() -> None:
    docs = k8s_docs()
    stream_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "qualitywatch-stream"
    )
    partitions = int(stream_map["data"]["QW_PARTITIONS"])
    conf = {}
    for line in (DEPLOY / "kafka" / "topics.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *configs = line.split()
            conf["qw." + name] = dict(c.split("=") for c in ",".join(configs).split(",") if c)
    topics = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(conf) == set(Topics.from_settings(StreamSettings()).all)
    for name, spec in topics.items():
        assert (spec["partitions"], spec["replicas"]) == (partitions, 3)
        assert {k: str(v) for k, v in spec["config"].items()} == {"min.insync.replicas": "2", **conf[name]}
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    pool = next(d for d in docs if d["kind"] == "KafkaNodePool")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert kafka["spec"]["kafka"]["config"]["default.replication.factor"] == 3


# --------------------------------------------------------------------------------------------------
# Dockerfile


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_python_matches_requires_python() -> None:
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    images = [line.split()[1] for line in _dockerfile() if line.startswith("FROM ")]
    assert images
    for image in images:
        m = re.fullmatch(r"python:(\d+\.\d+)[\w.-]*", image)
        assert m, f"{image}: not an official python image"
        assert f"{m.group(1)}.0" in spec, f"{image} does not satisfy requires-python {spec}"


def test_dockerfile_installs_the_project_from_its_pyproject() -> None:
    lines = _dockerfile()
    installs = [line for line in lines if "pip install" in line]
    assert len(installs) == 1
    m = re.search(r'pip install\s+"?\.(?:\[([\w,-]+)\])?"?(\s|$)', installs[0])
    assert m, f"the install step must install the copied project: {installs[0]}"
    extras = set(filter(None, (m.group(1) or "").split(",")))
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert extras <= set(declared), f"extras {extras - set(declared)} are not in pyproject.toml"
    assert "-e" not in installs[0].split()
    # the deployment's database URLs use psycopg: the installed extras must bring it
    assert any(dep.startswith("psycopg") for extra in extras for dep in declared[extra])
    copied = {
        part.rstrip("/")
        for line in lines
        if line.startswith("COPY ") and "--from" not in line
        for part in line.split()[1:-1]
    }
    assert "pyproject.toml" in copied and PYPROJECT["project"]["readme"] in copied
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"package {pattern} is not copied"
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not (copied & ignored), f".dockerignore drops what the Dockerfile copies: {copied & ignored}"


def test_dockerfile_runs_as_a_user_and_exposes_the_ports_in_use() -> None:
    lines = _dockerfile()
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    exposed = {p for line in lines if line.startswith("EXPOSE ") for p in line.split()[1:]}
    services = compose()["services"]
    assert {"6066", "8000", "8080"} <= exposed
    assert services["worker"]["environment"]["QW_WEB_PORT"] in exposed
    assert services["alerts"]["environment"]["QW_PORT"] in exposed


def test_the_console_script_is_the_one_commands_use() -> None:
    assert PYPROJECT["project"]["scripts"]["qualitywatch"] == "qualitywatch.cli:main"
    done = subprocess.run(
        [sys.executable, "-c", "from qualitywatch.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "worker" in done.stdout and "alerts" in done.stdout
