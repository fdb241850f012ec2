"""The pure domain: usage events and the rules of their cost. No I/O, no driver, no LiteLLM.

Checked by the import contracts in pyproject.toml (docs/architecture.md).
"""
