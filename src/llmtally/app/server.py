"""One ASGI app: our FastAPI routes and the OpenAI-compatible gateway at /v1, with Chainlit mounted under them.

Chainlit reads its configuration (app root, auth secret, OAuth providers) from the environment when
it is imported, so :func:`prepare_environment` runs first and Chainlit is imported only after it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from llmtally.app.chat_theme import write_chat_files
from llmtally.app.config import LOCAL_USER, AppSettings, auth_secret, password_logins
from llmtally.app.gateway import build_gateway
from llmtally.app.gateway.chat import ChatCompletions
from llmtally.app.gateway.server import gateway_for
from llmtally.app.identity import password_identity
from llmtally.app.models import available_models
from llmtally.app.runtime import Runtime, get_runtime, set_runtime
from llmtally.app.web import GuardPolicy, WebState, install_guards, install_web
from llmtally.app.web.chat_page import LocalAssetsOnly
from llmtally.app.web.origin import origin_of
from llmtally.app.web.session_check import SessionCheck
from llmtally.db.database import Database
from llmtally.errors import ConfigurationError, LlmtallyError
from llmtally.integrations.litellm.demo_provider import register_demo_model
from llmtally.integrations.litellm.router import load_config
from llmtally.ledger.ledger import Ledger
from llmtally.settings import Settings
from llmtally.web_sessions import revoke_removed_password_logins
from llmtally.wording import plural

log = logging.getLogger("llmtally.app")

CHAINLIT_VERSION = "2.12.0"

CONFIG_TOML = """\
[project]
user_env = []
session_timeout = 3600
user_session_timeout = {session_seconds}
cache = false
persist_user_env = false
mask_user_env = false
allow_origins = {origins}

[features]
unsafe_allow_html = false
latex = false
user_message_markdown = true
user_message_autoscroll = true
assistant_message_autoscroll = true
auto_tag_thread = false
edit_message = false
allow_thread_sharing = false
favorites = false

[features.slack]
reaction_on_message_received = false

[features.spontaneous_file_upload]
enabled = false
accept = ["text/plain"]
max_files = 1
max_size_mb = 1

[features.audio]
enabled = false
sample_rate = 24000

[features.mcp]
enabled = false

[features.mcp.user_servers]
enabled = false
allowed_urls = []

[UI]
name = "llmtally"
description = "Chat with every call recorded: who spent what."
confirm_new_chat = true
cot = "hidden"
alert_style = "classic"
logo_file_url = ""
default_avatar_file_url = ""
custom_css = "/llmtally-static/chat.css"
custom_js = "/llmtally-static/chat.js"

[meta]
generated_by = "{version}"
"""


def chainlit_root(settings: Settings) -> Path:
    return Path(settings.home).expanduser() / "app" / "chainlit"


def prepare_environment(settings: Settings, app_settings: AppSettings) -> None:
    """Write Chainlit's config and set the variables it reads at import. Before importing chainlit."""
    root = chainlit_root(settings)
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    origins = f'["{app_settings.url}"]'
    (root / ".chainlit" / "config.toml").write_text(
        CONFIG_TOML.format(
            origins=origins,
            version=CHAINLIT_VERSION,
            session_seconds=int(app_settings.session_lifetime.total_seconds()),
        ),
        encoding="utf-8",
    )
    write_chat_files(root)
    os.environ["CHAINLIT_APP_ROOT"] = str(root)
    os.environ["CHAINLIT_AUTH_SECRET"] = auth_secret(Path(settings.home).expanduser())
    os.environ.setdefault("CHAINLIT_URL", app_settings.url)  # OAuth redirect URLs


def check_oauth_configuration() -> list[str]:
    """The configured OAuth providers; a one-line error for a half-configured one."""
    from chainlit.oauth_providers import providers

    configured = []
    for provider in providers:
        present = [name for name in provider.env if os.environ.get(name)]
        if present and len(present) < len(provider.env):
            missing = ", ".join(name for name in provider.env if not os.environ.get(name))
            raise ConfigurationError(f"OAuth provider {provider.id} is missing {missing}")
        if present:
            configured.append(str(provider.id))
    return configured


def start_runtime(settings: Settings, app_settings: AppSettings) -> Runtime:
    """Start the ledger and the app's database pool (migrating an embedded database)."""
    register_demo_model()
    ledger = Ledger(settings=settings).start_sync()
    try:
        db = Database.from_settings(settings, max_size=8).open()
    except BaseException:
        ledger.close_sync()
        raise
    models = tuple(available_models(os.environ.get("LLMTALLY_MODELS")))
    runtime = Runtime(
        settings=settings,
        app=app_settings,
        ledger=ledger,
        db=db,
        logins=password_logins(app_settings, Path(settings.home).expanduser()),
        models=models,
    )
    set_runtime(runtime)
    end_removed_logins(runtime)
    return runtime


def password_user_ids(runtime: Runtime) -> frozenset[str]:
    return frozenset(password_identity(name).user_id for name in runtime.logins.credentials)


def end_removed_logins(runtime: Runtime) -> None:
    """End the sessions of password logins no longer in LLMTALLY_USERS; say which API tokens still work."""
    try:
        removed = revoke_removed_password_logins(runtime.db, password_user_ids(runtime))
    except LlmtallyError as exc:  # their sessions are refused anyway (WebState.password_users)
        log.error("could not end the sessions of removed logins: %s", exc)
        return
    for user_id, count in sorted(removed.revoked_sessions.items()):
        log.warning("%s is no longer a configured login: %s ended", user_id, plural(count, "session"))
    for user_id, count in sorted(removed.live_tokens.items()):
        log.warning(
            "%s is no longer a configured login, but its %s still work:"
            " revoke them with `llmtally users revoke-sessions %s --tokens`",
            user_id,
            plural(count, "API token"),
            user_id,
        )


def stop_runtime() -> None:
    with contextlib.suppress(RuntimeError):
        runtime = get_runtime()
        runtime.ledger.close_sync()  # drains the queue: nothing recorded is lost at shutdown
        runtime.db.close()
        set_runtime(None)


def local_admins(runtime: Runtime) -> frozenset[str]:
    """With no LLMTALLY_ADMINS, the generated local login (a machine's own `llmtally up`) administers."""
    if runtime.logins.generated:
        return frozenset({password_identity(LOCAL_USER).user_id})
    return frozenset()


def loopback(host: str) -> bool:
    """Whether the server listens on a loopback address only (uvicorn runs with proxy headers off)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def build_app() -> FastAPI:
    """The ASGI app. The runtime must be started and the environment prepared."""
    from chainlit.utils import mount_chainlit

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await gateway.aclose()
        stop_runtime()

    app = FastAPI(title="llmtally", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Any:
        runtime = get_runtime()
        try:
            runtime.db.health_check()
        except Exception as exc:  # report, never raise, from a health check; the detail goes to the log only
            log.error("health check: the database is unreachable: %s", exc)
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return {
            "status": "ok",
            "pending_events": runtime.ledger.stats.accepted
            - runtime.ledger.stats.written
            - runtime.ledger.stats.duplicates,
        }

    runtime = get_runtime()
    state = WebState(
        db=runtime.db,
        admins=runtime.app.admin_set or local_admins(runtime),
        show_content=runtime.settings.content == "full",
        metrics_token=runtime.app.metrics_token.get_secret_value() if runtime.app.metrics_token else None,
        metrics_local=loopback(runtime.app.host),
        password_users=password_user_ids(runtime),
    )
    install_web(app, state)
    gateway = gateway_for(runtime.ledger, runtime.db, load_config(runtime.app.gateway_config))
    app.mount("/v1", build_gateway(gateway), name="gateway")  # before Chainlit's catch-all at "/"
    mount_chainlit(app, target=str(Path(__file__).with_name("chat.py")), path="/")
    origin = origin_of(runtime.app.url)
    if origin is None:
        raise ConfigurationError(f"LLMTALLY_PUBLIC_URL must be an http(s) URL (got {runtime.app.url!r})")
    app.add_middleware(ChatCompletions, gateway=gateway)  # POST /v1/chat/completions, inside the guards
    app.add_middleware(LocalAssetsOnly)  # Chainlit's page without its CDN links
    app.add_middleware(SessionCheck, state=state)  # inside the guards: origins are checked first
    install_guards(app, GuardPolicy(origin=origin))
    return app
