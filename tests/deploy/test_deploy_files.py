"""Cheap consistency checks of deploy/: the compose file, the Dockerfiles, the systemd units, the lab config.

Nothing here builds an image or starts a unit (no Docker engine or systemd in CI); it catches the drift that
breaks them: a renamed file, a package missing from an image, a secret compose needs that setup.sh does not
write, a unit without its restart policy or sandbox.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from gridwatch.edge.config import parse_site_config
from gridwatch.wire.outbox import Outbox

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILES = ("Dockerfile.edge", "Dockerfile.central", "Dockerfile.jetson")
# Written by deploy/lab/setup.sh, git-ignored: allowed to be missing from a checkout.
GENERATED = (DEPLOY / "lab" / "secrets",)


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _default(path: str) -> str:
    """`${VAR:-default}` -> default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", path)


def test_compose_has_the_lab_services() -> None:
    services = compose()["services"]
    assert set(services) == {"mosquitto", "postgres", "central", "api", "edge"}
    assert services["central"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    assert services["central"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "central" not in services["edge"].get("depends_on", {}), "the edge must not wait for central (outbox)"
    for name in ("mosquitto", "postgres"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    for name in ("central", "api", "edge"):  # their healthchecks live in the images
        assert "HEALTHCHECK" in (REPO / services[name]["build"]["dockerfile"]).read_text()


def test_every_file_compose_references_exists() -> None:
    data = compose()
    named = set(data.get("volumes") or {})
    for name, service in data["services"].items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == REPO, f"{name}: build context must be the repository root"
            assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} missing"
        for volume in service.get("volumes", []):
            source = _default(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: named volume {source!r} is not declared under volumes:"
                continue
            path = (DEPLOY / source).resolve()
            if any(path == g or g in path.parents for g in GENERATED):
                continue
            assert path.exists(), f"{name}: {source} (from {volume!r}) does not exist"


def test_compose_secrets_are_written_by_setup_sh() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    setup = (DEPLOY / "lab" / "setup.sh").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text)) | set(re.findall(r"\$\{(\w+)\}", text))
    assert required, "compose.yaml takes its secrets from .env"
    for var in sorted(required):
        assert re.search(rf"^{var}=", setup, re.M), f"compose needs {var} but lab/setup.sh does not write it"


def test_compose_broker_installs_the_files_the_shipped_config_reads() -> None:
    command = " ".join(compose()["services"]["mosquitto"]["command"])
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    wanted = re.findall(r"^(?:cafile|certfile|keyfile|password_file|acl_file)\s+(\S+)", conf, re.M)
    assert len(wanted) == 5
    mounts = " ".join(compose()["services"]["mosquitto"]["volumes"])
    for path in wanted:
        name = Path(path).name
        assert f"/lab/certs/{name}" in command or path in mounts or f"/lab/{name}" in command, path
    assert "exec /usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf" in command


def test_lab_site_config_is_valid_and_matches_the_broker_setup() -> None:
    data = yaml.safe_load((DEPLOY / "lab" / "site.yaml").read_text())
    cfg = parse_site_config(data, "deploy/lab/site.yaml")
    assert cfg.mqtt.username == cfg.gateway_id, "the ACL's %u patterns need username == gateway_id"
    assert cfg.mqtt.broker.startswith("mqtts://mosquitto:")
    setup = (DEPLOY / "lab" / "setup.sh").read_text()
    assert "make-certs.sh\" -o \"$secrets/certs\" mosquitto" in setup, "server certificate must name mosquitto"
    assert f"\"$secrets/passwd\" {cfg.gateway_id}" in setup, "setup.sh must create the lab gateway's account"
    assert str(cfg.outbox.path).startswith("/var/lib/gridwatch/")
    assert str(cfg.evidence.dir).startswith("/var/lib/gridwatch/")


def test_example_site_config_uses_the_gateway_id_as_username() -> None:
    data = yaml.safe_load((DEPLOY / "examples" / "site.yaml").read_text())
    assert data["mqtt"]["username"] == data["gateway_id"]


# --- Dockerfiles ---------------------------------------------------------------------------------------------
def _packages() -> list[str]:
    """The folders mapped into the `gridwatch` package ([tool.setuptools.package-dir])."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert mapping, "pyproject.toml [tool.setuptools.package-dir]"
    return sorted(set(mapping.values()))


def _instructions(path: Path) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_every_package_and_drops_root(name: str) -> None:
    path = DEPLOY / "docker" / name
    steps = _instructions(path)
    copied = {s.split()[1].rstrip("/") for s in steps if s.startswith("COPY ") and "--from" not in s}
    for package in _packages():
        assert package in copied, f"{name} does not copy the {package}/ package"
    for source in copied - set(_packages()):
        assert all((REPO / f).exists() for f in source.split()), f"{name}: COPY source {source} missing"
    users = [s for s in steps if s.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0"), f"{name} must run as a non-root user"
    assert any(s.startswith("VOLUME") and "/var/lib/gridwatch" in s for s in steps)
    assert any(s.startswith("HEALTHCHECK") for s in steps)
    ignore = path.with_name(name + ".dockerignore").read_text()
    assert ignore.splitlines()[2:3] == ["*"], "the dockerignore starts by excluding everything"


def test_edge_image_installs_no_torch_and_jetson_needs_the_gpu_wheel() -> None:
    edge = (DEPLOY / "docker" / "Dockerfile.edge").read_text()
    assert re.search(r"pip install \.(\s|$)", edge, re.M), "the edge image installs gridwatch without extras"
    assert "import torch" in edge, "the build fails if torch sneaks in"
    jetson = (DEPLOY / "docker" / "Dockerfile.jetson").read_text()
    assert "ARG L4T_BASE=" in jetson and "ARG ORT_WHEEL" in jetson
    assert "pip uninstall -y onnxruntime" in jetson, "the CPU onnxruntime would shadow the GPU wheel"


def _healthcheck(name: str) -> str:
    step = next(s for s in _instructions(DEPLOY / "docker" / name) if s.startswith("HEALTHCHECK"))
    return step.split(" CMD ", 1)[1]


def _run_healthcheck(command: str, outbox: Path) -> int:
    assert command.startswith("python -c ")
    env = {**os.environ, "GRIDWATCH_OUTBOX": str(outbox), "GRIDWATCH_HEALTH_MAX_BACKLOG_S": "900"}
    cmd = [sys.executable, "-c", command.removeprefix("python -c ").strip('"')]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False).returncode


def test_edge_healthcheck_reports_a_stuck_outbox(tmp_path: Path) -> None:
    command = _healthcheck("Dockerfile.edge")
    assert command == _healthcheck("Dockerfile.jetson")
    path = tmp_path / "outbox.db"
    assert _run_healthcheck(command, path) != 0, "no outbox yet (worker not started) is not healthy"
    outbox = Outbox(path)
    try:
        assert _run_healthcheck(command, path) == 0, "an empty outbox is healthy"
        item = outbox.put("incident", "gridwatch/v1/s/c/incident", b"{}")
        assert _run_healthcheck(command, path) == 0, "a fresh event is healthy"
        with sqlite3.connect(path) as db:
            db.execute("UPDATE outbox SET created = ? WHERE id = ?", (time.time() - 3600, item))
        db.close()
        assert _run_healthcheck(command, path) == 1, "an event stuck for an hour is unhealthy"
    finally:
        outbox.close()


# --- systemd -------------------------------------------------------------------------------------------------
def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: repeated keys accumulate, a trailing backslash continues the line."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.parametrize(("unit", "command"), [("gridwatch-edge.service", "gridwatch edge run --config"),
                                               ("gridwatch-central.service", "gridwatch central run"),
                                               ("gridwatch-central-api.service", "gridwatch central api")])
def test_systemd_unit_has_the_required_keys(unit: str, command: str) -> None:
    sections = parse_unit(DEPLOY / "systemd" / unit)
    service = sections["Service"]

    def one(key: str) -> str:
        assert key in service, f"{unit}: [Service] {key}= missing"
        return service[key][-1]

    assert sections["Unit"]["Description"]
    assert sections["Unit"]["StartLimitIntervalSec"] == ["0"], "never stop restarting"
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert command in one("ExecStart")
    assert one("ExecStart").startswith("/"), "ExecStart needs an absolute path"
    assert one("Restart") == "always"
    assert float(one("RestartSec")) > 0
    assert one("EnvironmentFile") == "/etc/gridwatch/secrets.env"
    assert one("StateDirectory") == "gridwatch"
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert "/var/lib/gridwatch" in one("ReadWritePaths").split()
    assert "User" in service or service.get("DynamicUser") == ["yes"]
    assert one("CapabilityBoundingSet") == ""
    # Every ${VAR} in ExecStart has a default in the unit (secrets.env may override it).
    defined = {v.split("=", 1)[0] for v in service.get("Environment", [])}
    for var in re.findall(r"\$\{(\w+)\}", one("ExecStart")):
        assert var in defined, f"{unit}: ExecStart uses ${{{var}}} without an Environment= default"


def test_edge_unit_can_open_cameras() -> None:
    service = parse_unit(DEPLOY / "systemd" / "gridwatch-edge.service")["Service"]
    assert "video" in service["SupplementaryGroups"][-1].split()
    assert "PrivateDevices" not in service, "PrivateDevices=yes hides /dev/video* and the Jetson GPU"


# --- scripts -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", ["mosquitto/make-certs.sh", "mosquitto/add-user.sh", "lab/setup.sh"])
def test_shell_scripts_are_strict_and_executable(script: str) -> None:
    path = DEPLOY / script
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


def test_no_shipped_file_puts_a_password_inside_a_url() -> None:
    """Secrets come from the environment or a credentials file, never inside a URL that lands on a command line; a
    `${NAME}` reference in a site config (resolved by the gateway, `gridwatch.edge.secrets`) holds no secret."""
    url_with_password = re.compile(r"[a-z+]+://[^\s/:@'\"]+:(?!\$\{[A-Za-z_][A-Za-z0-9_]*\}@)[^\s/@'\"]+@")
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and not any(g in p.parents for g in GENERATED)]
    found = [f"{p.relative_to(REPO)}:{n}" for p in files
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if url_with_password.search(line)]
    assert not found, found


# --- delivery defaults (issue 8, hole 4) ---------------------------------------------------------------------
def test_shipped_broker_saves_every_minute_within_central_s_dispatch_replay() -> None:
    """Delivery does not rest on the broker's disk (receipts, resubscribe, dispatch replay), so the shipped broker
    saves every 60 s instead of on every change; central's dispatch replay must cover that window (the chaos
    benchmark's broker-kill scenarios run this config: tests/benchmarks/test_chaos.py)."""
    from gridwatch.central.dispatch import DISPATCH_REPLAY_S

    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    settings = {ln.split()[0]: ln.split()[1] for ln in conf.splitlines() if ln.strip() and not ln.startswith("#")}
    assert settings["persistence"] == "true"
    assert settings["autosave_on_changes"] == "false"
    assert 2 * int(settings["autosave_interval"]) <= DISPATCH_REPLAY_S


def test_shipped_central_uses_a_plain_persistent_subscription() -> None:
    """A `$share` group loses what is published while no member is connected (after a broker restart)."""
    unit = parse_unit(DEPLOY / "systemd" / "gridwatch-central.service")["Service"]["ExecStart"][-1]
    docker = [s for s in _instructions(DEPLOY / "docker" / "Dockerfile.central") if s.startswith("CMD")][-1]
    lab = json.dumps(compose()["services"]["central"])
    for name, text in (("systemd unit", unit), ("Dockerfile.central", docker), ("compose central", lab)):
        assert "--share-group" not in text and "$share" not in text, f"{name} opts in to a $share group"
        assert "--client-id" in text or name == "compose central", f"{name}: a stable client id names the session"


# --- HTTP API (issue 8: authentication) ----------------------------------------------------------------------
def test_shipped_api_takes_its_secrets_from_the_environment_and_stays_local_in_the_lab() -> None:
    unit = parse_unit(DEPLOY / "systemd" / "gridwatch-central-api.service")["Service"]
    lab = compose()["services"]["api"]
    command = " ".join(lab["command"])
    for name, text in (("systemd unit", unit["ExecStart"][-1]), ("compose api", command)):
        assert "gridwatch central api" in text, name
        assert not re.search(r"--(token|password|db)\b|PASSWORD|gwt_", text), f"{name} puts a secret on argv"
    assert "--tls-cert" in unit["ExecStart"][-1] and "--tls-key" in unit["ExecStart"][-1]
    assert lab["environment"]["PGPASSWORD"] == "${POSTGRES_PASSWORD}"
    assert all(str(p).startswith("127.0.0.1:") for p in lab["ports"]), "the lab API (no TLS) is loopback-only"
