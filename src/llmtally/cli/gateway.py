"""llmtally gateway: the OpenAI-compatible API alone."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click

from llmtally import extras
from llmtally.cli.app import State, cli, console, pass_state

if TYPE_CHECKING:
    from llmtally.app.config import AppSettings


@cli.command()
@click.option(
    "--host",
    envvar="LLMTALLY_HOST",
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    envvar="LLMTALLY_PORT",
    show_envvar=True,
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--public-url",
    envvar="LLMTALLY_PUBLIC_URL",
    show_envvar=True,
    metavar="URL",
    help="URL clients use, if not http://HOST:PORT (behind a proxy).",
)
@click.option(
    "--config",
    "config_path",
    envvar="LLMTALLY_GATEWAY_CONFIG",
    show_envvar=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Router config (YAML: model_list, router_settings, as a LiteLLM Proxy's). Unset: the demo model alone.",
)
@click.option(
    "--workers",
    envvar="LLMTALLY_WORKERS",
    show_envvar=True,
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes serving the API (one core each); budgets and rate limits hold across them.",
)
@pass_state
def gateway(state: State, host: str, port: int, public_url: str | None, config_path: Path | None, workers: int) -> None:
    """Serve the OpenAI-compatible API alone (/v1), without the chat: every call budgeted and recorded.

    Clients authenticate with API tokens (`llmtally tokens create USER`) as 'Authorization: Bearer lt_...';
    the token's user is billed. See docs/gateway.md.
    """
    extras.require("app", "llmtally gateway")
    from llmtally.app.config import AppSettings, check_port_free

    settings = state.settings
    app_settings = AppSettings(host=host, port=port, public_url=public_url, gateway_config=config_path)
    check_port_free(host, port)
    if workers > 1:
        _serve_workers(state, app_settings, workers)
        return
    with console.status("starting: loading LiteLLM") if console.is_terminal else nullcontext():
        import uvicorn

        from llmtally.app.gateway.server import GatewayRuntime, build_gateway_app
        from llmtally.integrations.litellm.http_client import share_http_client
        from llmtally.integrations.litellm.router import load_config

        config = load_config(app_settings.gateway_config)
        share_http_client()
        runtime = GatewayRuntime.start(settings, config)
        try:
            app = build_gateway_app(runtime, app_settings.url)
        except BaseException:
            runtime.stop()
            raise
    console.print(f"llmtally is recording to {runtime.ledger.db.where if runtime.ledger.db else '?'}")
    console.print(f"OpenAI-compatible API at [bold]{app_settings.url}/v1[/] (router config: {config.source})")
    console.print(f"Models: {', '.join(config.model_names)}")
    # proxy_headers off: X-Forwarded-For never changes the client address
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10, proxy_headers=False)


def _serve_workers(state: State, app_settings: AppSettings, workers: int) -> None:
    """``workers`` processes on one port (uvicorn's supervisor), each with its own ledger and pools.

    The config and the database are checked here once (a bad config or an unreachable database is one
    error, not one per worker); this process keeps the database open, so an embedded server stays up
    while workers start and stop. Each worker reads its settings from the environment set here.
    """
    with console.status("starting: loading LiteLLM") if console.is_terminal else nullcontext():
        import uvicorn

        from llmtally.integrations.litellm.router import GatewayRouter, load_config

        config = load_config(app_settings.gateway_config)
        GatewayRouter(config)  # LiteLLM's own checks of the config, before any worker starts
    settings = state.settings
    with state.database() as db:
        console.print(f"llmtally is recording to {db.where}")
        console.print(
            f"OpenAI-compatible API at [bold]{app_settings.url}/v1[/] (router config: {config.source}),"
            f" {workers} worker processes"
        )
        console.print(f"Models: {', '.join(config.model_names)}")
        os.environ.update(
            {
                "LLMTALLY_HOST": app_settings.host,
                "LLMTALLY_PORT": str(app_settings.port),
                "LLMTALLY_PUBLIC_URL": app_settings.url,
            }
        )
        if app_settings.gateway_config is not None:
            os.environ["LLMTALLY_GATEWAY_CONFIG"] = str(app_settings.gateway_config.resolve())
        if settings.database_url:
            os.environ["LLMTALLY_DATABASE_URL"] = settings.database_url
        uvicorn.run(
            "llmtally.app.gateway.server:worker_app",
            factory=True,
            workers=workers,
            host=app_settings.host,
            port=app_settings.port,
            log_level="warning",
            timeout_graceful_shutdown=10,
            proxy_headers=False,
        )
