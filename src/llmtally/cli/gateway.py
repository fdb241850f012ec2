"""llmtally gateway: the OpenAI-compatible API alone."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click

from llmtally import extras
from llmtally.cli.app import State, cli, console, pass_state


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
@pass_state
def gateway(state: State, host: str, port: int, public_url: str | None, config_path: Path | None) -> None:
    """Serve the OpenAI-compatible API alone (/v1), without the chat: every call budgeted and recorded.

    Clients authenticate with API tokens (`llmtally tokens create USER`) as 'Authorization: Bearer lt_...';
    the token's user is billed. See docs/gateway.md.
    """
    extras.require("app", "llmtally gateway")
    from llmtally.app.config import AppSettings, check_port_free

    settings = state.settings
    app_settings = AppSettings(host=host, port=port, public_url=public_url, gateway_config=config_path)
    check_port_free(host, port)
    with console.status("starting: loading LiteLLM") if console.is_terminal else nullcontext():
        import uvicorn

        from llmtally.app.gateway.server import GatewayRuntime, build_gateway_app
        from llmtally.integrations.litellm.router import load_config

        config = load_config(app_settings.gateway_config)
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
