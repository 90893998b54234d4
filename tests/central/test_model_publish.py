"""`publish_model` against fake gateways (each a real `Receiver` behind a fake control channel): staged order,
stopping a staged rollout, refusals and silence reported per gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from gridwatch.central.model_publish import PublishError, publish_model
from gridwatch.edge.model_receiver import Complete, Receiver, Refused
from gridwatch.wire.model_signing import PublicKey
from gridwatch.wire.model_update import ModelBundle
from tests.model_updates import fake_bundle, keypair

PREFIX = "gridwatch/v1"


class FakeGateways:
    """The control channel seen from central; each gateway reassembles with the real receiver and then
    behaves as told: "install" (runs the model), "refuse" (reports a reason), "silent" (never answers)."""

    def __init__(self, tmp: Path, trusted: PublicKey, behaviour: dict[str, str],
                 refused_by_broker: frozenset[str] = frozenset()) -> None:
        self.behaviour, self.refused_by_broker = behaviour, refused_by_broker
        self.order: list[str] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.receivers = {gw: Receiver(PREFIX, "s1", gw, tmp / gw, {trusted.key_id: trusted}, 10**7, 60.0,
                                       lambda: 0.0) for gw in behaviour}

    def send(self, topic: str, payloads: Iterable[bytes]) -> None:
        gw = topic.split("/")[-2]
        if gw in self.refused_by_broker:
            raise PublishError(f"{topic}: the broker refused the model update (Not authorized)")
        self.order.append(gw)
        for payload in payloads:
            result = self.receivers[gw].on_message(topic, payload)
            if isinstance(result, Refused):
                self._report(gw, "refused", result.transfer_id, result.reason, None)
            elif isinstance(result, Complete):
                self._complete(gw, result)

    def _complete(self, gw: str, done: Complete) -> None:
        st = done.offer.statement
        if self.behaviour[gw] == "install":
            self._report(gw, "installed", done.offer.transfer_id, "fit", st.model_sha256)
        elif self.behaviour[gw] == "refuse":
            self._report(gw, "refused", done.offer.transfer_id, "detection rate collapsed: ...", "0" * 64)

    def _report(self, gw: str, result: str, tid: str | None, reason: str, sha: str | None) -> None:
        self.statuses[gw] = {"gateway_id": gw, "state": "online", "model": {"sha256": sha},
                             "model_update": {"result": result, "transfer_id": tid, "reason": reason}}

    def status(self, gateway: str) -> dict[str, Any] | None:
        return self.statuses.get(gateway)

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        return predicate()  # everything above happens synchronously inside send()


@pytest.fixture
def bundle(tmp_path: Path) -> ModelBundle:
    return fake_bundle(tmp_path / "model", size=3000)


def test_every_gateway_reports_the_new_model(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    gws = FakeGateways(tmp_path, public, {"g1": "install", "g2": "install", "g3": "install"})
    results = publish_model(bundle, "s1", ["g1", "g2", "g3"], key, gws, prefix=PREFIX, chunk_size=1024)
    assert [(r.gateway, r.ok, r.result) for r in results] == [("g1", True, "installed"), ("g2", True, "installed"),
                                                               ("g3", True, "installed")]


def test_a_staged_rollout_stops_when_the_first_gateway_refuses(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    gws = FakeGateways(tmp_path, public, {"g1": "refuse", "g2": "install", "g3": "install"})
    results = publish_model(bundle, "s1", ["g1", "g2", "g3"], key, gws, prefix=PREFIX, staged=True, chunk_size=1024)
    assert gws.order == ["g1"]
    assert [(r.result, r.ok) for r in results] == [("refused", False), ("not_sent", False), ("not_sent", False)]
    assert "detection rate collapsed" in results[0].reason and "g1 did not report" in results[1].reason


def test_a_staged_rollout_continues_after_the_first_gateway_runs_the_model(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    gws = FakeGateways(tmp_path, public, {"g1": "install", "g2": "install"})
    results = publish_model(bundle, "s1", ["g1", "g2"], key, gws, prefix=PREFIX, staged=True, chunk_size=1024)
    assert gws.order == ["g1", "g2"] and all(r.ok for r in results)


def test_silence_a_broker_refusal_and_an_untrusted_key_are_failures_with_reasons(
    tmp_path: Path, bundle: ModelBundle,
) -> None:
    key, public = keypair()
    stranger, _ = keypair()
    gws = FakeGateways(tmp_path, public, {"g1": "silent", "g2": "install"}, refused_by_broker=frozenset({"g2"}))
    results = publish_model(bundle, "s1", ["g1", "g2"], key, gws, prefix=PREFIX, timeout_s=0.1, chunk_size=1024)
    assert [(r.result, r.ok) for r in results] == [("timeout", False), ("error", False)]
    assert "no answer within" in results[0].reason and "Not authorized" in results[1].reason
    other = FakeGateways(tmp_path / "o", public, {"g1": "install"})
    (result,) = publish_model(bundle, "s1", ["g1"], stranger, other, prefix=PREFIX, chunk_size=1024)
    assert (result.ok, result.result) == (False, "refused") and "unknown key" in result.reason


def test_publish_refuses_a_key_file_others_can_read_and_names_the_fix(
    tmp_path: Path, bundle: ModelBundle, capsys: pytest.CaptureFixture[str],
) -> None:
    from gridwatch.app.cli import main
    from tests.model_updates import private_file

    key, _ = keypair()
    path = private_file(tmp_path / "k.key", key, 0o644)
    code = main(["models", "publish", str(bundle.model_path.parent), "--site", "s1", "--gateways", "g1",
                 "--key", str(path), "--broker", "mqtt://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "accessible to group/others (mode 644)" in err and f"chmod 600 {path}" in err


def test_publish_without_a_key_or_with_a_bad_gateway_id_is_one_line(
    tmp_path: Path, bundle: ModelBundle, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gridwatch.app.cli import main

    monkeypatch.delenv("GRIDWATCH_MODEL_KEY", raising=False)
    assert main(["models", "publish", str(bundle.model_path.parent), "--site", "s1", "--gateways", "g1"]) == 2
    assert "GRIDWATCH_MODEL_KEY" in capsys.readouterr().err
    monkeypatch.setenv("GRIDWATCH_MODEL_KEY", str(tmp_path / "k.key"))
    assert main(["models", "publish", str(bundle.model_path.parent), "--site", "s1", "--gateways", "g1,../x"]) == 2
    assert "'../x'" in capsys.readouterr().err


def test_keygen_prints_the_line_a_site_config_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gridwatch.app.cli import main
    from gridwatch.edge.config import parse_site_config

    assert main(["models", "keygen", "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    line = next(ln.strip().removeprefix("- ").strip('"') for ln in out.splitlines() if "ed25519:" in ln)
    assert line == (tmp_path / "k.pub").read_text().strip()
    cfg = parse_site_config({"site_id": "s", "gateway_id": "g", "detector": {"type": "onnx", "model": "m.onnx"},
                             "model_update": {"trusted_keys": [line]},
                             "cameras": [{"id": "c", "source": {"type": "usb"}}]})
    assert cfg.model_update.trusted_keys == [line]
