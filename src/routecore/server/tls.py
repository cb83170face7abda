"""TLS for both doors (config `server.tls`), read once at start-up.

`cert` and `key` are PEM files; with `client_ca` the server also demands a
client certificate signed by that CA (mutual TLS) and refuses the handshake
otherwise. The gRPC server and the HTTP front door use the same files, so an
API key never crosses either door in clear. Files are read when the server
starts, so a renewed certificate takes effect on restart.
"""

from __future__ import annotations

import ssl
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


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The HTTP front door's server context for `tls` (TLS 1.2+); mTLS when `client_ca` is set."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
        if tls.client_ca:
            ctx.load_verify_locations(tls.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"server.tls: cannot load the certificate, key or client_ca ({exc})"]) \
            from exc
    return ctx
