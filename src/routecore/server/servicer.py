"""The Router service: protobuf in, domain call, protobuf out. Nothing else.

Errors are not caught here: the interceptor maps them to statuses.
"""

from __future__ import annotations

from typing import Any

from ..router import Router
from ..v1 import router_pb2 as pb
from ..v1 import router_pb2_grpc as pb_grpc
from . import convert
from .interceptors import log_fields_var, request_id_var


class RouterServicer(pb_grpc.RouterServicer):  # type: ignore[misc]
    def __init__(self, router: Router) -> None:
        self.router = router

    async def Route(self, request: pb.RouteRequest, context: Any) -> pb.RouteDecision:
        req = convert.route_request(request)
        if not req.request_id:
            req = _with_request_id(req, request_id_var.get())
        decision = self.router.route(req)
        log_fields_var.get({}).update(model=decision.model, category=decision.category,
                                      decision_us=decision.decision_micros)
        return convert.decision(decision)

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[convert.model_info(s) for s in self.router.registry],
            router_version=self.router.version,
        )


def _with_request_id(req: Any, rid: str) -> Any:
    from dataclasses import replace

    return replace(req, request_id=rid)
