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
from dataclasses import dataclass, field
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
        names = dict.fromkeys([model_name, *self.fallbacks(model_name)])
        models = (m for name in names for m in self.deployment_models(name))
        return tuple(dict.fromkeys(models))

    def fallbacks(self, model_name: str) -> tuple[str, ...]:
        """The model names the Router may fall back to from ``model_name``, in order."""
        names: list[str] = []
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for rule in self.router_settings.get(key) or []:
                if isinstance(rule, Mapping) and isinstance(rule.get(model_name), list):
                    names.extend(str(n) for n in rule[model_name])
        names.extend(str(n) for n in self.router_settings.get("default_fallbacks") or [])
        return tuple(n for n in dict.fromkeys(names) if n != model_name)


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


# The litellm_params a deployment called directly may have: anything else (rpm, tpm, weights, custom
# prices, headers, regions, ...) is the Router's to apply, and such a model always goes through it.
DIRECT_PARAMS = frozenset({"model", "api_base", "api_key", "timeout", "stream_timeout", "max_retries", "organization"})
OPENAI_API_BASE = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_S = 600.0  # LiteLLM's own default for a request
DEFAULT_COOLDOWN_S = 5.0  # LiteLLM's cooldown of a deployment after failures


@dataclass(frozen=True)
class DirectDeployment:
    """An OpenAI-compatible deployment the gateway may call itself, with what the Router would send it."""

    model_group: str  # the name clients call
    model: str  # the model sent to the upstream (``gpt-4o-mini`` of ``openai/gpt-4o-mini``)
    model_id: str  # the Router's id of the deployment, stored with each attempt
    api_base: str
    api_key: str = field(repr=False)  # never in a log line
    organization: str | None
    timeout_s: float
    stream_timeout_s: float


def _plain_openai_model(model: str) -> bool:
    """True when LiteLLM sends this model's chat completions as they are: its plain OpenAI chat config (not
    the o-series' or GPT-5's, which rename and drop parameters)."""
    import litellm
    from litellm.llms.openai.chat.gpt_transformation import OpenAIUnknownModelConfig
    from litellm.utils import ProviderConfigManager

    config = ProviderConfigManager.get_provider_chat_config(model=model, provider=litellm.LlmProviders.OPENAI)
    return type(config) in (litellm.OpenAIGPTConfig, OpenAIUnknownModelConfig)


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else default


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

    @property
    def num_retries(self) -> int:
        """The Router's retries of a failed call (LiteLLM's default when the config gives none)."""
        value = getattr(self._router, "num_retries", None)
        return value if isinstance(value, int) and value >= 0 else 0

    def retry_wait_s(self, model_name: str, retry_after: str | None) -> float:
        """The Router's wait before its first retry of ``model_name``: none when another deployment can
        take it, else LiteLLM's backoff (the upstream's Retry-After when it gave a short one)."""
        import httpx
        from litellm.utils import calculate_retry_after

        if len(self.config.deployment_models(model_name)) > 1:
            return 0.0
        headers = httpx.Headers({"retry-after": retry_after}) if retry_after else None
        least = self.config.router_settings.get("retry_after")
        least = int(least) if isinstance(least, int | float) and not isinstance(least, bool) and least > 0 else 0
        retries = self.num_retries
        return float(calculate_retry_after(retries, retries, headers, min_timeout=least))

    @property
    def cooldown_s(self) -> float:
        return _seconds(self.config.router_settings.get("cooldown_time"), DEFAULT_COOLDOWN_S)

    def direct_deployments(self, model_name: str) -> tuple[DirectDeployment, ...]:
        """The deployments of ``model_name`` when the gateway may call them itself, else ``()``.

        Every deployment of the name must be an ``openai/`` model that LiteLLM sends as it is, with nothing
        but an API base, a key, an organization and timeouts in its ``litellm_params`` and no price of its
        own; the Router must pick among them at random (its default ``simple-shuffle``, no weights) and
        retry every failure alike (no ``retry_policy`` or ``allowed_fails_policy``).
        Otherwise the Router's own logic would differ from a direct call, and every call goes through it.
        """
        settings = self.config.router_settings
        if settings.get("routing_strategy") not in (None, "simple-shuffle") or any(
            settings.get(key) for key in ("enable_pre_call_checks", "retry_policy", "allowed_fails_policy")
        ):
            return ()
        entries = [e for e in self._router_entries() if e.get("model_name") == model_name]
        found = []
        for entry in entries:
            deployment = self._direct(entry, settings)
            if deployment is None:
                return ()
            found.append(deployment)
        return tuple(found)

    def _router_entries(self) -> list[Mapping[str, Any]]:
        """The Router's deployments, with the ids it gave them."""
        registry = getattr(self._router, "registry", None)
        if callable(registry):
            return [dict(e) for e in registry().all()]
        return [dict(e) for e in self._router.model_list]

    def _direct(self, entry: Mapping[str, Any], settings: Mapping[str, Any]) -> DirectDeployment | None:
        params = {k: v for k, v in dict(entry.get("litellm_params") or {}).items() if v not in (None, False)}
        model = str(params.get("model") or "")
        info = dict(entry.get("model_info") or {})
        if not model.startswith("openai/") or not set(params) <= DIRECT_PARAMS or "*" in str(entry["model_name"]):
            return None
        if any("cost" in str(key) for key in info) or not info.get("id"):
            return None
        bare = model[len("openai/") :]
        key = params.get("api_key") or os.environ.get("OPENAI_API_KEY")
        if not bare or not isinstance(key, str) or not key or not _plain_openai_model(bare):
            return None
        base = params.get("api_base") or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
        timeout = _seconds(params.get("timeout"), _seconds(settings.get("timeout"), DEFAULT_TIMEOUT_S))
        stream_timeout = _seconds(params.get("stream_timeout"), _seconds(settings.get("stream_timeout"), timeout))
        organization = params.get("organization")
        return DirectDeployment(
            model_group=str(entry["model_name"]),
            model=bare,
            model_id=str(info["id"]),
            api_base=str(base or OPENAI_API_BASE).rstrip("/"),
            api_key=key,
            organization=str(organization) if organization else None,
            timeout_s=timeout,
            stream_timeout_s=stream_timeout,
        )

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

    async def alist_input_items(self, response_id: str, **page: Any) -> Any:
        """``Router.alist_input_items``: the input items of the stored response, asked of the deployment
        its id names; ``page`` is OpenAI's ``after``, ``before``, ``limit``, ``order`` and ``include``."""
        return await self._router.alist_input_items(response_id=response_id, **page)


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
        return status_failure(TIMED_OUT, detail)
    if isinstance(exc, litellm.RateLimitError):
        return status_failure(429, detail, _retry_after(exc))
    if isinstance(exc, litellm.ContextWindowExceededError | litellm.ContentPolicyViolationError):
        return status_failure(400, detail)
    if isinstance(exc, litellm.BadRequestError) and not isinstance(exc, litellm.AuthenticationError):
        return status_failure(400, detail)
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        return status_failure(401, detail)
    return status_failure(502, detail)


TIMED_OUT = 408  # the status :func:`status_failure` takes for an upstream that did not answer in time


def status_failure(status: int, detail: str, retry_after: str | None = None) -> UpstreamFailure:
    """How an upstream's failed answer is told to the client, by its HTTP status (:data:`TIMED_OUT` for
    no answer in time, 0 for no answer at all): what a LiteLLM error of that status is told as."""
    if status == TIMED_OUT:
        return UpstreamFailure(504, "timeout", "upstream_timeout", f"the upstream provider timed out: {detail}")
    if status == 429:
        return UpstreamFailure(429, "rate_limit_error", "upstream_rate_limited", detail, retry_after)
    if status in (400, 422):
        return UpstreamFailure(400, "invalid_request_error", "upstream_refused_request", detail)
    if status in (401, 403):  # the gateway's own credentials for the provider: not the client's mistake
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
