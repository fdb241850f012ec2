"""llmtally up: the chat app."""

from __future__ import annotations

from contextlib import nullcontext

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
    help="URL people open, if not http://HOST:PORT (behind a proxy).",
)
@pass_state
def up(state: State, host: str, port: int, public_url: str | None) -> None:
    """Serve the chat app: OAuth or password login, streamed replies, every call recorded.

    Password logins come from LLMTALLY_USERS ('alice:secret,bob:secret'); without it one login is
    generated and printed. OAuth providers are enabled by Chainlit's OAUTH_* variables. Models: the
    offline demo always, plus OpenAI, Anthropic and Gemini when OPENAI_API_KEY, ANTHROPIC_API_KEY or
    GEMINI_API_KEY/GOOGLE_API_KEY is set, plus any LiteLLM model named in LLMTALLY_MODELS.
    """
    extras.require("app", "llmtally up")
    # Light imports first: a taken port or a bad setting is reported before LiteLLM and Chainlit load.
    from llmtally.app.config import AppSettings, check_port_free, local_password_file

    settings = state.settings
    app_settings = AppSettings(host=host, port=port, public_url=public_url)
    check_port_free(host, port)
    with console.status("starting: loading LiteLLM and Chainlit") if console.is_terminal else nullcontext():
        import uvicorn

        from llmtally.app.server import (
            build_app,
            check_oauth_configuration,
            prepare_environment,
            start_runtime,
            stop_runtime,
        )
        from llmtally.integrations.litellm.http_client import share_http_client

        prepare_environment(settings, app_settings)
        providers = check_oauth_configuration()
        share_http_client()
        runtime = start_runtime(settings, app_settings)
        try:
            app = build_app()
        except BaseException:
            stop_runtime()
            raise
    console.print(f"llmtally is recording to {runtime.ledger.db.where if runtime.ledger.db else '?'}")
    url = app_settings.url
    console.print(f"Open [bold]{url}/[/] (chat), [bold]{url}/usage[/] (your usage), [bold]{url}/admin[/] (dashboard)")
    if providers:
        console.print(f"OAuth login: {', '.join(providers)}")
    logins = runtime.logins
    if logins.generated:
        [(name, password)] = logins.credentials.items()
        console.print(
            f"Password login: user [bold]{name}[/], password [bold]{password}[/] "
            f"(kept in {local_password_file(settings.home)}; set LLMTALLY_USERS to choose your own)"
        )
    else:
        console.print(f"Password login for: {', '.join(sorted(logins.credentials))}")
    console.print(f"Models: {', '.join(m.model for m in runtime.models)}")
    # proxy_headers off: X-Forwarded-For never changes the client address (/metrics, login limits)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10, proxy_headers=False)
