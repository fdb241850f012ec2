"""Settings and secrets of the chat app.

Secrets that are generated (Chainlit's JWT secret, the local one-time password) live in files under
``LLMTALLY_HOME/app`` with mode 0600; they are printed only where the issue asks (the password, at
startup, for the person who started the server) and never logged.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmtally.errors import ConfigurationError

LOCAL_USER = "admin"


class AppSettings(BaseSettings):
    """The chat app's own settings (``LLMTALLY_*``); the ledger's are in :class:`llmtally.Settings`."""

    model_config = SettingsConfigDict(env_prefix="LLMTALLY_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    public_url: str | None = Field(
        default=None, description="URL users open (for CORS and OAuth callbacks); default http://HOST:PORT."
    )
    users: str | None = Field(
        default=None, description="Password logins as 'name:password,name2:password2'. Unset: one generated login."
    )
    # dashboard, JSON API and metrics
    admins: str | None = Field(
        default=None, description="Who may open /admin and the admin API: user ids or e-mails, comma-separated."
    )
    session_hours: float = Field(
        default=12,
        gt=0,
        le=24 * 30,
        description="Hours a chat login lasts before logging in again (default 12: one working day).",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token required by /metrics. Unset: /metrics answers only local clients."
    )
    gateway_config: Path | None = Field(
        default=None,
        description="The gateway's router config (YAML: model_list, router_settings), as a LiteLLM Proxy's."
        " Unset: the offline demo model alone.",
    )

    @property
    def session_lifetime(self) -> dt.timedelta:
        return dt.timedelta(hours=self.session_hours)

    @property
    def admin_set(self) -> frozenset[str]:
        return frozenset(a.strip() for a in (self.admins or "").split(",") if a.strip())

    @property
    def url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class PasswordLogins:
    """Who may log in with a password. ``generated`` is True for the stored one-time login."""

    credentials: dict[str, str]
    generated: bool

    def check(self, username: str, password: str) -> bool:
        expected = self.credentials.get(username)
        # compare even for unknown names, so timing does not reveal which names exist
        return hmac.compare_digest((expected or "\0").encode(), password.encode()) and expected is not None


def _secret_file(path: Path, make: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(make + "\n")
    return make


def auth_secret(home: Path) -> str:
    """CHAINLIT_AUTH_SECRET from the environment, else generated once and kept in LLMTALLY_HOME."""
    given = os.environ.get("CHAINLIT_AUTH_SECRET")
    if given:
        return given
    return _secret_file(home / "app" / "auth-secret", secrets.token_urlsafe(48))


def password_logins(settings: AppSettings, home: Path) -> PasswordLogins:
    """The configured password logins, or one generated login stored in LLMTALLY_HOME."""
    if settings.users:
        credentials: dict[str, str] = {}
        for item in settings.users.split(","):
            name, sep, password = item.strip().partition(":")
            if not sep or not name or not password:
                raise ConfigurationError("LLMTALLY_USERS must look like 'alice:password,bob:password'")
            credentials[name] = password
        return PasswordLogins(credentials, generated=False)
    password = _secret_file(local_password_file(home), secrets.token_urlsafe(12))
    return PasswordLogins({LOCAL_USER: password}, generated=True)


def local_password_file(home: Path) -> Path:
    """Where the generated login's password is kept (mode 0600), as an absolute path."""
    return (home / "app" / "local-password").resolve()


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigurationError if HOST:PORT cannot be listened on (before the slow start of the app)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port or LLMTALLY_PORT"
            ) from None
