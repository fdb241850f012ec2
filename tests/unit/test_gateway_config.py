"""The gateway's router config: a LiteLLM Proxy's model_list and router_settings, each mistake one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmtally.errors import ConfigurationError
from llmtally.integrations.litellm.router import GatewayRouter, load_config, parse_config

PROXY_CONFIG = """\
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/GATEWAY_TEST_KEY
  - model_name: gpt-4o-mini
    litellm_params: {model: azure/gpt-4o-mini-eu, api_base: "https://eu.example.com", api_key: k}
  - model_name: claude
    litellm_params: {model: anthropic/claude-haiku-4-5, api_key: k}
router_settings:
  num_retries: 2
  fallbacks: [{"gpt-4o-mini": ["claude"]}]
litellm_settings:
  callbacks: llmtally.proxy.handler
general_settings:
  master_key: sk-1234
"""


def test_a_litellm_proxy_config_loads_with_the_demo_model_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_KEY", "sk-from-env")
    path = tmp_path / "proxy.yaml"
    path.write_text(PROXY_CONFIG)
    config = load_config(path)
    assert config.model_names == ("gpt-4o-mini", "claude", "llmtally/demo")
    assert config.deployment_models("gpt-4o-mini") == ("openai/gpt-4o-mini", "azure/gpt-4o-mini-eu")
    # reserved at the dearest of these: a fallback may bill the call
    assert config.billed_models("gpt-4o-mini")[-1] == "anthropic/claude-haiku-4-5"
    assert config.billed_models("claude") == ("anthropic/claude-haiku-4-5",)
    assert config.model_list[0]["litellm_params"]["api_key"] == "sk-from-env"
    assert config.router_settings == {"num_retries": 2, "fallbacks": [{"gpt-4o-mini": ["claude"]}]}
    assert GatewayRouter(config).model_names == config.model_names


def test_without_a_file_the_demo_model_alone() -> None:
    config = load_config(None)
    assert (config.model_names, config.source) == (("llmtally/demo",), "built-in")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_list: [\n  - model_name: x\n  bad", "is not valid YAML at line"),
        ("- a\n- b\n", "the file must be a mapping"),
        ("model_list: {a: 1}\n", "model_list must be a list"),
        ("model_list:\n  - litellm_params: {model: openai/x}\n", "model_list[0] needs a model_name"),
        ("model_list:\n  - model_name: x\n", "model_list[0] (x) needs litellm_params.model"),
        (
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, api_key: os.environ/NOT_SET_HERE}\n",
            "names os.environ/NOT_SET_HERE but NOT_SET_HERE is not set",
        ),
        ("router_settings: [1]\n", "router_settings must be a mapping"),
        ("router_settings: {num_retries: 1, redis_host: r}\n", "router_settings has redis_host"),
    ],
)
def test_each_mistake_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as refused:
        load_config(path)
    assert message in str(refused.value) and str(path) in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_file_and_a_setting_litellm_refuses(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read the gateway config .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    config = parse_config({"router_settings": {"routing_strategy": "by-the-moon"}}, "gateway.yaml")
    with pytest.raises(ConfigurationError, match=r"gateway\.yaml: LiteLLM refused the config") as refused:
        GatewayRouter(config)
    assert "\n" not in str(refused.value)


def _router(*entries: dict[str, object], **settings: object) -> GatewayRouter:
    return GatewayRouter(parse_config({"model_list": list(entries), "router_settings": settings}, "test"))


def _entry(name: str, **params: object) -> dict[str, object]:
    return {"model_name": name, "litellm_params": {"api_base": "http://up.example/v1/", "api_key": "sk-x", **params}}


def test_plain_openai_deployments_are_called_directly_with_what_the_router_would_send() -> None:
    router = _router(
        _entry("a", model="openai/gpt-4o-mini", timeout=30),
        _entry("a", model="openai/gpt-4o-mini", api_base="http://other.example/v1"),
        _entry("local", model="openai/my-llama", stream_timeout=7),
        num_retries=3,
    )
    first, second = router.direct_deployments("a")
    assert (first.model, first.api_base, first.timeout_s, first.stream_timeout_s) == (
        "gpt-4o-mini",
        "http://up.example/v1",
        30.0,
        30.0,
    )
    assert second.api_base == "http://other.example/v1" and first.model_id != second.model_id
    [local] = router.direct_deployments("local")
    assert (local.model, local.timeout_s, local.stream_timeout_s) == ("my-llama", 600.0, 7.0)
    assert "sk-x" not in repr(local)  # the upstream's key is never in a log line
    assert router.num_retries == 3 and router.direct_deployments("llmtally/demo") == ()


@pytest.mark.parametrize(
    ("entries", "settings"),
    [
        ([_entry("m", model="openai/gpt-4o-mini", rpm=10)], {}),  # the Router's own limits
        ([_entry("m", model="openai/o3-mini")], {}),  # LiteLLM renames and drops parameters
        ([_entry("m", model="openai/gpt-5")], {}),
        ([_entry("m", model="anthropic/claude-haiku-4-5")], {}),
        ([_entry("m", model="openai/gpt-4o-mini"), _entry("m", model="azure/gpt-4o-mini")], {}),  # one of them
        ([_entry("m", model="openai/gpt-4o-mini", input_cost_per_token=1e-6)], {}),  # a price of its own
        (
            [{**_entry("m", model="openai/gpt-4o-mini"), "model_info": {"input_cost_per_token": 1e-6}}],
            {},
        ),
        ([_entry("m", model="openai/gpt-4o-mini")], {"routing_strategy": "latency-based-routing"}),
        ([_entry("m", model="openai/gpt-4o-mini")], {"retry_policy": {"RateLimitErrorRetries": 5}}),
    ],
    ids=["rpm", "o-series", "gpt-5", "anthropic", "mixed", "price-param", "price-info", "strategy", "retry-policy"],
)
def test_a_model_the_router_treats_its_own_way_always_goes_through_it(
    entries: list[dict[str, object]], settings: dict[str, object]
) -> None:
    assert _router(*entries, **settings).direct_deployments("m") == ()


def test_a_deployment_without_a_key_takes_openai_api_key_or_is_not_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o-mini"}}
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert _router(entry).direct_deployments("m") == ()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    [deployment] = _router(entry).direct_deployments("m")
    assert (deployment.api_key, deployment.api_base) == ("sk-env", "https://api.openai.com/v1")
