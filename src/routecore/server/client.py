"""`routecore complete`: one Complete (or CompleteStream) call to a running server over gRPC.

    routecore complete "Write a haiku about rain"                 # the answer on stdout
    routecore complete --stream --strategy cost "Summarize: ..."  # printed as it arrives
    routecore complete --json "What is 2+2?"                      # the whole response

The answer goes to stdout and a one-line summary (model, cost, latency, request
id) to stderr, so `routecore complete ... > answer.txt` keeps only the answer.
A failed call prints its gRPC status and message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from routecore.errors import RoutecoreError
from routecore.server.connect import channel, metadata
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc


class CallFailed(RoutecoreError):
    """The server answered with an error status (or could not be reached)."""

    def __init__(self, addr: str, err: grpc.RpcError) -> None:
        code = err.code()  # type: ignore[attr-defined]
        hint = f" (is `routecore serve` running on {addr}?)" \
            if code == grpc.StatusCode.UNAVAILABLE else ""
        super().__init__(f"{code.name}: {err.details()}{hint}")  # type: ignore[attr-defined]


def request(ns: argparse.Namespace, prompt: str) -> pb.CompleteRequest:
    """The CompleteRequest for the command line (the same constraint flags as `route`)."""
    c = pb.Constraints(max_cost_usd=ns.max_cost or 0.0, max_latency_ms=ns.max_latency or 0.0,
                       min_quality=ns.min_quality or 0.0,
                       required_capabilities=ns.require or (), allow_models=ns.allow or (),
                       deny_models=ns.deny or (), max_output_tokens=ns.max_output_tokens or 0)
    route = pb.RouteRequest(prompt=prompt, strategy=ns.strategy or "", constraints=c)
    if ns.willingness_to_pay is not None:
        route.willingness_to_pay = ns.willingness_to_pay
    return pb.CompleteRequest(route=route, max_output_tokens=ns.max_output_tokens or 0,
                              temperature=ns.temperature, cascade=ns.cascade,
                              cache=ns.cache, cache_max_age_s=ns.cache_max_age)


def _summary(model: str, cost: float, latency_ms: float | None, rid: str,
             cache_hit: str = "none", saved_usd: float = 0.0, deployment: str = "") -> str:
    took = f", {latency_ms:.0f} ms" if latency_ms is not None else ""
    hit = f", cache hit {cache_hit} (saved ${saved_usd:.6f})" if cache_hit != "none" else ""
    at = f" at {deployment}" if deployment else ""
    return f"[{model}{at}, ${cost:.6f}{took}{hit}, request {rid}]"


def run(ns: argparse.Namespace, prompt: str) -> int:
    req = request(ns, prompt)
    try:
        with channel(ns) as ch:
            stub = router_pb2_grpc.RouterStub(ch)  # type: ignore[no-untyped-call]
            if ns.stream:
                return _stream(stub, req, ns)
            resp = stub.Complete(req, timeout=ns.timeout, metadata=metadata(ns))
    except grpc.RpcError as err:
        raise CallFailed(ns.addr, err) from None
    if ns.json:
        print(json.dumps(MessageToDict(resp, preserving_proto_field_name=True), indent=2))
        return 0
    print(resp.text)
    print(_summary(resp.model, resp.cost_usd, resp.latency_ms, resp.request_id,
                   resp.cache_hit or "none", resp.saved_usd, resp.deployment), file=sys.stderr)
    return 0


def _stream(stub: Any, req: pb.CompleteRequest, ns: argparse.Namespace) -> int:
    for chunk in stub.CompleteStream(req, timeout=ns.timeout, metadata=metadata(ns)):
        if ns.json:
            print(json.dumps(MessageToDict(chunk, preserving_proto_field_name=True)), flush=True)
        elif chunk.done:
            print()
            print(_summary(chunk.model, chunk.cost_usd, None, chunk.request_id,
                           chunk.cache_hit or "none", chunk.saved_usd, chunk.deployment),
                  file=sys.stderr)
        else:
            print(chunk.delta, end="", flush=True)
    return 0
