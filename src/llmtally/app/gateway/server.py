"""The gateway alone (``llmtally gateway``): /v1 and /healthz, without the chat, its logins or Chainlit.

It starts the same ledger and database pool as ``llmtally up`` and sits behind the same request guard
(body size, origins, security headers).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from llmtally.app.gateway.api import Gateway, build_gateway
from llmtally.app.gateway.chat import ChatCompletions
from llmtally.app.gateway.direct import DirectCalls
from llmtally.app.web import GuardPolicy, install_guards
from llmtally.app.web.origin import origin_of
from llmtally.budgeted_calls import Budgets
from llmtally.db.database import Database
from llmtally.db.statements import StatementPool
from llmtally.errors import ConfigurationError
from llmtally.integrations.litellm.router import GatewayConfig, GatewayRouter
from llmtally.ledger.ledger import Ledger
from llmtally.settings import Settings

log = logging.getLogger("llmtally.gateway")


def gateway_for(ledger: Ledger, db: Database, config: GatewayConfig) -> Gateway:
    """The gateway over a started ledger and an open pool (the router is built here: a bad config raises)."""
    router = GatewayRouter(config)
    direct = DirectCalls(router, ledger) if ledger.settings.gateway_direct else None
    return Gateway(db=db, budgets=Budgets(ledger, db=db), router=router, statements=StatementPool(db), direct=direct)


@dataclass
class GatewayRuntime:
    ledger: Ledger
    db: Database
    gateway: Gateway

    @classmethod
    def start(cls, settings: Settings, config: GatewayConfig) -> GatewayRuntime:
        ledger = Ledger(settings=settings).start_sync()
        db: Database | None = None
        try:
            db = Database.from_settings(settings, max_size=8).open()
            return cls(ledger, db, gateway_for(ledger, db, config))
        except BaseException:
            if db is not None:
                db.close()
            ledger.close_sync()
            raise

    def stop(self) -> None:
        self.ledger.close_sync()  # drains the queue: nothing recorded is lost at shutdown
        self.db.close()


def build_gateway_app(runtime: GatewayRuntime, public_url: str) -> FastAPI:
    """The ASGI app of ``llmtally gateway``; stopping it stops the runtime."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.gateway.aclose()
        runtime.stop()

    app = FastAPI(title="llmtally gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Any:
        try:
            runtime.db.health_check()
        except Exception as exc:  # report, never raise, from a health check
            log.error("health check: the database is unreachable: %s", exc)
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return {"status": "ok", "models": list(runtime.gateway.router.model_names)}

    app.mount("/v1", build_gateway(runtime.gateway), name="gateway")
    origin = origin_of(public_url)
    if origin is None:
        raise ConfigurationError(f"LLMTALLY_PUBLIC_URL must be an http(s) URL (got {public_url!r})")
    app.add_middleware(ChatCompletions, gateway=runtime.gateway)  # inside the guards
    install_guards(app, GuardPolicy(origin=origin))
    return app


def worker_app() -> FastAPI:
    """The app of each process of ``llmtally gateway --workers N`` (uvicorn calls it in every worker): the
    settings, the router config and the public URL come from the environment the command set for them."""
    from llmtally.app.config import AppSettings
    from llmtally.integrations.litellm.http_client import share_http_client
    from llmtally.integrations.litellm.router import load_config

    app_settings = AppSettings()
    share_http_client()
    runtime = GatewayRuntime.start(Settings(), load_config(app_settings.gateway_config))
    try:
        return build_gateway_app(runtime, app_settings.url)
    except BaseException:
        runtime.stop()
        raise
