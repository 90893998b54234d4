"""The model-update messages on a gateway's control topic (`{prefix}/{site}/{gateway}/control`), central -> edge.

A model travels as one *offer* followed by the model file in *chunks*, every message at QoS 1. Each message is a
JSON header line, a newline, and (for a chunk) the raw bytes of that piece of the file::

    {"kind": "model_offer", "transfer_id": ..., "statement": {...}, "signature": ..., "key_id": ..., ...}\\n
    {"kind": "model_chunk", "transfer_id": ..., "site_id": ..., "gateway_id": ..., "index": 3, "count": 41}\\n<bytes>

The offer carries the model's manifest (bytes, base64) and a *statement* signed with Ed25519
(`gridwatch.wire.model_signing`): the target site and gateway, the transfer id, the issue time, the sha256 of the
manifest bytes and of the model file, and the model file's size. The manifest itself pins the model file by its
sha256, so the signature covers the manifest, the weights and where they may be installed.

Everything here is bounded, because whoever reaches the broker can put anything on the wire: header size,
manifest size, chunk size, model size, chunk count (it must equal ceil(size / chunk_size)), and every identifier
has a pattern. `parse_control` raises `ControlMessageError` with the reason for anything else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gridwatch.errors import GridwatchError

FORMAT = "gridwatch-model-update/1"
MAX_HEADER_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 32 * 1024
MIN_CHUNK_BYTES = 1024
MAX_CHUNK_BYTES = 1024 * 1024
DEFAULT_CHUNK_BYTES = 256 * 1024
MAX_MODEL_BYTES = 1024 * 1024 * 1024  # hard ceiling; a gateway's own limit is model_update.max_model_mb
MAX_CHUNKS = math.ceil(MAX_MODEL_BYTES / MIN_CHUNK_BYTES)

Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
TransferId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ControlMessageError(GridwatchError, ValueError):
    """A control message that cannot be used; the message says why (it goes into the gateway's status)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Statement(_Strict):
    """What the publisher signs: which model, for which gateway, when."""

    format: Literal["gridwatch-model-update/1"] = "gridwatch-model-update/1"
    site_id: Ident
    gateway_id: Ident
    transfer_id: TransferId
    issued_at_ms: int = Field(ge=0, le=2**53, description="Unix time in ms; a gateway refuses one not newer "
                              "than the last model it installed (no replay of an old, signed model).")
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    manifest_sha256: Sha256
    model_sha256: Sha256
    model_size: int = Field(ge=1, le=MAX_MODEL_BYTES)

    def canonical(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no spaces, prefixed by the format (domain separation)."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return f"{FORMAT}\n{body}".encode()


class ModelOffer(_Strict):
    kind: Literal["model_offer"]
    transfer_id: TransferId
    statement: Statement
    signature: str | None = Field(None, max_length=128, description="Ed25519 signature of the statement, base64.")
    key_id: str | None = Field(None, pattern=r"^[0-9a-f]{16}$", description="Which trusted key signed it.")
    manifest_b64: str = Field(min_length=4, max_length=math.ceil(MAX_MANIFEST_BYTES / 3) * 4)
    chunk_size: int = Field(ge=MIN_CHUNK_BYTES, le=MAX_CHUNK_BYTES)
    chunk_count: int = Field(ge=1, le=MAX_CHUNKS)

    def manifest_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.manifest_b64, validate=True)
        except ValueError as exc:
            raise ControlMessageError(f"offer {self.transfer_id}: manifest_b64 is not base64") from exc


class ModelChunk(_Strict):
    kind: Literal["model_chunk"]
    transfer_id: TransferId
    site_id: Ident
    gateway_id: Ident
    index: int = Field(ge=0, lt=MAX_CHUNKS)
    count: int = Field(ge=1, le=MAX_CHUNKS)


ControlMessage = Annotated[ModelOffer | ModelChunk, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[ModelOffer | ModelChunk] = TypeAdapter(ControlMessage)


def frame(header: BaseModel, data: bytes = b"") -> bytes:
    """One control message: the header as compact JSON, a newline, then `data`."""
    return header.model_dump_json().encode() + b"\n" + data


def parse_control(payload: bytes) -> tuple[ModelOffer | ModelChunk, bytes]:
    """Split and validate a control message; raise ControlMessageError with the reason."""
    head, sep, data = payload[: MAX_HEADER_BYTES + 1].partition(b"\n")
    if not sep:
        raise ControlMessageError(f"no header line within {MAX_HEADER_BYTES} bytes")
    data = payload[len(head) + 1:]
    try:
        message = _ADAPTER.validate_json(head)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(header)"
        raise ControlMessageError(f"invalid control header: {where}: {first['msg']}") from None
    if isinstance(message, ModelOffer) and data:
        raise ControlMessageError("a model offer carries no data after its header")
    if isinstance(message, ModelChunk) and len(data) > MAX_CHUNK_BYTES:
        raise ControlMessageError(f"chunk of {len(data)} bytes exceeds {MAX_CHUNK_BYTES}")
    return message, data


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, math.ceil(size / chunk_size))


def chunk_length(index: int, count: int, size: int, chunk_size: int) -> int:
    """How many bytes chunk `index` of a file of `size` bytes must hold (the last one holds the rest)."""
    return chunk_size if index < count - 1 else size - chunk_size * (count - 1)


# --- the publisher's side: a model folder turned into messages ------------------------------------------------
class ModelBundleError(GridwatchError, ValueError):
    """A model folder that cannot be published; the message names the file and the fix."""


class ModelBundle(BaseModel):
    """An exported model ready to publish: the ONNX file and its manifest's exact bytes."""

    model_config = ConfigDict(frozen=True)

    model_path: Path
    manifest: bytes
    name: str
    version: str
    sha256: str
    size: int


def read_bundle(path: Path) -> ModelBundle:
    """A model folder (one `.onnx` plus its `<stem>.json` manifest) or the `.onnx` file itself.

    The manifest is read only as far as publishing needs (name, version, sha256); the gateway validates all of it.
    The model file's sha256 must match the manifest's: a publisher never signs a model it has not checked."""
    path = Path(path)
    models = sorted(path.glob("*.onnx")) if path.is_dir() else [path]
    if len(models) != 1 or not models[0].is_file():
        raise ModelBundleError(f"{path}: expected a folder with exactly one .onnx file (or the .onnx itself); "
                               f"found {[m.name for m in models]}")
    model = models[0]
    manifest_path = model.with_suffix(".json")
    try:
        manifest = manifest_path.read_bytes()
    except OSError as exc:
        raise ModelBundleError(f"cannot read the manifest {manifest_path}: {exc.strerror}; export the model with "
                               "its manifest next to it") from None
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise ModelBundleError(f"{manifest_path}: {len(manifest)} bytes; a manifest may have {MAX_MANIFEST_BYTES}")
    try:
        fields = json.loads(manifest)
        name, version, sha = str(fields["name"]), str(fields["version"]), str(fields["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelBundleError(f"{manifest_path}: not a model manifest with name, version and sha256 ({exc})") from None
    actual, size = file_sha256(model), model.stat().st_size
    if actual != sha:
        raise ModelBundleError(f"{model}: sha256 {actual} differs from its manifest's {sha}; re-export the model "
                               "or fix the manifest before publishing it")
    if size > MAX_MODEL_BYTES:
        raise ModelBundleError(f"{model}: {size} bytes; the largest model that can be published is {MAX_MODEL_BYTES}")
    return ModelBundle(model_path=model, manifest=manifest, name=name, version=version, sha256=sha, size=size)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_transfer_id() -> str:
    return uuid.uuid4().hex


def statement_for(bundle: ModelBundle, site_id: str, gateway_id: str, transfer_id: str,
                  issued_at_ms: int) -> Statement:
    return Statement(site_id=site_id, gateway_id=gateway_id, transfer_id=transfer_id, issued_at_ms=issued_at_ms,
                     name=bundle.name, version=bundle.version,
                     manifest_sha256=hashlib.sha256(bundle.manifest).hexdigest(), model_sha256=bundle.sha256,
                     model_size=bundle.size)


def offer_for(bundle: ModelBundle, statement: Statement, signature: str | None, key_id: str | None,
              chunk_size: int = DEFAULT_CHUNK_BYTES) -> ModelOffer:
    return ModelOffer(kind="model_offer", transfer_id=statement.transfer_id, statement=statement, signature=signature,
                      key_id=key_id, manifest_b64=base64.b64encode(bundle.manifest).decode("ascii"),
                      chunk_size=chunk_size, chunk_count=chunk_count(bundle.size, chunk_size))


def transfer_messages(bundle: ModelBundle, offer: ModelOffer) -> Iterator[bytes]:
    """The offer, then every chunk of the model file, as control-message payloads in sending order (read lazily,
    so a large model never sits in memory whole)."""
    yield frame(offer)
    st = offer.statement
    with open(bundle.model_path, "rb") as fh:
        for index in range(offer.chunk_count):
            header = ModelChunk(kind="model_chunk", transfer_id=offer.transfer_id, site_id=st.site_id,
                                gateway_id=st.gateway_id, index=index, count=offer.chunk_count)
            yield frame(header, fh.read(offer.chunk_size))
