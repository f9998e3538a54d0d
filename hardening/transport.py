"""How the tool reaches hosts over OpenSSH: one generated client config, one way to read failures.

The config is strict (``StrictHostKeyChecking yes`` against the inventory's known_hosts file,
``BatchMode``) and gives each host a ControlPath, so that a check's own call after the
observation batch reuses the connection instead of paying another handshake.
"""

from __future__ import annotations

from pathlib import Path

from hardening.plan import Plan


def ssh_config(plans: list[Plan], workdir: Path) -> Path:
    """An OpenSSH client config: strict host keys, batch mode, one shared connection per host."""
    lines: list[str] = []
    for p in plans:
        if p.ssh is None:
            continue
        s = p.ssh
        known = s.known_hosts or str(Path.home() / ".ssh" / "known_hosts")
        lines += [f"Host {p.name}", f"  HostName {s.hostname}", f"  Port {s.port}"]
        if s.user:
            lines.append(f"  User {s.user}")
        if s.key:
            lines += [f"  IdentityFile {s.key}", "  IdentitiesOnly yes"]
        lines += [f"  UserKnownHostsFile {known}",
                  "  StrictHostKeyChecking yes",
                  "  BatchMode yes",
                  "  ConnectTimeout 10",
                  "  ServerAliveInterval 15",
                  "  ControlMaster auto",
                  f"  ControlPath {workdir}/cm-%C",
                  "  ControlPersist 120",
                  "  LogLevel ERROR",
                  ""]
    path = workdir / "ssh_config"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def sudo_refused(stderr: str) -> bool:
    """sudo said no (a password or a terminal wanted, no rule for the account)."""
    return any(s in stderr for s in ("password is required", "terminal is required", "sudoers",
                                     "may not run sudo", "not allowed"))


def classify_ssh_failure(rc: int, stderr: str, sudo: bool) -> tuple[str, str]:
    """(reason, message) for a host that did not answer, from what ssh and sudo printed."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else f"exit {rc}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        return "host-key", f"host key verification failed (not the key in known_hosts): {last}"
    if "Permission denied" in text and rc == 255:
        return "auth", f"SSH login refused: {last}"
    if rc == 255:
        if any(s in text for s in ("closed by remote host", "Broken pipe", "Connection reset", "not responding")):
            return "connection-lost", f"connection lost during the run: {last}"
        return "unreachable", f"unreachable: {last}"
    if sudo and sudo_refused(text):
        return "sudo", f"sudo refused for the checking account (needs passwordless sudo): {last}"
    return "unreachable", f"preflight failed: {last}"
