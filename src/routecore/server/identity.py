"""Who is calling: API keys to identities, for every front door (gRPC and HTTP).

Transport-independent on purpose: the gRPC interceptor and the OpenAI-compatible
HTTP front door both do the same three steps, and only the first differs:

1. take the `authorization` header value (gRPC metadata key `authorization`,
   HTTP header `Authorization`) as a str, or None when absent;
2. `identity = authenticator.authenticate(value)` -> `Identity`, or raises
   `Unauthenticated` (missing, malformed or unknown key; the key is never echoed);
3. `req = identity.scope(route_request, default_strategy)` before routing -> the
   request with tenant, user and key_id taken from the key and the model allow
   list applied, or raises `PermissionDenied` (another tenant, another user, a
   model or strategy outside the key's lists). Feedback's model goes through
   `identity.check_model(model, field)`; lookups by request id use
   `identity.tenant` as the owner (see `routecore.learned.outcomes`).

Both errors belong to the one taxonomy (`routecore.errors`), so each front door
maps them as it maps every other error (gRPC UNAUTHENTICATED / PERMISSION_DENIED,
HTTP 401 / 403).

Config (`auth`, validated by `parse_auth`)::

    auth:
      keys:                          # and/or keys_file: keys.yaml (the same list)
        - id: acme-backend           # names the key in logs and per-key budgets
          sha256: 9f86d08...         # hex SHA-256 of the key; no key is stored in clear
          tenant: acme
          user: svc-backend          # optional: pins the user
          models: [gpt-4o-mini]      # optional allow list (default: every model)
          strategies: [cost]         # optional allow list (default: every strategy)
          admin: false               # true: may call admin RPCs (Reload); default false

`routecore keys create --tenant acme` prints a new key and its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from routecore.config import Config, _Reader
from routecore.domain import STRATEGIES, RouteRequest
from routecore.errors import ConfigError, PermissionDenied, Unauthenticated, echo

KEY_PREFIX = "rk-"
# Longest authorization value looked at; a real one is ~50 characters.
MAX_AUTHORIZATION = 512
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller proven by an API key: whose requests these are, and what they may use.

    Empty `models` / `strategies` mean "no restriction"."""

    key_id: str
    tenant: str
    user: str = ""
    models: frozenset[str] = frozenset()
    strategies: tuple[str, ...] = ()
    admin: bool = False  # may call admin RPCs (Reload)

    def require_admin(self, what: str) -> None:
        """PermissionDenied unless this key is an admin key."""
        if not self.admin:
            raise PermissionDenied(f"{what}: API key {self.key_id} is not an admin key "
                                   "(an operator gives a key `admin: true` in auth.keys)")

    def scope(self, req: RouteRequest, default_strategy: str) -> RouteRequest:
        """`req` as this caller may send it: tenant, user and key_id from the key.

        The request may narrow (name its own tenant, or a user when the key pins
        none) but never widen: another tenant, another user than the key's, or a
        model or strategy outside the key's lists is PermissionDenied. With no
        strategy named, the default is used if allowed, else the key's first.
        """
        if req.tenant and req.tenant != self.tenant:
            raise PermissionDenied(f"tenant: this API key ({self.key_id}) belongs to tenant "
                                   f"{self.tenant!r} and cannot act for {echo(req.tenant)}")
        if self.user and req.user and req.user != self.user:
            raise PermissionDenied(f"user: this API key ({self.key_id}) belongs to user "
                                   f"{self.user!r} and cannot act for {echo(req.user)}")
        strategy = req.strategy
        if self.strategies:
            if not strategy:
                strategy = default_strategy if default_strategy in self.strategies \
                    else self.strategies[0]
            elif strategy not in self.strategies:
                raise PermissionDenied(
                    f"strategy: {echo(strategy)} is not allowed for API key {self.key_id} "
                    f"(allowed: {', '.join(self.strategies)})")
        constraints = req.constraints
        if self.models:
            asked = constraints.allow_models
            outside = sorted(asked - self.models)
            if outside:
                self.check_model(outside[0], "constraints.allow_models")
            constraints = replace(constraints, allow_models=asked or self.models)
        return replace(req, tenant=self.tenant, user=self.user or req.user, key_id=self.key_id,
                       strategy=strategy, constraints=constraints)

    def check_model(self, model: str, field: str) -> None:
        """PermissionDenied when `model` is outside the key's allow list."""
        if self.models and model not in self.models:
            raise PermissionDenied(f"{field}: model {echo(model)} is not allowed for API key "
                                   f"{self.key_id} (allowed: {', '.join(sorted(self.models))})")


class Authenticator:
    """API key -> Identity. Built once at start-up from `parse_auth`; thread-safe reads.

    A key is found by its SHA-256 digest in a dict (so the lookup time says
    nothing about any key's bytes) and confirmed with a constant-time compare.
    Valid keys are cached by their token, so a known caller pays one dict
    lookup, not a hash; unknown tokens are never cached (a client sending
    random keys cannot grow memory).
    """

    __slots__ = ("_by_digest", "_cache")

    def __init__(self, keys: Mapping[str, Identity]) -> None:
        """`keys`: hex SHA-256 digest -> the identity it proves."""
        self._by_digest = {bytes.fromhex(d): (bytes.fromhex(d), ident) for d, ident in keys.items()}
        self._cache: dict[str, Identity] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    def take_keys(self, other: Authenticator) -> None:
        """Serve `other`'s keys from now on (a config reload): a removed key stops working
        at once, for every door holding this authenticator."""
        self._by_digest = other._by_digest
        self._cache = {}

    def key_ids(self) -> frozenset[str]:
        """Every configured key's id (budgets.keys names them)."""
        return frozenset(ident.key_id for _, ident in self._by_digest.values())

    def authenticate(self, authorization: str | None) -> Identity:
        """The identity proven by an `authorization` value ("Bearer <key>")."""
        if authorization is not None:
            hit = self._cache.get(authorization)
            if hit is not None:
                return hit
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = self._by_digest.get(digest)
        # The compare is redundant after a dict hit but constant-time, whatever the
        # dict's own equality check does on a hash collision.
        if found is None or not hmac.compare_digest(found[0], digest):
            raise Unauthenticated("authorization: unknown API key")
        ident = found[1]
        if authorization is not None and len(self._cache) < 4 * len(self._by_digest) + 16:
            self._cache[authorization] = ident
        return ident


def bearer_token(authorization: str | None) -> str:
    """The key in "Bearer <key>"; Unauthenticated (never echoing it) when absent or malformed."""
    if not authorization:
        raise Unauthenticated("authorization: missing; send metadata "
                              "'authorization: Bearer <API key>'")
    if len(authorization) > MAX_AUTHORIZATION:
        raise Unauthenticated(f"authorization: longer than {MAX_AUTHORIZATION} characters")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or not token.isprintable() or " " in token:
        raise Unauthenticated("authorization: must be 'Bearer <API key>'")
    return token


def new_key() -> tuple[str, str]:
    """(key, hex SHA-256): 256 random bits, URL-safe, with a recognisable prefix."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


def key_entry(digest: str, tenant: str, user: str = "", key_id: str = "") -> dict[str, str]:
    """The `auth.keys` entry for a key (what `routecore keys create` prints)."""
    entry = {"id": key_id or f"{tenant}-{digest[:8]}", "sha256": digest, "tenant": tenant}
    if user:
        entry["user"] = user
    return entry


# -- config ----------------------------------------------------------------------

_KEY_FIELDS = {"id", "sha256", "tenant", "user", "models", "strategies", "admin"}


def parse_auth(config: Config) -> Authenticator | None:
    """The `auth` section as an Authenticator; None when auth is off (no section, no keys).

    Raises ConfigError naming each bad field (`auth.keys[2].sha256: ...`).
    """
    raw = config.extra.get("auth")
    if raw is None:
        return None
    r = _Reader()
    node = r.mapping(raw, "auth")
    r.unknown(node, "auth", {"keys", "keys_file"})
    entries: list[tuple[str, Any]] = []
    keys = r.get(node, "keys", "auth", list, [])
    entries += [(f"auth.keys[{i}]", k) for i, k in enumerate(keys or [])]
    keys_file = r.get(node, "keys_file", "auth", str, "")
    if keys_file:
        entries += _read_keys_file(r, keys_file, config.source)
    out: dict[str, Identity] = {}
    ids: dict[str, str] = {}
    for path, entry in entries:
        parsed = _key(r, path, entry, config)
        if parsed is None:
            continue
        digest, ident = parsed
        if digest in out:
            r.fail(f"{path}.sha256", f"the same key as {ids[out[digest].key_id]}")
        elif ident.key_id in ids:
            r.fail(f"{path}.id", f"duplicate id {ident.key_id!r} (also {ids[ident.key_id]})")
        else:
            out[digest] = ident
            ids[ident.key_id] = path
    if not entries and not r.problems:
        r.fail("auth", "lists no key (give auth.keys or auth.keys_file, or drop the section)")
    if r.problems:
        raise ConfigError(r.problems)
    return Authenticator(out)


def _read_keys_file(r: _Reader, keys_file: str, source: str) -> list[tuple[str, Any]]:
    path = Path(keys_file)
    if not path.is_absolute() and not source.startswith("<"):
        path = Path(source).parent / path  # relative to the config file
    try:
        doc = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        r.fail("auth.keys_file", f"cannot read {str(path)!r} ({exc.strerror})")
        return []
    except yaml.YAMLError as exc:
        r.fail("auth.keys_file", f"{str(path)!r} is not valid YAML ({exc})")
        return []
    if isinstance(doc, dict) and set(doc) == {"keys"}:
        doc = doc["keys"]  # accept `keys: [...]` as well as a bare list
    if not isinstance(doc, list):
        r.fail("auth.keys_file", f"{str(path)!r} must hold a list of keys")
        return []
    return [(f"auth.keys_file[{i}]", k) for i, k in enumerate(doc)]


def _key(r: _Reader, path: str, entry: Any, config: Config) -> tuple[str, Identity] | None:
    n = r.mapping(entry, path)
    if not n:
        return None
    r.unknown(n, path, _KEY_FIELDS)
    problems = len(r.problems)
    key_id = r.get(n, "id", path, str)
    tenant = r.get(n, "tenant", path, str)
    digest = r.get(n, "sha256", path, str)
    user = r.get(n, "user", path, str, "") or ""
    admin = bool(r.get(n, "admin", path, bool, False))
    for field, value in (("id", key_id), ("tenant", tenant)):
        if value is not None and not value.strip():
            r.fail(f"{path}.{field}", "must be a non-empty string")
    if digest is not None:
        digest = digest.strip().lower()
        if len(digest) != 64 or not set(digest) <= _HEX:
            r.fail(f"{path}.sha256", "must be 64 hex digits (the SHA-256 of the key: "
                                     "`routecore keys create` prints it)")
    models = r.strings(n, "models", path)
    for i, m in enumerate(models):
        if m not in config.models:
            r.fail(f"{path}.models[{i}]", f"unknown model {m!r}")
    strategies = r.strings(n, "strategies", path)
    for i, s in enumerate(strategies):
        if s not in STRATEGIES:
            r.fail(f"{path}.strategies[{i}]", f"must be one of {', '.join(STRATEGIES)}")
    if len(r.problems) > problems or not (key_id and tenant and digest):
        return None
    return digest, Identity(key_id=key_id, tenant=tenant, user=user, models=frozenset(models),
                            strategies=tuple(dict.fromkeys(strategies)), admin=admin)


def authorization_of(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The `authorization` value in gRPC invocation metadata, or None."""
    for key, value in metadata or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None
