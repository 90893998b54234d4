"""Helpers for the model-update tests: keys, model folders, detectors that find a fixed number of things."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import supervision as sv
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridwatch.app.publish_rehearsal import control_messages
from gridwatch.models.base import ModelInfo, make_detections
from gridwatch.wire.model_signing import PublicKey, key_id
from gridwatch.wire.model_update import ModelBundle, read_bundle

DEMO_DIR = Path(__file__).resolve().parents[1] / "models" / "demo"
DEMO_STEM = "gridwatch-demo-yolo11n"


def keypair() -> tuple[Ed25519PrivateKey, PublicKey]:
    private = Ed25519PrivateKey.generate()
    return private, PublicKey(key_id(private.public_key()), private.public_key())


def fake_bundle(folder: Path, size: int = 5000, version: str = "2.0.0", seed: int = 1) -> ModelBundle:
    """A model folder whose 'weights' are random bytes (enough for everything before loading)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    (folder / "m.onnx").write_bytes(data)
    manifest = {"name": "m", "version": version, "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "m.json").write_text(json.dumps(manifest))
    return read_bundle(folder)


def repackaged_demo(folder: Path, version: str = "0.2.0") -> ModelBundle:
    """The demo model's weights under a new version: what `gridwatch models export` would ship after a retrain."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_DIR / f"{DEMO_STEM}.onnx", folder / f"{DEMO_STEM}.onnx")
    manifest = json.loads((DEMO_DIR / f"{DEMO_STEM}.json").read_text())
    manifest["version"] = version
    (folder / f"{DEMO_STEM}.json").write_text(json.dumps(manifest, indent=2))
    return read_bundle(folder)


def messages(bundle: ModelBundle, site: str, gateway: str, key: Ed25519PrivateKey | None, *,
             chunk_size: int = 1024, issued_ms: int = 1_000, transfer_id: str | None = None) -> list[bytes]:
    """The offer and chunks, signed with `key` (unsigned when None); small chunks and a fixed issue time."""
    return control_messages(bundle, site, gateway, key, chunk_size=chunk_size, issued_ms=issued_ms,
                            transfer_id=transfer_id)


def private_file(path: Path, key: Ed25519PrivateKey, mode: int = 0o600) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, mode)
    return path


class CountingDetector:
    """Finds `n` boxes on every image; `fail` makes it raise instead."""

    def __init__(self, n: int, name: str = "m", version: str = "1", sha: str = "1", fail: bool = False) -> None:
        self.n, self.fail, self.calls = n, fail, 0
        self.info = ModelInfo(name, version, sha * 64 if len(sha) == 1 else sha, ("car",), (64, 64), "fake")

    def detect(self, image: np.ndarray) -> sv.Detections:
        self.calls += 1
        if self.fail:
            raise RuntimeError("bad graph")
        boxes = np.tile(np.array([[0, 0, 10, 10]], dtype=np.float32), (self.n, 1))
        return make_detections(boxes, np.full(self.n, 0.9), np.zeros(self.n, dtype=np.int64), ["car"])
