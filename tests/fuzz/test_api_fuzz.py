"""Schemathesis on the router's OpenAPI, against the real app in-process (a temp SQLite
store, a manual clock): every operation, with valid and invalid inputs, under a supervisor's,
a worker's and a device's token. No request may answer 5xx, and every answer must match the
published schema. Bounded (examples per operation and role) so the suite stays fast."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.service.conftest import auth

EXAMPLES = 8  # per operation, role and mode
ROLES = ("supervisor", "ken", "kiosk-1")  # staff, a worker (agent), a device


def _operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 20, "the OpenAPI lists the router's operations"
    return ops


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx_or_off_schema(router, mode):
    client = router.client
    router.available("ken")
    router.open_case()  # something to find, offer and act on
    failures: list[str] = []
    ran = 0
    for op in _operations(client.app):
        for who in ROLES:
            headers = auth(who)

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                kw = case.as_transport_kwargs()
                kw["headers"] = {**(kw.get("headers") or {}), **headers}
                kw.pop("cookies", None)
                method, url = kw.pop("method"), kw.pop("url")
                try:
                    response = client.request(method, url, **kw)
                except Exception as exc:  # the app raised: a 500 in production
                    failures.append(f"{who} {method} {url} {kw}: raised {exc!r}")
                    return
                try:
                    case.validate_response(response, checks=[not_a_server_error,
                                                              response_schema_conformance])
                except BaseException as exc:  # collected: one run reports every operation
                    failures.append(f"{who} {method} {url} {kw} -> {response.status_code} "
                                    f"{response.text[:200]}: {str(exc)[:300]}")

            try:
                run()
            except Unsatisfiable:  # no input of this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE
                continue
            ran += 1
    assert not failures, "\n".join(failures[:20])
    assert ran >= 30, f"only {ran} operation × role runs generated requests"
