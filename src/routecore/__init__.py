"""routecore: decides, for every LLM request, which model should answer it.

    from routecore import Router
    router = Router.from_config(None)
    decision = router.route("What is 2+2?")

Attributes are resolved lazily so that `import routecore` does no work: the
router (numpy, FAISS, the compiled core) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Constraints", "Decision", "Message", "RouteRequest", "Router", "Weights", "__version__"]

if TYPE_CHECKING:
    from routecore.domain import Constraints, Decision, Message, RouteRequest, Weights
    from routecore.routing.router import Router


def __getattr__(name: str) -> Any:
    if name == "Router":
        from routecore.routing.router import Router

        return Router
    if name in ("Constraints", "Decision", "Message", "RouteRequest", "Weights"):
        from routecore import domain

        return getattr(domain, name)
    raise AttributeError(f"module 'routecore' has no attribute {name!r}")
