"""The ledger: LiteLLM events in, rows in request_logs out."""
