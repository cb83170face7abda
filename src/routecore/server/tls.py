"""TLS for the gRPC server (config `server.tls`), read once at start-up.

`cert` and `key` are PEM files; with `client_ca` the server also demands a
client certificate signed by that CA (mutual TLS) and refuses the handshake
otherwise. Files are read when the server starts, so a renewed certificate
takes effect on restart.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from routecore.config import TlsConfig
from routecore.errors import ConfigError


def _read(path: str, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"server.tls.{field}: cannot read {path!r} ({exc.strerror})"]) from exc


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Server credentials for `tls`; mTLS when `client_ca` is set."""
    cert, key = _read(tls.cert, "cert"), _read(tls.key, "key")
    for data, field, marker in ((cert, "cert", b"CERTIFICATE"), (key, "key", b"PRIVATE KEY")):
        if b"-----BEGIN" not in data or marker not in data:
            raise ConfigError([f"server.tls.{field}: not a PEM {marker.decode().lower()}"])
    ca = _read(tls.client_ca, "client_ca") if tls.client_ca else None
    return grpc.ssl_server_credentials(((key, cert),), root_certificates=ca,
                                       require_client_auth=ca is not None)
