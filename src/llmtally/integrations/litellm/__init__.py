"""The LiteLLM integration: the only package of llmtally that imports LiteLLM.

- ``callback``: the SDK callback (payload to ``UsageEvent``), its registration and LiteLLM's logging queues;
- ``models``: what LiteLLM knows of a model: its provider, its token counts, its maximum output;
- ``prices``: LiteLLM's price map, as the ``PriceMap`` the cost rules (``llmtally.domain.cost``) take;
- ``calls``: the LiteLLM calls llmtally makes (``acompletion``) and the kinds of provider errors;
- ``demo_provider``: the offline demo model, an in-process LiteLLM provider;
- ``proxy``: the LiteLLM Proxy plug-in, configured as ``llmtally.proxy.handler`` (docs/litellm-proxy.md).

Nothing here is imported by ``import llmtally`` until it is used: importing LiteLLM takes seconds.
"""
