"""The chat's look, written into Chainlit's app root before Chainlit is imported.

Chainlit's defaults leak through otherwise: a dark theme beside light pages, Google's fonts and
KaTeX's stylesheet from CDNs (errors offline), a login form that asks for an "Email address" when
the logins are user names, and a warning per session for a missing ``chainlit_<language>.md``.

- ``public/theme.json``: no web fonts (the system font, as the pages use) and llmtally's accent;
- ``.chainlit/translations/en-US.json``: Chainlit's own, with the login form's labels and errors
  worded for llmtally (Chainlit copies its other languages beside it and never overwrites ours);
- ``chainlit.md``: the chat's readme, which links to the usage pages and the dashboard;
- the stylesheet and script (``static/chat.css``, ``static/chat.js``), named in config.toml's [UI].
  The script makes the theme follow the system's light or dark setting, tells the server when the
  screen is narrow (the usage panel then stays closed), and words a refused login for people.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

# llmtally's accent (#2563eb) in the HSL form Chainlit's theme variables take.
_ACCENT = "221 83% 53%"
THEME: dict[str, Any] = {
    "custom_fonts": [],
    "variables": {
        "light": {"--primary": _ACCENT, "--ring": _ACCENT},
        "dark": {"--primary": "217 91% 60%", "--ring": "217 91% 60%"},
    },
}
LOGIN_WORDING = {
    "title": "Sign in to llmtally",
    "email_label": "User name",
    "email_required": "Enter your user name",
    "email_placeholder": "",
    "credentials_refused": "Wrong user name or password.",
    # What the form says for a refusal it has no word for (a refused password among them).
    "refused": "Sign in failed. Check the user name and password.",
}
# The logo Chainlit shows above an empty chat and on its login page (``/logo?theme=...``).
_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="180" height="40" viewBox="0 0 180 40">'
    '<text x="0" y="30" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="30"'
    ' font-weight="700" fill="{color}">llm<tspan fill="#2563eb">tally</tspan></text></svg>'
)
LOGOS = {"light": _LOGO.format(color="#1d2430"), "dark": _LOGO.format(color="#e5e7eb")}
README = """# llmtally

Every message you send here is recorded against your login: model, tokens and cost.

- [Your usage](/usage): this month, by model, and your recent requests
- [Your requests](/usage/requests): every call, with its attempts and how it was priced
- [Dashboard](/admin): everyone's usage (administrators)

Type `/usage` in the chat for this month's totals.
"""


class _DropMissingReadmeWarning(logging.Filter):
    """Chainlit warns once per session when no readme exists in the browser's language; the
    English readme is the one meant, so the warning says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Translated markdown file for ")


def _translation(base: dict[str, Any]) -> dict[str, Any]:
    login = base["auth"]["login"]
    login["title"] = LOGIN_WORDING["title"]
    email = login["form"]["email"]
    email["label"] = LOGIN_WORDING["email_label"]
    email["required"] = LOGIN_WORDING["email_required"]
    email["placeholder"] = LOGIN_WORDING["email_placeholder"]
    login["errors"]["default"] = LOGIN_WORDING["refused"]
    login["errors"]["credentialsSignin"] = LOGIN_WORDING["credentials_refused"]
    login["errors"]["credentialssignin"] = LOGIN_WORDING["credentials_refused"]
    return base


def _chainlit_file(*parts: str) -> Path:
    """A file of the installed Chainlit package, found without importing it (importing Chainlit
    reads its configuration, which is being written here)."""
    spec = importlib.util.find_spec("chainlit")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("chainlit")
    return Path(spec.origin).parent.joinpath(*parts)


def write_chat_files(root: Path) -> None:
    """Write the theme, the login wording and the readme into Chainlit's app root ``root``."""
    (root / "public").mkdir(parents=True, exist_ok=True)
    (root / "public" / "theme.json").write_text(json.dumps(THEME, indent=2), encoding="utf-8")
    for theme, svg in LOGOS.items():
        (root / "public" / f"logo_{theme}.svg").write_text(svg, encoding="utf-8")
    translations = root / ".chainlit" / "translations"
    translations.mkdir(parents=True, exist_ok=True)
    base = json.loads(_chainlit_file("translations", "en-US.json").read_text(encoding="utf-8"))
    (translations / "en-US.json").write_text(json.dumps(_translation(base), indent=2), encoding="utf-8")
    (root / "chainlit.md").write_text(README, encoding="utf-8")
    chainlit_log = logging.getLogger("chainlit")
    if not any(isinstance(f, _DropMissingReadmeWarning) for f in chainlit_log.filters):
        chainlit_log.addFilter(_DropMissingReadmeWarning())
