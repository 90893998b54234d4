"""Which model a gateway runs, kept on disk so a restart runs the same one.

Layout under `model_update.dir` (default `model-updates/` next to the outbox file)::

    staging/<transfer_id>.part|.onnx|.json   transfers in progress and just completed (`edge.model_receiver`)
    installed/<transfer_id>/<name>.onnx|.json models that passed verification and the comparison
    active.json                               {"active": {...} | null, "previous": {...} | null, "last_issued_ms"}

`active` null means the model in the site config. `last_issued_ms` is the issue time of the newest installed
update: an offer must be newer (a signed but old model cannot be replayed). active.json is replaced atomically
(temporary file, fsync, rename), so a crash leaves either the old choice or the new one. Only the active and the
previous model are kept in `installed/`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)


class InstalledModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path
    manifest: Path
    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    transfer_id: str = Field(pattern=r"^[0-9a-zA-Z_-]{1,64}$")


class StoreState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    active: InstalledModel | None = None
    previous: InstalledModel | None = None
    last_issued_ms: int = Field(0, ge=0)


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.staging = self.root / "staging"
        self.installed = self.root / "installed"
        self.path = self.root / "active.json"
        self.installed.mkdir(parents=True, exist_ok=True)

    def load(self) -> StoreState:
        """The saved choice; a missing or damaged file means the configured model (a damaged one is set aside)."""
        try:
            return StoreState.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return StoreState()
        except (OSError, ValidationError, ValueError) as exc:
            log.error("model choice %s unreadable (%s); running the configured model", self.path, exc)
            os.replace(self.path, self.path.with_suffix(".bad"))
            return StoreState()

    def install(self, model: Path, manifest: Path, name: str, version: str, sha256: str,
                transfer_id: str) -> InstalledModel:
        """Move a verified model out of staging into installed/<transfer_id>/ (same file system: a rename)."""
        folder = self.installed / transfer_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = _safe_stem(name)
        target, target_manifest = folder / f"{stem}.onnx", folder / f"{stem}.json"
        os.replace(manifest, target_manifest)
        os.replace(model, target)
        return InstalledModel(model=target, manifest=target_manifest, name=name, version=version, sha256=sha256,
                              transfer_id=transfer_id)

    def save(self, state: StoreState) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".active-", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(state.model_dump(mode="json"), indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._prune(state)

    def _prune(self, state: StoreState) -> None:
        keep = {m.transfer_id for m in (state.active, state.previous) if m is not None}
        for folder in self.installed.iterdir():
            if folder.is_dir() and folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)


def _safe_stem(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return stem[:64] or "model"
