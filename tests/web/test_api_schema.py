"""Property-based test of the JSON API against its own OpenAPI schema (schemathesis): no server error,
responses conform to the schema, for an administrator's token and a plain user's."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.web_seed import ADA, ROOT, Api

pytestmark = pytest.mark.slow

schema = schemathesis.pytest.from_fixture("api_schema")
# No server error, and every response as documented (status code, content type, headers, body schema).
# Not schemathesis' data-acceptance checks: unknown query parameters are ignored, as most APIs do, and
# some schema-valid values are refused on purpose with a documented 400 (a `before` that is not a
# cursor we issued, `until` not after `since`).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BOUNDED = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def api_schema(api: Api) -> object:
    return schemathesis.openapi.from_asgi("/openapi.json", api.app)


@schema.parametrize()
@BOUNDED
def test_api_conforms_to_its_schema_as_admin(case: schemathesis.Case, api: Api) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {api.tokens[ROOT]}"}, checks=CHECKS)


@schema.parametrize()
@BOUNDED
def test_api_conforms_to_its_schema_as_user(case: schemathesis.Case, api: Api) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {api.tokens[ADA]}"}, checks=CHECKS)
