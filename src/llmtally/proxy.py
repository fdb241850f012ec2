"""The LiteLLM Proxy's entry point: ``litellm_settings: callbacks: ["llmtally.proxy.handler"]``.

The plug-in itself is part of the LiteLLM integration, ``llmtally.integrations.litellm.proxy``
(docs/litellm-proxy.md); this module keeps the name proxy configurations give. ``handler`` is that
module's one handler, created and started on first access, when the proxy reads its config.
"""

from typing import Any

from llmtally.integrations.litellm import proxy as _plugin


def __getattr__(name: str) -> Any:
    """Every name of the plug-in, ``handler`` included, as the plug-in module has it."""
    return getattr(_plugin, name)
