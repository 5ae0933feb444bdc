"""An ASGI app that builds the real one on its first request.

Airflow mounts plugin apps in the API server, but it also imports every plugin file in each task
process and scheduler; building the FastAPI app there would import Airflow's API security module
(about a second) for nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


class LazyAsgiApp:
    """Calls ``factory`` ("module:function") once, on the first request, and serves its app."""

    def __init__(self, factory: str):
        self.factory = factory
        self._app: Callable[..., Any] | None = None

    def build(self) -> Callable[..., Any]:
        if self._app is None:
            module, _, name = self.factory.partition(":")
            self._app = getattr(import_module(module), name)()
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await self.build()(scope, receive, send)


page_app = LazyAsgiApp("hubspot_sync_page.app:create_app")
