"""llmtally: know who spent what on LLMs.

A LiteLLM callback and ledger that records every call in PostgreSQL against the user who made it,
with exact per-user counters, analytics and row-level security.
"""

import os as _os

# LiteLLM fetches its price map from the network at import unless told otherwise; the bundled
# copy is what we want by default. A user who sets the variable keeps their choice.
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmtally.analytics import (
    Analytics,
    get_user_analytics,
    get_user_analytics_async,
    get_user_monthly_usage,
    get_user_monthly_usage_async,
    get_user_request_history,
    get_user_request_history_async,
    get_user_token_breakdown,
    get_user_token_breakdown_async,
)
from llmtally.budgeted_calls import Budgets
from llmtally.domain.events import UsageEvent
from llmtally.errors import (
    BudgetExceeded,
    ConfigurationError,
    DatabaseAuthFailed,
    DatabaseError,
    DatabaseUnreachable,
    DataRefused,
    InsufficientPrivilege,
    LlmtallyError,
    MissingExtra,
    RateLimited,
    SchemaNotReady,
    UnknownUser,
    UserInputError,
)
from llmtally.ledger.ledger import Ledger
from llmtally.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "Analytics",
    "BudgetExceeded",
    "Budgets",
    "ConfigurationError",
    "DataRefused",
    "DatabaseAuthFailed",
    "DatabaseError",
    "DatabaseUnreachable",
    "InsufficientPrivilege",
    "Ledger",
    "LlmtallyError",
    "MissingExtra",
    "RateLimited",
    "SchemaNotReady",
    "Settings",
    "UnknownUser",
    "UsageEvent",
    "UserInputError",
    "__version__",
    "get_user_analytics",
    "get_user_analytics_async",
    "get_user_monthly_usage",
    "get_user_monthly_usage_async",
    "get_user_request_history",
    "get_user_request_history_async",
    "get_user_token_breakdown",
    "get_user_token_breakdown_async",
]
