"""The `audit` and `metrics` config sections, validated once into frozen settings.

    audit:
      enabled: true            # default true
      path: /var/lib/routecore/audit.db   # SQLite (WAL); default below
      postgres_dsn: ""         # set: PostgreSQL through asyncpg instead of SQLite
      store_prompts: false     # false: only the prompt's SHA-256 and replay features
      retention_days: 30       # 0 keeps rows forever
      queue_size: 20000        # records waiting for the writer; beyond: dropped, counted
      batch_size: 1000
      flush_interval_s: 0.1
    metrics:
      port: 0                  # 0: no /metrics endpoint (or `serve --metrics-port N`)
      host: 127.0.0.1
      reference_model: ""      # default: the model with the highest default quality
      window_s: 300            # the live gauges' sliding window
      acceptable_score: 0.7    # feedback score at or above which an answer was acceptable
      max_tenants: 100         # distinct tenant label values; the rest are "other"

With no `audit` section the trail is on and goes to SQLite under the user's
state directory (`$XDG_STATE_HOME/routecore/audit.db`, else
`~/.local/state/routecore/audit.db`), never into the current directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from routecore.config import Config, _Reader
from routecore.errors import ConfigError

_AUDIT = {"enabled", "path", "postgres_dsn", "store_prompts", "retention_days", "queue_size",
          "batch_size", "flush_interval_s"}
_METRICS = {"port", "host", "reference_model", "window_s", "acceptable_score", "max_tenants"}


def default_audit_path(env: Mapping[str, str] | None = None) -> str:
    """$XDG_STATE_HOME/routecore/audit.db, else ~/.local/state/routecore/audit.db."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return str(Path(base) / "routecore" / "audit.db")


@dataclass(frozen=True, slots=True)
class AuditSettings:
    enabled: bool
    path: str
    postgres_dsn: str
    store_prompts: bool
    retention_days: float
    queue_size: int
    batch_size: int
    flush_interval_s: float

    @property
    def target(self) -> str:
        """Where records go: the DSN when set, else the SQLite path."""
        return self.postgres_dsn or self.path


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    port: int
    host: str
    reference_model: str
    window_s: float
    acceptable_score: float
    max_tenants: int


def parse_audit(config: Config) -> AuditSettings:
    """Validate `audit`; raises ConfigError naming each bad field."""
    r = _Reader()
    n = r.mapping(config.extra.get("audit"), "audit", required=False)
    r.unknown(n, "audit", _AUDIT)
    p = "audit"
    path = r.get(n, "path", p, str, "")
    dsn = r.get(n, "postgres_dsn", p, str, "")
    if dsn and not dsn.startswith(("postgres://", "postgresql://")):
        r.fail("audit.postgres_dsn", "must be a postgresql:// URL")
    if "path" in n and not path:
        r.fail("audit.path", "must be a non-empty path")
    settings = AuditSettings(
        enabled=r.get(n, "enabled", p, bool, True),
        path=path or default_audit_path(),
        postgres_dsn=dsn or "",
        store_prompts=r.get(n, "store_prompts", p, bool, False),
        retention_days=r.number(n, "retention_days", p, lo=0.0, default=30.0),
        queue_size=r.number(n, "queue_size", p, lo=1, hi=10_000_000, integer=True, default=20_000),
        batch_size=r.number(n, "batch_size", p, lo=1, hi=100_000, integer=True, default=1000),
        flush_interval_s=r.number(n, "flush_interval_s", p, lo=0.001, hi=60.0, default=0.1),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings


def default_reference_model(config: Config) -> str:
    """The model with the highest default quality (ties: the first in the config)."""
    best = max(config.models.values(), key=lambda s: s.quality_for("default"))
    return best.name


def parse_metrics(config: Config) -> MetricsSettings:
    """Validate `metrics`; raises ConfigError naming each bad field."""
    r = _Reader()
    n = r.mapping(config.extra.get("metrics"), "metrics", required=False)
    r.unknown(n, "metrics", _METRICS)
    p = "metrics"
    ref = r.get(n, "reference_model", p, str, "")
    if ref and ref not in config.models:
        r.fail("metrics.reference_model", f"unknown model {ref!r}")
    settings = MetricsSettings(
        port=r.number(n, "port", p, lo=0, hi=65535, integer=True, default=0),
        host=r.get(n, "host", p, str, "127.0.0.1") or "127.0.0.1",
        reference_model=ref or default_reference_model(config),
        window_s=r.number(n, "window_s", p, lo=1.0, hi=86_400.0, default=300.0),
        acceptable_score=r.number(n, "acceptable_score", p, lo=0.0, hi=1.0, default=0.7),
        max_tenants=r.number(n, "max_tenants", p, lo=1, hi=10_000, integer=True, default=100),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings
