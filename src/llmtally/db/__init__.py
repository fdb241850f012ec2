"""Everything that talks to PostgreSQL lives in this package; nothing else imports the driver."""

from llmtally.db.database import Database, acting_as, connect_url, translate
from llmtally.db.embedded import EmbeddedServer

__all__ = ["Database", "EmbeddedServer", "acting_as", "connect_url", "translate"]
