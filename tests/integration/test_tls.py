"""TLS and mutual TLS over a real server, with throwaway certificates made per test run."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from routecore.config import parse_config
from routecore.errors import ConfigError
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

_PEM = serialization.Encoding.PEM


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any] | None,
          ca: bool) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write_pair(d: Path, stem: str, cert: x509.Certificate,
                key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    (d / f"{stem}.crt").write_bytes(cert.public_bytes(_PEM))
    (d / f"{stem}.key").write_bytes(key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return d / f"{stem}.crt", d / f"{stem}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate it signed."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("routecore test CA", ca_key, None, ca=True)
    out = {"ca": _write_pair(d, "ca", ca, ca_key)[0]}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        out[f"{who}_crt"], out[f"{who}_key"] = _write_pair(
            d, who, _cert(who, key, (ca.subject, ca_key), ca=False), key)
    yield out


def _config(tls: dict[str, str]) -> Any:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["server"] = {"tls": tls}
    return parse_config(raw)


async def _route(port: int, creds: grpc.ChannelCredentials) -> str:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        d = await router_pb2_grpc.RouterStub(ch).Route(pb.RouteRequest(prompt="hello over TLS"),
                                                       timeout=10)
        return str(d.model)


async def test_tls_serves_and_plaintext_is_refused(pki: dict[str, Path], tmp_path: Path) -> None:
    """With server.tls a client trusting the CA gets answers; a plaintext client does not."""
    app = App.from_config(_config({"cert": str(pki["server_crt"]), "key": str(pki["server_key"])}),
                          access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        assert await _route(app.port, grpc.ssl_channel_credentials(pki["ca"].read_bytes()))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await router_pb2_grpc.RouterStub(ch).Route(pb.RouteRequest(prompt="hi"),
                                                           timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(0.5)


async def test_mtls_requires_a_client_certificate(pki: dict[str, Path], tmp_path: Path) -> None:
    """With server.tls.client_ca a client must present a certificate signed by that CA."""
    cfg = _config({"cert": str(pki["server_crt"]), "key": str(pki["server_key"]),
                   "client_ca": str(pki["ca"])})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    ca = pki["ca"].read_bytes()
    try:
        with_cert = grpc.ssl_channel_credentials(ca, pki["client_key"].read_bytes(),
                                                 pki["client_crt"].read_bytes())
        assert await _route(app.port, with_cert)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _route(app.port, grpc.ssl_channel_credentials(ca))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(0.5)


async def test_http_front_door_serves_https_with_the_same_certificate(
        pki: dict[str, Path], tmp_path: Path) -> None:
    """With server.tls the HTTP front door is HTTPS too (client certificate required with
    client_ca): an API key never crosses either door in clear."""
    cfg = _config({"cert": str(pki["server_crt"]), "key": str(pki["server_key"]),
                   "client_ca": str(pki["ca"])})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0, http_port=0)
    assert app.http is not None
    url = f"https://127.0.0.1:{app.http.port}/v1/models"
    try:
        with_cert = ssl.create_default_context(cafile=str(pki["ca"]))
        with_cert.load_cert_chain(str(pki["client_crt"]), str(pki["client_key"]))
        async with httpx.AsyncClient(verify=with_cert) as client:
            res = await client.get(url)
        assert res.status_code == 200 and res.json()["data"]
        without = ssl.create_default_context(cafile=str(pki["ca"]))
        async with httpx.AsyncClient(verify=without) as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(url)  # no client certificate
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(url.replace("https://", "http://"))  # plaintext
    finally:
        await app.stop(0.5)


def test_tls_config_errors_name_the_field(tmp_path: Path) -> None:
    """A missing certificate file or key is a config error naming server.tls.<field>."""
    with pytest.raises(ConfigError) as info:
        _config({"cert": str(tmp_path / "nope.crt"), "key": str(tmp_path / "nope.key")})
    assert "server.tls.cert: no such file" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _config({"cert": str(tmp_path / "nope.crt")})
    assert "server.tls.key: is required" in str(info.value)


@pytest.mark.parametrize(("url", "insecure", "ok"), [
    ("http://api.example.com/v1", False, False),
    ("http://10.0.0.5:8000", False, False),
    ("http://api.example.com/v1", True, True),
    ("https://api.example.com/v1", False, True),
    ("http://127.0.0.1:8090", False, True),
    ("http://localhost:8090", False, True),
    ("http://[::1]:8090", False, True),
])
def test_cleartext_api_key_to_a_remote_host_is_a_config_error(url: str, insecure: bool,
                                                               ok: bool) -> None:
    """An http:// base_url to a non-loopback host with an API key needs allow_insecure: true."""
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["endpoints"]["openai"] = {"kind": "openai", "base_url": url,
                                  "api_key_env": "OPENAI_API_KEY", "allow_insecure": insecure}
    if ok:
        assert parse_config(raw).endpoints["openai"].allow_insecure is insecure
    else:
        with pytest.raises(ConfigError) as info:
            parse_config(raw)
        assert "endpoints.openai.base_url: sends the API key in clear text" in str(info.value)


async def test_cli_client_commands_speak_tls_mtls_and_api_keys(
        pki: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore complete`, `rollout status` and `reload` reach an mTLS server with auth on
    through --tls-ca/--tls-cert/--tls-key and an API key; bad TLS flags are clear errors."""
    import asyncio
    import hashlib

    from routecore.cli import main

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["server"] = {"tls": {"cert": str(pki["server_crt"]), "key": str(pki["server_key"]),
                             "client_ca": str(pki["ca"])}}
    raw["auth"] = {"keys": [{"id": "ops", "sha256": hashlib.sha256(b"rk-ops").hexdigest(),
                             "tenant": "acme", "admin": True}]}
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(raw))
    from routecore.config import load_config

    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    addr = f"127.0.0.1:{app.port}"
    mtls = ["--addr", addr, "--tls-ca", str(pki["ca"]), "--tls-cert", str(pki["client_crt"]),
            "--tls-key", str(pki["client_key"]), "--api-key", "rk-ops"]

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    try:
        code, out, err = await asyncio.to_thread(run, "complete", *mtls, "What is 2 + 2?")
        assert code == 0 and out.strip() and "request" in err
        code, out, _ = await asyncio.to_thread(run, "rollout", "status", "--all", "--json", *mtls)
        assert code == 0 and '"model"' in out
        code, out, _ = await asyncio.to_thread(run, "reload", "--dry-run", *mtls)
        assert code == 0 and "valid" in out
        # No client certificate: the mTLS handshake fails; no key: UNAUTHENTICATED.
        code, _, err = await asyncio.to_thread(run, "complete", "--addr", addr, "--tls-ca",
                                               str(pki["ca"]), "--api-key", "rk-ops", "hi")
        assert code == 2 and "UNAVAILABLE" in err
        code, _, err = await asyncio.to_thread(run, "complete", *mtls[:-2], "hi")
        assert code == 2 and "UNAUTHENTICATED" in err
        code, _, err = await asyncio.to_thread(run, "complete", *mtls[:4], "hi")
        assert code == 2 and "UNAVAILABLE" in err  # plaintext to a TLS port
        code, _, err = await asyncio.to_thread(run, "complete", "--addr", addr, "--tls-cert",
                                               str(pki["client_crt"]), "hi")
        assert code == 2 and "--tls-cert and --tls-key" in err
        code, _, err = await asyncio.to_thread(run, "rollout", "status", "--addr", addr,
                                               "--tls-ca", str(tmp_path / "nope.pem"))
        assert code == 2 and "--tls-ca: cannot read" in err and "Traceback" not in err
    finally:
        await app.stop(0.5)
