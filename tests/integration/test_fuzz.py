"""Fuzzing through the real NGINX, driven by the service's own OpenAPI document (schemathesis).

Every operation of /api/v1/openapi.json gets generated requests that fit its schema
(positive) and requests that break it (negative). Every answer must be documented: no 5xx,
a status listed for the operation, the declared content type, and a body that matches the
response schema; positive requests are accepted and negative ones refused. Schemathesis
leaves out the operation that serves the document itself. Requests leave from the load
generator address, which NGINX does not rate limit, so the document is what is tested, not
the limit.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               negative_data_rejection,
                                               positive_data_acceptance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests import servers
from tests.servers import Stack

pytestmark = pytest.mark.slow

# Beyond conformance, the document must say exactly what the app accepts: data that fits
# it is scored (2xx), data that does not is refused with a 4xx.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, positive_data_acceptance, negative_data_rejection]
# Generated cases per operation and mode: the bodies get them all, since that is where input
# varies (an operation without input is one case). A negative predict case costs ~5 times a
# feedback case to generate, so feedback gets more.
EXAMPLES = {("POST /api/v1/predict", GenerationMode.POSITIVE): 350,
            ("POST /api/v1/predict", GenerationMode.NEGATIVE): 450,
            ("POST /api/v1/feedback", GenerationMode.POSITIVE): 500,
            ("POST /api/v1/feedback", GenerationMode.NEGATIVE): 720}
EXAMPLES_WITHOUT_BODY = 5
MIN_REQUESTS = 2000
# What the service may answer beyond schemathesis's defaults. Negative data may also be
# refused with 413: a batch over maxItems is also a body over the predict route's byte limit,
# which NGINX refuses first. Positive feedback may get 422: a request that fits the schema
# still names a request id this service never issued (documented). The stack has a feedback
# token and the fuzzer sends it (servers.FEEDBACK_AUTH), so feedback reaches the validator.
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"negative_data_rejection": {"expected-statuses": [
        "400", "401", "405", "409", "413", "415", "422", "429", "5xx"]}},
    "operations": [{"include-path": "/api/v1/feedback", "checks": {
        "positive_data_acceptance": {"expected-statuses": [
            "2xx", "401", "409", "422", "429", "5xx"]}}}]})


def _examples(operation: Any, mode: GenerationMode) -> int:
    if operation.body:
        return EXAMPLES[operation.label, mode]
    return EXAMPLES_WITHOUT_BODY if mode is GenerationMode.POSITIVE else 0


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, session: Any,
          sent: Counter) -> str | None:
    """Run the generated cases of one operation and mode; the first failure, if any."""
    key = f"{operation.label} {mode.value}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=_examples(operation, mode), deadline=None, database=None,
              derandomize=True, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        sent[key] += 1
        case.call_and_validate(base_url=base_url, session=session, checks=CHECKS, timeout=30)

    try:
        run()
    except Exception as error:  # the failure and its shrunk example, for the report
        return f"{key}: {str(error)[:3000]}"
    return None


def test_fuzz_every_operation_through_nginx(stack: Stack) -> None:
    document = f"{stack.url}/api/v1/openapi.json"
    schema = schemathesis.openapi.from_url(document, config=CONFIG, timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {operation.label for operation in operations}
    assert {"POST /api/v1/predict", "POST /api/v1/feedback", "GET /api/v1/model"} <= documented
    sent: Counter = Counter()
    failures = []
    started = time.monotonic()
    with servers.load_generator_session() as session:
        session.headers.update(servers.FEEDBACK_AUTH)
        statuses: Counter = Counter()
        session.hooks["response"].append(
            lambda response, *args, **kwargs: statuses.update(
                [(response.request.path_url, response.status_code)]))
        for operation in operations:
            for mode in GenerationMode:
                if _examples(operation, mode):
                    failure = _fuzz(operation, mode, stack.url, session, sent)
                    if failure:
                        failures.append(failure)
    seconds = time.monotonic() - started
    total = sum(sent.values())
    print(f"fuzz: {total} requests in {seconds:.0f}s through NGINX; per operation and mode: "
          f"{dict(sent)}; answers per path and status: {dict(statuses)}")
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_REQUESTS, dict(sent)
    assert {key.rsplit(" ", 1)[0] for key in sent} == documented, "every operation was sent"
    # The token got feedback past authentication to the validator and the id check (the
    # 401s come from negative cases that drop or spoil the credential).
    assert statuses[("/api/v1/feedback", 422)] > 0
    assert statuses[("/api/v1/predict", 200)] > 0 and statuses[("/api/v1/predict", 422)] > 0
