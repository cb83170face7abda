"""Listening ports: who may share one, and a clear answer when it is taken.

`routecore serve` binds without SO_REUSEPORT, so a second server (or any other
program) on the same port is an error, not a silent split of the traffic. Only
the processes of one `--workers N` group share a port: the parent checks that
the port is free with a plain bind (which fails whenever anything listens
there, SO_REUSEPORT or not) before it starts them, and then they all bind with
SO_REUSEPORT.
"""

from __future__ import annotations

import errno
import socket

from routecore.errors import AddressInUse


def why_not_free(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound right now (None: it can)."""
    name = host.strip("[]") or None
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror})"
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is fine
            try:
                s.bind(addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "the address is already in use (another routecore serve or another program)"
                return exc.strerror or str(exc)
    return None


def ensure_free(host: str, port: int, what: str) -> None:
    """Raise AddressInUse naming `what` (e.g. "gRPC") when `host:port` is taken."""
    reason = why_not_free(host, port)
    if reason is not None:
        raise AddressInUse(f"cannot serve {what} on {host}:{port}: {reason}")
