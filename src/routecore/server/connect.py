"""How the CLI's client commands (`complete`, `reload`, `rollout status`) reach a running
server: its address, TLS (the server's CA, a client certificate for mTLS) and an API key.

    routecore complete --addr router.internal:443 --tls-ca ca.pem "Hello"
    ROUTECORE_API_KEY=rk-... routecore rollout status --tls      # the system's trusted CAs

Kept free of grpc imports at module level: argparse setup runs on every CLI start.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routecore.errors import InvalidRequest

if TYPE_CHECKING:
    import grpc


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--addr", default="127.0.0.1:50051",
                   help="the server's gRPC address (default: 127.0.0.1:50051)")
    p.add_argument("--tls", action="store_true",
                   help="connect with TLS, trusting the system's CAs (implied by --tls-ca)")
    p.add_argument("--tls-ca", metavar="PEM",
                   help="the CA certificate that signed the server's certificate")
    p.add_argument("--tls-cert", metavar="PEM",
                   help="a client certificate, for a server that requires mTLS")
    p.add_argument("--tls-key", metavar="PEM", help="the client certificate's private key")
    p.add_argument("--api-key", default=None,
                   help="the API key to send (default: $ROUTECORE_API_KEY; needed with auth on)")


def _read(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None


def channel(ns: argparse.Namespace) -> grpc.Channel:
    """A channel to `ns.addr`: TLS when --tls or --tls-ca (and the client pair for mTLS)."""
    import grpc

    if bool(ns.tls_cert) != bool(ns.tls_key):
        raise InvalidRequest("--tls-cert and --tls-key: give both (a client certificate and "
                             "its private key) or neither")
    if not (ns.tls or ns.tls_ca or ns.tls_cert):
        return grpc.insecure_channel(ns.addr)
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(ns.tls_ca, "--tls-ca"),
        private_key=_read(ns.tls_key, "--tls-key"),
        certificate_chain=_read(ns.tls_cert, "--tls-cert"))
    return grpc.secure_channel(ns.addr, creds)


def metadata(ns: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The authorization header for --api-key or $ROUTECORE_API_KEY (none without a key)."""
    key: Any = ns.api_key or os.environ.get("ROUTECORE_API_KEY", "")
    return (("authorization", f"Bearer {key}"),) if key else ()


def unary(ns: argparse.Namespace, rpc: str, request: Any, timeout: float) -> Any:
    """Call the Router service's unary `rpc` on the server `ns` names; a failed call is
    CallFailed (its status and message, never a traceback)."""
    import grpc

    from routecore.server.client import CallFailed
    from routecore.v1 import router_pb2_grpc

    try:
        with channel(ns) as ch:
            stub = router_pb2_grpc.RouterStub(ch)  # type: ignore[no-untyped-call]
            return getattr(stub, rpc)(request, timeout=timeout, metadata=metadata(ns))
    except grpc.RpcError as err:
        raise CallFailed(ns.addr, err) from None
