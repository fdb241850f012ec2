"""Integrations with the libraries llmtally plugs into."""
