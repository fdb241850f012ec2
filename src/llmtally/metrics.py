"""Prometheus metrics of this process: what the ledger accepted, wrote, retried, spooled, refused.

Every process keeps its own counters (one writer per process); the app serves them at
``/metrics``. Library users can expose :data:`REGISTRY` with ``prometheus_client`` themselves, or
read :func:`render` for the text format.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_ACCEPTED = Counter(
    "llmtally_events_accepted", "Usage events the ledger accepted from LiteLLM or the application.", registry=REGISTRY
)
EVENTS_WRITTEN = Counter(
    "llmtally_events_written",
    "Usage events written to request_logs (replays of a known call id excluded).",
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "llmtally_events_duplicate",
    "Events already in request_logs (same litellm_call_id), not counted twice.",
    registry=REGISTRY,
)
EVENTS_FAILED = Counter(
    "llmtally_events_failed", "Events in batches whose write attempt failed (they are retried).", registry=REGISTRY
)
EVENTS_RETRIED = Counter("llmtally_events_retried", "Events written again after a failed attempt.", registry=REGISTRY)
EVENTS_SPOOLED = Counter("llmtally_events_spooled", "Events put in the local spool.", registry=REGISTRY)
EVENTS_REPLAYED = Counter("llmtally_events_replayed", "Events replayed from the local spool.", registry=REGISTRY)
EVENTS_QUARANTINED = Counter(
    "llmtally_events_quarantined", "Events the database refused, kept in the quarantine table.", registry=REGISTRY
)
SPOOL_FULL = Counter("llmtally_spool_full", "Times the spool reached its size limit.", registry=REGISTRY)
DATABASE_ERRORS = Counter(
    "llmtally_database_errors", "Failed database operations, by kind.", ["kind"], registry=REGISTRY
)
BUDGET_REFUSALS = Counter(
    "llmtally_budget_refusals", "Calls refused because a hard budget would be exceeded.", registry=REGISTRY
)
RATE_LIMIT_REFUSALS = Counter(
    "llmtally_rate_limit_refusals", "Calls refused by a per-user rate limit.", registry=REGISTRY
)
QUEUE_DEPTH = Gauge("llmtally_queue_depth", "Events waiting in memory for the writer.", registry=REGISTRY)
SPOOL_DEPTH = Gauge("llmtally_spool_depth", "Events waiting in the local spool.", registry=REGISTRY)
BATCH_SIZE = Histogram(
    "llmtally_batch_size",
    "Events per written batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
FLUSH_SECONDS = Histogram(
    "llmtally_flush_seconds",
    "Seconds to write one batch (one transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def render() -> bytes:
    """The metrics in Prometheus' text exposition format."""
    return generate_latest(REGISTRY)
