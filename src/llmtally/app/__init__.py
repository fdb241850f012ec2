"""The chat application: a Chainlit chat mounted in a FastAPI app, recording every call in the ledger."""
