"""An embedded Mosquitto broker on a free loopback port, for the demo and the end-to-end tests.

This runs Debian's real `mosquitto` binary (no pure-Python stand-in): `make demo` and `make test` install it
when it is missing. Tests that kill or reconfigure a broker start their own with this, never touching the
system broker on 1883.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from gridwatch.errors import GridwatchError


class BrokerError(GridwatchError, RuntimeError):
    """The embedded broker could not be started (binary missing, port busy, crashed)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise BrokerError(
        "the 'mosquitto' broker binary was not found; install it (Debian/Ubuntu: "
        "'sudo apt-get install -y mosquitto') or pass --broker mqtt://HOST:PORT"
    )


class MosquittoBroker:
    """`with MosquittoBroker() as broker: broker.url` — a private broker that lives for the block.

    `stop()` and `start()` can be called again to simulate a broker outage on the same port.
    """

    def __init__(self, port: int | None = None, *, persistence: bool = False,
                 settings: list[str] | None = None) -> None:
        """`settings`: further mosquitto.conf lines (e.g. the shipped config's persistence settings)."""
        self.port = port or free_port()
        self._settings = list(settings or [])
        self._binary = find_mosquitto()
        self._dir = Path(tempfile.mkdtemp(prefix="gridwatch-mosquitto-"))
        self._persistence = persistence
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        conf = self._dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if self._persistence else 'false'}",
            f"persistence_location {self._dir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        lines.extend(self._settings)
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to user `mosquitto`, which cannot write the persistence file in
            # our private (0700) folder: the save fails and sessions do not survive a restart.
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout_s: float = 10.0) -> MosquittoBroker:
        conf = self._write_config()
        with (self._dir / "mosquitto.log").open("ab") as log:
            self._proc = subprocess.Popen([self._binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout_s}s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its persistence file on the way out. Only after `timeout_s` is it
        killed; a kill skips the save and turns a restart into a crash, so the bound is generous (it was 5 s, which
        a loaded machine can reach)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed or power-cycled broker would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def freeze(self) -> None:
        """SIGSTOP: the broker keeps its connections open but answers nothing, as a hung broker does."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after `freeze()`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def log_tail(self, n: int = 2000) -> str:
        path = self._dir / "mosquitto.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
