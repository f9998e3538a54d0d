"""A minimal QMP client over a unix socket: one connection per call, no library needed.

QMP accepts one client at a time per socket, so each call connects, negotiates capabilities,
runs one command and disconnects; the CLI and a test can then take turns on the same VM.
HMP (the human monitor) is reached through QMP's ``human-monitor-command``.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from hardening.lab.errors import LabError


class QMP:
    """Talks to one QEMU process through its QMP socket."""

    def __init__(self, path: Path, timeout: float = 30) -> None:
        self.path = path
        self.timeout = timeout

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one QMP command and return its ``return`` value; a QMP error raises LabError."""
        with self._connect() as sock:
            reader = sock.makefile("r", encoding="utf-8")
            self._read(reader)  # greeting
            self._send(sock, {"execute": "qmp_capabilities"})
            self._reply(reader)
            message: dict[str, Any] = {"execute": command}
            if arguments:
                message["arguments"] = arguments
            self._send(sock, message)
            return self._reply(reader)

    def hmp(self, command_line: str) -> str:
        """Run a human monitor command; returns its text output."""
        return str(self.execute("human-monitor-command", {"command-line": command_line}))

    def status(self) -> str:
        """The run state: ``running``, ``paused``, ``inmigrate``, ``postmigrate``, ..."""
        return str(self.execute("query-status")["status"])

    def wait_socket(self, timeout: float) -> None:
        """Wait until QEMU listens on the socket (it appears a moment after the process)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("query-status")
                return
            except LabError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise LabError(f"cannot reach QEMU at {self.path}: {exc.strerror or exc}") from None
        return sock

    @staticmethod
    def _send(sock: socket.socket, message: dict[str, Any]) -> None:
        sock.sendall(json.dumps(message).encode() + b"\n")

    def _read(self, reader: Any) -> dict[str, Any]:
        try:
            line = reader.readline()
        except OSError as exc:
            raise LabError(f"QEMU at {self.path} did not answer: {exc}") from None
        if not line:
            raise LabError(f"QEMU at {self.path} closed the connection")
        return dict(json.loads(line))

    def _reply(self, reader: Any) -> Any:
        """The next reply, skipping asynchronous events."""
        while True:
            message = self._read(reader)
            if "event" in message:
                continue
            if "error" in message:
                raise LabError(f"QEMU: {message['error'].get('desc', message['error'])}")
            return message.get("return")
