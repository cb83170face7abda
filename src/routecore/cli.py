"""routecore decides, for every LLM request, which model should answer it, and can make the call.

Cheap, fast models take the easy requests, strong models the hard ones, code goes
to the code model. `routecore serve` runs the gRPC service (and, with
--http-port, an OpenAI-compatible HTTP API); the other commands route a prompt,
call a running server, inspect the model registry and config, and train and
evaluate the learned router.
"""

# Imports are deferred into each command so `routecore --help` starts fast and a
# command loads only what it uses.

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from routecore.errors import RoutecoreError
from routecore.server.connect import add_connection_args


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None,
                   help="config YAML (default: the built-in catalogue and simulated providers)")


def _cmd_serve(ns: argparse.Namespace) -> int:
    import multiprocessing

    from routecore.config import load_config
    from routecore.logs import configure_logging

    configure_logging(ns.log_level, json=True if ns.json_logs else None)
    config = load_config(ns.config)
    port = ns.port if ns.port is not None else config.server.port
    http_port = ns.http_port if ns.http_port is not None else config.server.http_port
    if ns.workers > 1 and http_port == 0:
        raise SystemExit("--workers > 1 needs a fixed --http-port (the workers share it)")
    if ns.workers > 1 and port == 0:
        raise SystemExit("--workers > 1 needs a fixed --port (the workers share it)")
    from routecore.state import parse_state
    from routecore.state.backend import per_process_warning

    warning = per_process_warning(parse_state(config.extra.get("state")), ns.workers)
    if warning:
        import structlog

        structlog.get_logger("routecore.cli").warning("per_process_state", detail=warning)
    group = ns.workers > 1
    if group:  # the group shares its ports (SO_REUSEPORT): first make sure nobody else has them
        from routecore.server.ports import ensure_free

        host = ns.host if ns.host is not None else config.server.host
        ensure_free(host, port, "gRPC")
        if http_port is not None:
            ensure_free(host, http_port, "HTTP")
    from routecore.observe.exposition import multiprocess_metrics

    procs = []
    ctx = multiprocessing.get_context("spawn")
    # With several workers, metrics go through prometheus-client's multiprocess files.
    with multiprocess_metrics(ns.workers > 1) as mark_dead:
        for _ in range(ns.workers - 1):
            proc = ctx.Process(target=_worker, args=(ns.config, ns.host, port, ns.log_level,
                                                     ns.json_logs, http_port, ns.metrics_port),
                               daemon=True)
            proc.start()
            procs.append(proc)
        try:
            _run(_serve(config, ns.host, port, http_port, ns.metrics_port, reuse_port=group,
                        peers=[p.pid for p in procs if p.pid is not None]))
        finally:
            for proc in procs:
                proc.terminate()
                proc.join(5)
                mark_dead(proc.pid)
    return 0


def _run(coro: Any) -> None:
    """Run a coroutine on uvloop (the faster event loop; a dependency)."""
    import uvloop

    uvloop.run(coro)


async def _serve(config: Any, host: str | None, port: int, http_port: int | None,
                 metrics_port: int | None, serve_metrics: bool = True,
                 reuse_port: bool = False, peers: Sequence[int] = ()) -> None:
    from routecore.server.app import serve

    await serve(config, host, port, http_port, metrics_port=metrics_port,
                serve_metrics=serve_metrics, reuse_port=reuse_port, peers=peers)


def _worker(config_path: str | None, host: str | None, port: int, level: str,
            json_logs: bool, http_port: int | None, metrics_port: int | None) -> None:
    """A serving process sharing the port (SO_REUSEPORT); the kernel spreads connections."""
    from routecore.config import load_config
    from routecore.logs import configure_logging

    configure_logging(level, json=True if json_logs else None)
    # Only the first process serves /metrics; this one still records (multiprocess files).
    try:
        _run(_serve(load_config(config_path), host, port, http_port, metrics_port,
                    serve_metrics=False, reuse_port=True))
    except RoutecoreError as exc:  # e.g. the port was taken meanwhile: a line, no traceback
        print(f"routecore: {exc.message}", file=sys.stderr)
        sys.exit(2)


def _constraints(ns: argparse.Namespace) -> Any:
    from routecore.domain import Constraints

    return Constraints(
        max_cost_usd=ns.max_cost, max_latency_ms=ns.max_latency, min_quality=ns.min_quality,
        required_capabilities=frozenset(ns.require or ()), allow_models=frozenset(ns.allow or ()),
        deny_models=frozenset(ns.deny or ()), max_output_tokens=ns.max_output_tokens,
    )


def _cmd_route(ns: argparse.Namespace) -> int:
    from routecore.routing.router import Router

    router = Router.from_config(ns.config)
    text = ns.prompt if ns.prompt != "-" else sys.stdin.read()
    d = router.route(text, strategy=ns.strategy or "", constraints=_constraints(ns),
                     willingness_to_pay=ns.willingness_to_pay)
    if ns.json:
        doc = {f.name: getattr(d, f.name) for f in fields(d)}
        doc["candidates"] = [asdict(c) for c in d.candidates]
        print(json.dumps(doc, indent=2))
        return 0
    print(f"model:      {d.model} ({d.provider}, {d.model_version})")
    then = f" (then {', '.join(d.deployment_order[1:])})" if len(d.deployment_order) > 1 else ""
    print(f"deployment: {d.deployment}{then}")
    print(f"fallbacks:  {', '.join(d.fallbacks) or '-'}")
    print(f"category:   {d.category} (confidence {d.category_confidence:.2f}), "
          f"complexity {d.complexity:.2f}")
    print(f"estimate:   ${d.estimated_cost_usd:.6f}, {d.estimated_latency_ms:.0f} ms, "
          f"quality {d.predicted_quality:.3f}, {d.input_tokens} input tokens, "
          f"~{d.output_tokens:,} output tokens ({d.output_basis or 'default'})")
    print(f"strategy:   {d.strategy}; decided in {d.decision_micros} us")
    print(f"reason:     {d.reason}")
    print("candidates:")
    w = max([len("model"), *(len(c.model) for c in d.candidates)])  # long names stay aligned
    print(f"  {'model':{w}} {'quality':>7} {'cost $':>10} {'latency':>8} {'score':>8}  rejected")
    for c in sorted(d.candidates, key=lambda c: (bool(c.rejected_reason), -c.score)):
        print(f"  {c.model:{w}} {c.predicted_quality:7.3f} {c.estimated_cost_usd:10.6f} "
              f"{c.estimated_latency_ms:7.0f}ms {c.score:8.3f}  {c.rejected_reason or '-'}")
    return 0


def _cmd_models(ns: argparse.Namespace) -> int:
    from routecore.config import load_config

    config = load_config(ns.config)
    if ns.json:
        print(json.dumps({n: {"provider": s.provider, "model_id": s.model_id, "version": s.version,
                              "price_per_mtok": {"input": s.price.input, "output": s.price.output},
                              "context_window": s.context_window,
                              "capabilities": sorted(s.capabilities), "quality": dict(s.quality)}
                          for n, s in config.models.items()}, indent=2))
        return 0
    w = max([len("model"), *(len(n) for n in config.models)])
    pw = max([len("provider"), *(len(s.provider) for s in config.models.values())])
    print(f"{'model':{w}} {'provider':{pw}} {'in $/M':>7} {'out $/M':>8} {'context':>9}  "
          f"capabilities")
    for s in config.models.values():
        print(f"{s.name:{w}} {s.provider:{pw}} {s.price.input:7.2f} {s.price.output:8.2f} "
              f"{s.context_window:9d}  {','.join(sorted(s.capabilities))}")
    return 0


def validate_all(config: Any) -> None:
    """Validate the sections owned by later layers too (completion, learned, A/B)."""
    from routecore.calling.completion import parse_settings
    from routecore.learned.feedback import feedback_path
    from routecore.observe.regression import parse_alerts
    from routecore.observe.settings import parse_audit, parse_metrics
    from routecore.observe.telemetry import parse_telemetry
    from routecore.routing.router import Router
    from routecore.server.identity import parse_auth
    from routecore.state import parse_state
    from routecore.state.budget import check_keys, parse_budgets

    parse_settings(config)
    feedback_path(config.extra)
    parse_state(config.extra.get("state"))
    parse_audit(config)
    parse_metrics(config)
    parse_telemetry(config)
    parse_alerts(config)
    budgets = parse_budgets(config.extra.get("budgets"))
    Router.from_config(config)
    auth = parse_auth(config)
    check_keys(budgets, auth.key_ids() if auth is not None else None)


def _cmd_check_config(ns: argparse.Namespace) -> int:
    from routecore.config import load_config, missing_api_keys

    config = load_config(ns.file)
    validate_all(config)
    for warning in missing_api_keys(config):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{ns.file}: ok ({len(config.models)} models, {len(config.categories)} categories, "
          f"{len(config.endpoints)} endpoints)")
    return 0


EXAMPLES = """examples:
  routecore serve --http-port 8080                  gRPC on :50051, OpenAI API on :8080
  routecore route "Prove that there are infinitely many primes"
  routecore route --strategy cost --min-quality 0.8 "Summarize this: ..."
  routecore complete "Write a haiku about rain"     call a running server
  routecore models                                  the model registry and prices
  routecore check-config my.yaml                    validate a config

Run `routecore COMMAND --help` for a command's options."""


def _version() -> str:
    from routecore import __version__

    return f"routecore {__version__}"


def _route_args(p: argparse.ArgumentParser) -> None:
    """The strategy and constraint options shared by `route` and `complete`."""
    from routecore.domain import CAPABILITIES, STRATEGIES

    p.add_argument("--strategy", default=None, choices=STRATEGIES,
                   help="routing strategy (default: the config's routing.default_strategy)")
    p.add_argument("--max-cost", type=float, default=None, metavar="USD",
                   help="reject models whose estimated cost exceeds this")
    p.add_argument("--max-latency", type=float, default=None, metavar="MS",
                   help="reject models whose estimated latency exceeds this")
    p.add_argument("--min-quality", type=float, default=None, metavar="Q",
                   help="reject models whose predicted quality is below this (0-1)")
    p.add_argument("--max-output-tokens", type=int, default=None, metavar="N",
                   help="expected answer length; the prompt plus N must fit the context window")
    p.add_argument("--require", action="append", metavar="CAP", choices=CAPABILITIES,
                   help=f"required capability, repeatable ({', '.join(CAPABILITIES)})")
    p.add_argument("--allow", action="append", metavar="MODEL",
                   help="only consider this model (repeatable)")
    p.add_argument("--deny", action="append", metavar="MODEL",
                   help="never choose this model (repeatable)")
    p.add_argument("--willingness-to-pay", type=float, default=None, metavar="W",
                   help="learned strategy: 0 cheapest acceptable ... 1 best predicted quality")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routecore", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gRPC service (and the OpenAI-compatible HTTP API)",
                       description="Serve routecore.v1.Router over gRPC; --http-port adds the "
                                   "OpenAI-compatible HTTP API in the same process.")
    _config_arg(p)
    p.add_argument("--host", default=None, help="address to bind (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help="gRPC port (default: server.port, 50051; 0 picks a free one)")
    p.add_argument("--http-port", type=int, default=None,
                   help="also serve the OpenAI-compatible HTTP API (/v1/chat/completions) on "
                        "this port (default: server.http_port; none when unset)")
    p.add_argument("--workers", type=int, default=1, help="serving processes sharing the port")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus text at /metrics on this port (default: metrics.port)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="log level (default: info)")
    p.add_argument("--json-logs", action="store_true", help="JSON lines even on a terminal")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("route", help="route one prompt and explain the decision",
                       description="Decide which model should answer a prompt (in process, no "
                                   "server needed) and explain why, candidate by candidate.")
    _config_arg(p)
    p.add_argument("prompt", help="the prompt text ('-' reads stdin)")
    _route_args(p)
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=_cmd_route)

    p = sub.add_parser("complete", help="ask a running server to route and answer a prompt",
                       description="Call Complete (or CompleteStream) on a running routecore "
                                   "server over gRPC; the answer goes to stdout, a summary "
                                   "(model, cost, latency, request id) to stderr.")
    p.add_argument("prompt", help="the prompt text ('-' reads stdin)")
    add_connection_args(p)
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0-2)")
    p.add_argument("--cascade", action="store_true",
                   help="try the cheapest acceptable model first, escalate on low confidence")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="deadline for the whole call in seconds (default: 60)")
    p.add_argument("--cache", choices=("default", "bypass", "refresh", "allow"), default="",
                   help="response cache policy (the server's `cache` section): bypass it, "
                        "refresh it, or allow it with temperature > 0")
    p.add_argument("--cache-max-age", type=int, default=0, metavar="S",
                   help="accept a cached answer at most S seconds old (default: any)")
    _route_args(p)
    p.add_argument("--json", action="store_true", help="print the whole response as JSON")
    p.set_defaults(func=_cmd_complete)

    p = sub.add_parser("models", help="list the model registry")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file", help="the config YAML to validate")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("sim-provider",
                       help="run the simulated provider as an OpenAI-compatible HTTP server")
    _config_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="port (default: 8090)")
    p.set_defaults(func=_cmd_sim_provider)

    _add_optional_commands(sub)
    return parser


def _cmd_complete(ns: argparse.Namespace) -> int:
    from routecore.server.client import run

    return run(ns, ns.prompt if ns.prompt != "-" else sys.stdin.read())


def _cmd_sim_provider(ns: argparse.Namespace) -> int:
    from routecore.calling.providers.sim_server import run_sim_server
    from routecore.config import load_config
    from routecore.logs import configure_logging

    configure_logging("info")
    run_sim_server(ns.host, ns.port, load_config(ns.config))
    return 0


def _add_optional_commands(sub: Any) -> None:
    """Commands owned by other modules register themselves here."""
    from routecore.learned.commands import add_commands as add_learned_commands
    from routecore.learned.replay import add_commands as add_replay_commands
    from routecore.observe.commands import add_commands as add_audit_commands
    from routecore.server.commands import add_commands as add_server_commands
    from routecore.server.reload_cli import add_commands as add_reload_commands
    from routecore.server.rollout_cli import add_commands as add_rollout_commands

    add_learned_commands(sub)
    add_audit_commands(sub)
    add_replay_commands(sub)
    add_server_commands(sub)
    add_rollout_commands(sub)
    add_reload_commands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        code: int = ns.func(ns)
    except RoutecoreError as exc:
        print(f"routecore: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `routecore route ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0
    except OSError as exc:  # a port in use, an unreadable file: the user's to fix, not a bug
        print(f"routecore: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
