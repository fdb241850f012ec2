"""The gateway's routing: a LiteLLM Router built from a config file written as LiteLLM Proxy users write it.

::

    model_list:
      - model_name: gpt-4o-mini
        litellm_params:
          model: openai/gpt-4o-mini
          api_key: os.environ/OPENAI_API_KEY
    router_settings:
      num_retries: 2
      fallbacks: [{"gpt-4o-mini": ["llmtally/demo"]}]

``model_list`` and ``router_settings`` are read; the other sections of a Proxy config
(``litellm_settings``, ``general_settings``, ...) are ignored. A value ``os.environ/NAME`` is read from
the environment, as the Proxy does. The offline demo model (``llmtally/demo``) is always in the list.
Every mistake in the file is one :class:`ConfigurationError` line, raised when the router is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtally.errors import ConfigurationError
from llmtally.integrations.litellm.demo_provider import DEMO_MODEL, register_demo_model

ENV_PREFIX = "os.environ/"
# Router settings a config file may give (the Router's own keyword arguments); others are refused by name.
ROUTER_SETTINGS = frozenset(
    {
        "num_retries",
        "timeout",
        "stream_timeout",
        "max_retries",
        "retry_after",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "default_fallbacks",
        "allowed_fails",
        "cooldown_time",
        "disable_cooldowns",
        "routing_strategy",
        "routing_strategy_args",
        "model_group_alias",
        "retry_policy",
        "allowed_fails_policy",
        "enable_pre_call_checks",
        "set_verbose",
        "debug_level",
    }
)


@dataclass(frozen=True)
class GatewayConfig:
    """What a config file says: the deployments and the Router's settings (``os.environ/`` resolved)."""

    model_list: tuple[dict[str, Any], ...]
    router_settings: dict[str, Any]
    source: str  # the file, or "built-in" without one

    @property
    def model_names(self) -> tuple[str, ...]:
        """The names clients call, in the file's order, each once."""
        return tuple(dict.fromkeys(str(d["model_name"]) for d in self.model_list))

    def deployment_models(self, model_name: str) -> tuple[str, ...]:
        """The LiteLLM models behind ``model_name``."""
        return tuple(str(d["litellm_params"]["model"]) for d in self.model_list if d["model_name"] == model_name)

    def billed_models(self, model_name: str) -> tuple[str, ...]:
        """What a call to ``model_name`` may be billed as: its deployments, then those of its fallbacks
        (``fallbacks``, ``context_window_fallbacks``, ``content_policy_fallbacks``, ``default_fallbacks``)."""
        names = [model_name]
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for rule in self.router_settings.get(key) or []:
                if isinstance(rule, Mapping) and isinstance(rule.get(model_name), list):
                    names.extend(str(n) for n in rule[model_name])
        names.extend(str(n) for n in self.router_settings.get("default_fallbacks") or [])
        models = (m for name in dict.fromkeys(names) for m in self.deployment_models(name))
        return tuple(dict.fromkeys(models))


def _where(source: str, index: int | None = None) -> str:
    return f"{source}: model_list[{index}]" if index is not None else source


def _resolve(value: Any, where: str) -> Any:
    """``os.environ/NAME`` read from the environment, recursively; a missing variable is an error."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in os.environ:
            raise ConfigurationError(f"{where} names {value} but {name} is not set")
        return os.environ[name]
    if isinstance(value, Mapping):
        return {str(k): _resolve(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, where) for v in value]
    return value


def _deployment(entry: Any, index: int, source: str) -> dict[str, Any]:
    where = _where(source, index)
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where} must be a mapping with model_name and litellm_params")
    name = entry.get("model_name")
    params = entry.get("litellm_params")
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{where} needs a model_name (the name clients call)")
    if not isinstance(params, Mapping) or not isinstance(params.get("model"), str) or not params["model"]:
        raise ConfigurationError(f"{where} ({name}) needs litellm_params.model (e.g. openai/gpt-4o-mini)")
    deployment = {str(k): v for k, v in entry.items()}
    deployment["litellm_params"] = _resolve(dict(params), f"{where} ({name})")
    return deployment


def parse_config(document: Any, source: str) -> GatewayConfig:
    """The config a parsed YAML document describes; the demo model is added unless the file names it."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{source}: the file must be a mapping with model_list (and router_settings)")
    models = document.get("model_list") or []
    if not isinstance(models, list):
        raise ConfigurationError(f"{source}: model_list must be a list of deployments")
    deployments = [_deployment(entry, i, source) for i, entry in enumerate(models)]
    settings = document.get("router_settings") or {}
    if not isinstance(settings, Mapping):
        raise ConfigurationError(f"{source}: router_settings must be a mapping")
    unknown = sorted(str(k) for k in settings if k not in ROUTER_SETTINGS)
    if unknown:
        raise ConfigurationError(
            f"{source}: router_settings has {', '.join(unknown)}, which the gateway does not take"
            f" (it takes {', '.join(sorted(ROUTER_SETTINGS))})"
        )
    if not any(d["model_name"] == DEMO_MODEL for d in deployments):
        deployments.append({"model_name": DEMO_MODEL, "litellm_params": {"model": DEMO_MODEL}})
    return GatewayConfig(tuple(deployments), _resolve(dict(settings), f"{source}: router_settings"), source)


def load_config(path: Path | str | None) -> GatewayConfig:
    """The config in the YAML file at ``path``; without a path, the demo model alone."""
    if path is None or str(path) == "":
        return parse_config({}, "built-in")
    import yaml

    source = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the gateway config {source}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationError(f"{source} is not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_config(document, source)


class GatewayRouter:
    """A LiteLLM Router over a :class:`GatewayConfig`: the calls the gateway makes, by model name."""

    def __init__(self, config: GatewayConfig) -> None:
        import litellm

        register_demo_model()
        self.config = config
        try:
            self._router = litellm.Router(model_list=[dict(d) for d in config.model_list], **config.router_settings)
        except Exception as exc:  # LiteLLM's own validation of the list or a setting
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigurationError(f"{config.source}: LiteLLM refused the config: {first}") from None

    @property
    def model_names(self) -> tuple[str, ...]:
        return self.config.model_names

    def billed_models(self, model_name: str) -> tuple[str, ...]:
        return self.config.billed_models(model_name)

    async def acompletion(self, **kwargs: Any) -> Any:
        """``Router.acompletion``: the response, or the stream when ``stream=True``."""
        return await self._router.acompletion(**kwargs)

    async def aembedding(self, **kwargs: Any) -> Any:
        return await self._router.aembedding(**kwargs)

    async def atext_completion(self, **kwargs: Any) -> Any:
        """``Router.atext_completion`` (legacy text completions): a chat model answers through its chat
        endpoint, a ``text-completion-openai/`` model through ``/completions``."""
        return await self._router.atext_completion(**kwargs)

    async def aresponses(self, **kwargs: Any) -> Any:
        """``Router.aresponses`` (the Responses API): an ``openai/`` model calls ``{api_base}/responses``;
        LiteLLM bridges other providers (and the demo model) to their chat completions."""
        return await self._router.aresponses(**kwargs)

    def response_model(self, response_id: str) -> str | None:
        """The model name of the deployment that made a response, read from its id: LiteLLM's Router
        gives a response an id that encodes the deployment (``model_info.id``). None when the id names no
        deployment of this config (not LiteLLM's, or its deployment was removed or changed since)."""
        from litellm.responses.utils import ResponsesAPIRequestUtils

        model_id = ResponsesAPIRequestUtils.get_model_id_from_response_id(response_id)
        deployment = self._router.registry().deployment(model_id) if model_id else None
        return None if deployment is None else str(deployment.model_name)

    async def aget_responses(self, response_id: str, include: list[str] | None = None) -> Any:
        """``Router.aget_responses``: the stored response, asked of the deployment its id names."""
        extra = {"extra_query": {"include[]": include}} if include else {}
        return await self._router.aget_responses(response_id=response_id, **extra)

    async def adelete_responses(self, response_id: str) -> Any:
        """``Router.adelete_responses``: the stored response deleted at the deployment its id names."""
        return await self._router.adelete_responses(response_id=response_id)


@dataclass(frozen=True)
class UpstreamFailure:
    """How a failed upstream call is told to the client: HTTP status, OpenAI error type and code, message."""

    status: int
    type: str
    code: str
    message: str
    retry_after: str | None = None


def upstream_failure(exc: BaseException) -> UpstreamFailure | None:
    """The client's view of a LiteLLM error raised after every retry and fallback; None for other errors."""
    import litellm
    import openai
    from litellm.types.router import RouterRateLimitError, RouterRateLimitErrorBasic

    if isinstance(exc, RouterRateLimitError | RouterRateLimitErrorBasic):
        # Every deployment of the model is cooling down after failures (or at its own rpm/tpm).
        wait = getattr(exc, "cooldown_time", None)
        retry = str(max(1, math.ceil(wait))) if isinstance(wait, int | float) else None
        message = "no deployment of the model is available now (they are cooling down after failures)"
        return UpstreamFailure(503, "upstream_error", "upstream_unavailable", message, retry)
    if not isinstance(exc, openai.OpenAIError):
        return None
    detail = _first_line(exc)
    if isinstance(exc, litellm.Timeout):
        return UpstreamFailure(504, "timeout", "upstream_timeout", f"the upstream provider timed out: {detail}")
    if isinstance(exc, litellm.RateLimitError):
        retry = _retry_after(exc)
        return UpstreamFailure(429, "rate_limit_error", "upstream_rate_limited", detail, retry)
    if isinstance(exc, litellm.ContextWindowExceededError | litellm.ContentPolicyViolationError):
        return UpstreamFailure(400, "invalid_request_error", "upstream_refused_request", detail)
    if isinstance(exc, litellm.BadRequestError) and not isinstance(exc, litellm.AuthenticationError):
        return UpstreamFailure(400, "invalid_request_error", "upstream_refused_request", detail)
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        # The gateway's own credentials for the provider: not the client's mistake.
        message = f"the upstream provider refused the gateway's credentials: {detail}"
        return UpstreamFailure(502, "upstream_error", "upstream_auth_failed", message)
    return UpstreamFailure(502, "upstream_error", "upstream_failed", f"the upstream provider failed: {detail}")


def is_not_found(exc: BaseException) -> bool:
    """Whether a LiteLLM error is the provider's 404 (a stored response it does not hold)."""
    import openai

    return isinstance(exc, openai.NotFoundError)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:500]


def _retry_after(exc: BaseException) -> str | None:
    """The upstream's Retry-After, when its response had one."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None and hasattr(headers, "get") else None
    return str(value) if value else None
