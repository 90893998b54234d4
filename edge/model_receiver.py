"""Reassembling a model sent over the control topic, and refusing anything that is not a trusted, intact model.

`Receiver.on_message(topic, payload)` takes every control message (`gridwatch.wire.model_update`) and returns:

- `Refused(transfer_id, reason)` when an offer or a transfer is rejected: wrong topic or target, unsigned,
  unknown key, bad signature, replayed (not newer than the installed model), too large, inconsistent sizes, timed
  out, or a reassembled file whose sha256 is not the signed one. The reason goes into the gateway's status;
- `Complete(offer, model_path, manifest_path)` when every chunk of an accepted offer arrived and the file's
  sha256 is the signed one;
- None for a chunk that was stored, or one that was dropped (duplicate, out of range, wrong length, unknown
  transfer): drops are counted in `stats`, never trusted.

The signature is checked on the offer, before a byte of the model is written, and the whole file's sha256 at the
end. One transfer at a time: a newer accepted offer replaces an unfinished one. Chunks go straight to a file in
the staging folder (memory stays bounded by one chunk); `expire(now)` drops a transfer that received no chunk for
`timeout_s`. Not thread-safe: the caller holds a lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gridwatch.wire.model_signing import PublicKey, SignatureRefused, verify
from gridwatch.wire.model_update import (
    ControlMessageError,
    ModelChunk,
    ModelOffer,
    chunk_count,
    chunk_length,
    parse_control,
)
from gridwatch.wire.topics import control_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refused:
    transfer_id: str | None
    reason: str


@dataclass(frozen=True)
class Complete:
    offer: ModelOffer
    model_path: Path
    manifest_path: Path


@dataclass
class ReceiverStats:
    chunks: int = 0
    duplicates: int = 0
    dropped: int = 0  # out of range, wrong length, unknown transfer, unparseable
    refused: int = 0


@dataclass
class _Transfer:
    offer: ModelOffer
    path: Path
    fh: BinaryIO
    last_at: float
    received: set[int] = field(default_factory=set)


@dataclass
class Receiver:
    prefix: str
    site_id: str
    gateway_id: str
    staging: Path
    trusted: dict[str, PublicKey]
    max_model_bytes: int
    timeout_s: float
    clock: Callable[[], float]
    last_issued_ms: int = 0  # of the installed model: an offer must be newer
    stats: ReceiverStats = field(default_factory=ReceiverStats)
    _current: _Transfer | None = None

    def __post_init__(self) -> None:
        self.staging.mkdir(parents=True, exist_ok=True)
        for leftover in self.staging.iterdir():  # a transfer (or an install) cut short by a restart never completes
            if leftover.is_file():
                leftover.unlink(missing_ok=True)

    @property
    def topic(self) -> str:
        return control_topic(self.prefix, self.site_id, self.gateway_id)

    def on_message(self, topic: str, payload: bytes) -> Refused | Complete | None:
        if topic != self.topic:
            return self._refuse(None, f"message on {topic!r}, not this gateway's control topic {self.topic!r}")
        try:
            message, data = parse_control(payload)
        except ControlMessageError as exc:
            return self._refuse(None, str(exc))
        if isinstance(message, ModelOffer):
            return self._on_offer(message)
        return self._on_chunk(message, data)

    def expire(self, now: float) -> Refused | None:
        t = self._current
        if t is None or now - t.last_at < self.timeout_s:
            return None
        self._discard()
        return self._refuse(t.offer.transfer_id, f"timed out: {len(t.received)} of {t.offer.chunk_count} chunks "
                            f"after {self.timeout_s:.0f} s without a new one")

    def close(self) -> None:
        self._discard()

    # offers ---------------------------------------------------------------------------------------------------
    def _on_offer(self, offer: ModelOffer) -> Refused | None:
        reason = self._check_offer(offer)
        if reason:
            return self._refuse(offer.transfer_id, reason)
        if self._current is not None:
            if self._current.offer.transfer_id == offer.transfer_id:
                self.stats.duplicates += 1  # QoS 1 may deliver the offer twice
                return None
            log.warning("model transfer %s replaced by %s before it completed", self._current.offer.transfer_id,
                        offer.transfer_id)
            self._discard()
        path = self.staging / f"{offer.transfer_id}.part"
        fh = open(path, "wb")  # noqa: SIM115 - held open across messages, closed by _discard/_finish
        self._current = _Transfer(offer, path, fh, self.clock())
        log.info("model offer %s accepted: %s %s, %d bytes in %d chunks", offer.transfer_id, offer.statement.name,
                 offer.statement.version, offer.statement.model_size, offer.chunk_count)
        return None

    def _check_offer(self, offer: ModelOffer) -> str | None:
        """The reason to refuse `offer`, or None. Signature first: nothing unsigned gets further."""
        st = offer.statement
        try:
            verify(self.trusted, offer.key_id, offer.signature, st.canonical())
        except SignatureRefused as exc:
            return str(exc)
        checks = (
            (st.transfer_id == offer.transfer_id, "the signed transfer id differs from the offer's"),
            ((st.site_id, st.gateway_id) == (self.site_id, self.gateway_id),
             f"signed for {st.site_id}/{st.gateway_id}, this is {self.site_id}/{self.gateway_id}"),
            (st.issued_at_ms > self.last_issued_ms,
             f"replayed or stale: issued at {st.issued_at_ms} ms, not after the installed model's "
             f"{self.last_issued_ms} ms"),
            (st.model_size <= self.max_model_bytes,
             f"model of {st.model_size} bytes exceeds model_update.max_model_mb ({self.max_model_bytes} bytes)"),
            (offer.chunk_count == chunk_count(st.model_size, offer.chunk_size),
             f"chunk_count {offer.chunk_count} does not fit {st.model_size} bytes in chunks of {offer.chunk_size}"),
        )
        for ok, reason in checks:
            if not ok:
                return reason
        try:
            manifest = offer.manifest_bytes()
        except ControlMessageError as exc:
            return str(exc)
        if hashlib.sha256(manifest).hexdigest() != st.manifest_sha256:
            return "manifest altered: its sha256 is not the signed one"
        return None

    # chunks ---------------------------------------------------------------------------------------------------
    def _on_chunk(self, chunk: ModelChunk, data: bytes) -> Refused | Complete | None:
        t = self._current
        if t is None or chunk.transfer_id != t.offer.transfer_id:
            self.stats.dropped += 1  # no accepted offer: refused already, or never seen
            return None
        offer = t.offer
        if (chunk.site_id, chunk.gateway_id) != (self.site_id, self.gateway_id) or chunk.count != offer.chunk_count \
                or chunk.index >= offer.chunk_count:
            self.stats.dropped += 1
            return None
        if chunk.index in t.received:
            self.stats.duplicates += 1
            return None
        if len(data) != chunk_length(chunk.index, offer.chunk_count, offer.statement.model_size, offer.chunk_size):
            self.stats.dropped += 1
            return None
        t.fh.seek(chunk.index * offer.chunk_size)
        t.fh.write(data)
        t.received.add(chunk.index)
        t.last_at = self.clock()
        self.stats.chunks += 1
        if len(t.received) < offer.chunk_count:
            return None
        return self._finish(t)

    def _finish(self, t: _Transfer) -> Refused | Complete:
        t.fh.flush()
        os.fsync(t.fh.fileno())
        t.fh.close()
        self._current = None
        st = t.offer.statement
        actual = _sha256(t.path)
        if actual != st.model_sha256:
            t.path.unlink(missing_ok=True)
            return self._refuse(t.offer.transfer_id, f"corrupted: the received model's sha256 {actual} is not the "
                                f"signed {st.model_sha256}")
        model = t.path.with_suffix(".onnx")
        manifest = t.path.with_suffix(".json")
        manifest.write_bytes(t.offer.manifest_bytes())
        os.replace(t.path, model)
        return Complete(t.offer, model, manifest)

    def _discard(self) -> None:
        t, self._current = self._current, None
        if t is not None:
            t.fh.close()
            t.path.unlink(missing_ok=True)

    def _refuse(self, transfer_id: str | None, reason: str) -> Refused:
        self.stats.refused += 1
        log.warning("model update %s refused: %s", transfer_id or "(unidentified)", reason)
        return Refused(transfer_id, reason)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
