"""Schemathesis against the server's own OpenAPI document, over real HTTP: for every operation, a few
generated requests that fit the schema and a few that do not. None may produce a 5xx, and every 4xx
must carry the JSON error body ``{"error": …, "detail": …}``. Kept small so it stays fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from server_helpers import LiveServer, Ops

from mcuota.image.keys import PrivateKey

pytest_plugins = ["server_fixtures"]
EXAMPLES = 5


def where_of(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def test_no_server_errors_for_generated_requests(live_server_factory: Callable[..., LiveServer],
                                                 signing_key: PrivateKey,
                                                 image: Callable[..., bytes]) -> None:
    server = live_server_factory()
    ops = Ops(server)
    ops.trust(signing_key)
    release = ops.upload(image("2.0.0"))
    device_token = ops.device("SN1")
    ops.rollout(release["id"], stages=[100])
    spec = ops.ok("GET", "/openapi.json")
    schema = schemathesis.openapi.from_dict(spec)
    problems: list[str] = []

    def run(operation: Any, mode: GenerationMode) -> None:
        path = operation.path
        token = device_token if path.startswith(("/api/v1/device/", "/seed002/")) else server.admin_key
        fixed = {"serial": "SN1"} if path.startswith("/seed002/") else None     # its own path: go deeper

        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)
            where = f"{case.method} {case.formatted_path} ({mode.value})"
            if response.status_code >= 500:
                problems.append(f"{where}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400 and case.method != "HEAD":
                body = response.json()
                if not (isinstance(body, dict) and "error" in body and "detail" in body):
                    problems.append(f"{where}: {response.status_code} without the error body: {body}")

        try:
            check()
        except Unsatisfiable:  # nothing to get wrong (no parameters, no body): no negative cases
            assert mode is GenerationMode.NEGATIVE, where_of(operation)

    operations = [result.ok() for result in schema.get_all_operations()]
    # destructive operations last (revoking API keys at the very end), so they do not starve the others
    operations.sort(key=lambda op: (op.path.startswith("/api/v1/api-keys/"),
                                    op.method.upper() == "DELETE" or op.path.endswith("/cancel"), op.path))
    assert len(operations) >= 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(operation, mode)
    assert not problems, "\n".join(problems[:20])
