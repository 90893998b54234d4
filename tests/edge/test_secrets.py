"""Issue 8, hole 5: camera and broker passwords are `${NAME}` references in the site config, resolved from the
environment or a credentials file only its owner can read, and never kept in the config, an error or a log."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml

from gridwatch.edge.config import load_site_config
from gridwatch.edge.secrets import CREDENTIALS_ENV, SecretError, expand, read_credentials
from gridwatch.edge.sources import LiveSource, open_source

SECRET = "s3cret-Pa55"


def site_yaml(tmp_path: Path, url: str, password: str | None = None) -> Path:
    data = {
        "site_id": "s1", "gateway_id": "gw1",
        "detector": {"type": "onnx", "model": "m.onnx"},
        "mqtt": {"broker": "mqtt://127.0.0.1:1883", "username": "gw1", **({"password": password} if password else {})},
        "cameras": [{"id": "kerb-1", "source": {"type": "rtsp", "url": url}}],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_reference_resolves_only_where_the_stream_is_opened(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERB1_PASSWORD", SECRET)
    cfg = load_site_config(site_yaml(tmp_path, "rtsp://viewer:${KERB1_PASSWORD}@10.0.4.21/stream1"))
    assert SECRET not in cfg.model_dump_json()  # the config keeps the reference
    source = open_source(cfg.cameras[0].source, "kerb-1", start_wall=None, sample_fps=2.0)  # type: ignore[arg-type]
    assert isinstance(source, LiveSource) and source.target == f"rtsp://viewer:{SECRET}@10.0.4.21/stream1"
    assert SECRET not in source.label


def test_a_missing_variable_stops_the_load_with_the_field_and_the_fix(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERB1_PASSWORD", raising=False)
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with pytest.raises(SecretError) as err:
        load_site_config(site_yaml(tmp_path, "rtsp://viewer:${KERB1_PASSWORD}@10.0.4.21/stream1"))
    text = str(err.value)
    assert "cameras.0.source.url" in text and "${KERB1_PASSWORD} is not set" in text and "export" in text


def test_a_credentials_file_is_read_only_when_only_its_owner_can(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "gateway.env"
    creds.write_text(f"# camera passwords\nKERB1_PASSWORD={SECRET}\nMQTT_PASSWORD='{SECRET}-mqtt'\n")
    creds.chmod(0o644)
    monkeypatch.setenv(CREDENTIALS_ENV, str(creds))
    monkeypatch.delenv("KERB1_PASSWORD", raising=False)
    path = site_yaml(tmp_path, "rtsp://viewer:${KERB1_PASSWORD}@10.0.4.21/stream1", password="${MQTT_PASSWORD}")
    with pytest.raises(SecretError, match="chmod 600"):
        load_site_config(path)
    creds.chmod(0o600)
    cfg = load_site_config(path)
    assert cfg.mqtt.password == "${MQTT_PASSWORD}"
    assert expand(cfg.mqtt.password, "mqtt.password") == f"{SECRET}-mqtt"
    assert read_credentials(creds) == {"KERB1_PASSWORD": SECRET, "MQTT_PASSWORD": f"{SECRET}-mqtt"}


def test_a_malformed_credentials_line_is_refused_without_echoing_it(tmp_path: Path) -> None:
    creds = tmp_path / "gateway.env"
    creds.write_text(f"{SECRET}\n")
    creds.chmod(0o600)
    with pytest.raises(SecretError) as err:
        read_credentials(creds)
    assert SECRET not in str(err.value) and ":1: expected NAME=value" in str(err.value)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    creds = tmp_path / "gateway.env"
    creds.write_text("A=from-file\nB=only-in-file\n")
    creds.chmod(0o600)
    env = {CREDENTIALS_ENV: str(creds), "A": "from-env"}
    from gridwatch.edge.secrets import lookup

    values = lookup(env)
    assert (values["A"], values["B"]) == ("from-env", "only-in-file")


def test_the_stream_s_retry_log_never_shows_the_password(caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setenv("KERB1_PASSWORD", SECRET)
    from gridwatch.edge.config import StreamSourceConfig

    cfg = StreamSourceConfig(type="rtsp", url="rtsp://viewer:${KERB1_PASSWORD}@127.0.0.1:9/none",
                             reconnect_min_s=0.05, reconnect_max_s=0.05)
    stop = threading.Event()
    caplog.set_level(logging.DEBUG)
    source = open_source(cfg, "kerb-1", start_wall=None, sample_fps=2.0, stop=stop)  # type: ignore[arg-type]
    assert isinstance(source, LiveSource)
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    try:
        for _ in source:
            break
    finally:
        stop.set()
        timer.cancel()
        source.stop()
    assert SECRET not in caplog.text
    assert os.environ["KERB1_PASSWORD"] == SECRET
