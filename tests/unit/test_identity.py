"""API keys: the `auth` config, `routecore keys create`, and what a key lets a request do."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from routecore.cli import main
from routecore.config import load_config, parse_config
from routecore.domain import Constraints, RouteRequest
from routecore.errors import ConfigError, PermissionDenied, Unauthenticated
from routecore.server.identity import Authenticator, Identity, parse_auth


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text())
    return raw


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_keys_create_prints_a_key_that_authenticates(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The printed key authenticates as the printed entry's tenant, user and id once the entry
    is pasted into auth.keys_file."""
    assert main(["keys", "create", "--tenant", "acme", "--user", "bob", "--id", "acme-bob"]) == 0
    out = capsys.readouterr().out
    key = out.split("\n")[1].strip()
    entry_yaml = out.split("auth.keys_file):\n", 1)[1]
    (tmp_path / "keys.yaml").write_text(entry_yaml)
    raw = _raw()
    raw["auth"] = {"keys_file": "keys.yaml"}
    (tmp_path / "routecore.yaml").write_text(yaml.safe_dump(raw))
    auth = parse_auth(load_config(tmp_path / "routecore.yaml"))
    assert auth is not None and key.startswith("rk-") and key not in entry_yaml
    ident = auth.authenticate(f"Bearer {key}")
    assert (ident.tenant, ident.user, ident.key_id) == ("acme", "bob", "acme-bob")
    assert auth.authenticate(f"Bearer {key}") is ident  # cached
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {key[:-1]}")


@pytest.mark.parametrize(("auth", "needle"), [
    ({"keys": [{"id": "a", "sha256": "abc", "tenant": "t"}]}, "auth.keys[0].sha256: must be 64 hex"),
    ({"keys": [{"sha256": "a" * 64, "tenant": "t"}]}, "auth.keys[0].id: is required"),
    ({"keys": [{"id": "a", "sha256": "a" * 64}]}, "auth.keys[0].tenant: is required"),
    ({"keys": [{"id": "a", "sha256": "a" * 64, "tenant": "t", "models": ["gpt-9"]}]},
     "auth.keys[0].models[0]: unknown model 'gpt-9'"),
    ({"keys": [{"id": "a", "sha256": "a" * 64, "tenant": "t", "strategies": ["vibes"]}]},
     "auth.keys[0].strategies[0]: must be one of"),
    ({"keys": [{"id": "a", "sha256": "a" * 64, "tenant": "t", "role": "admin"}]},
     "auth.keys[0].role: unknown field"),
    ({"keys": [{"id": "a", "sha256": "a" * 64, "tenant": "t"},
               {"id": "a", "sha256": "b" * 64, "tenant": "t"}]}, "auth.keys[1].id: duplicate id"),
    ({"keys": [{"id": "a", "sha256": "a" * 64, "tenant": "t"},
               {"id": "b", "sha256": "A" * 64, "tenant": "u"}]}, "auth.keys[1].sha256: the same key"),
    ({"keys_file": "/nonexistent/keys.yaml"}, "auth.keys_file: cannot read"),
    ({"keys": []}, "auth: lists no key"),
    ({"key": []}, "auth.key: unknown field"),
])
def test_bad_auth_config_names_the_field(auth: dict[str, Any], needle: str) -> None:
    """Each mistake in the auth section is a ConfigError naming the exact field."""
    raw = _raw()
    raw["auth"] = auth
    with pytest.raises(ConfigError) as info:
        parse_auth(parse_config(raw))
    assert needle in str(info.value), str(info.value)


def test_no_auth_section_means_auth_off() -> None:
    """Without an `auth` section nothing is required of callers."""
    assert parse_auth(load_config(None)) is None


def test_scope_narrows_but_never_widens() -> None:
    """A key fills tenant, user and key_id, keeps a narrower user or model list, and refuses
    another tenant, another user or a model or strategy outside its lists."""
    ident = Identity(key_id="k1", tenant="acme", models=frozenset({"a", "b"}),
                     strategies=("cost", "latency"))
    req = ident.scope(RouteRequest(prompt="hi", user="alice"), "multi_objective")
    assert (req.tenant, req.user, req.key_id, req.strategy) == ("acme", "alice", "k1", "cost")
    assert req.constraints.allow_models == {"a", "b"}
    narrow = ident.scope(RouteRequest(prompt="hi", tenant="acme", strategy="latency",
                                      constraints=Constraints(allow_models=frozenset({"a"}))),
                         "cost")
    assert narrow.constraints.allow_models == {"a"} and narrow.strategy == "latency"
    for bad in (RouteRequest(prompt="hi", tenant="globex"),
                RouteRequest(prompt="hi", strategy="quality"),
                RouteRequest(prompt="hi", constraints=Constraints(allow_models=frozenset({"c"})))):
        with pytest.raises(PermissionDenied):
            ident.scope(bad, "cost")
    pinned = Identity(key_id="k2", tenant="acme", user="bob")
    assert pinned.scope(RouteRequest(prompt="hi"), "cost").user == "bob"
    with pytest.raises(PermissionDenied):
        pinned.scope(RouteRequest(prompt="hi", user="alice"), "cost")


@pytest.mark.parametrize("value", [None, "", "Bearer", "Bearer  ", "Token abc", "abc",
                                   "Bearer " + "x" * 600, "Bearer a b"])
def test_malformed_authorization_is_unauthenticated(value: str | None) -> None:
    """Missing, malformed or oversized authorization values are Unauthenticated."""
    auth = Authenticator({_sha("abc"): Identity(key_id="k", tenant="t")})
    with pytest.raises(Unauthenticated):
        auth.authenticate(value)
    assert auth.authenticate("bearer abc").tenant == "t"
