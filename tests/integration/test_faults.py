"""Every AWS call of every function through every fault (faultinjection.py, botocore's real retries):
each outcome is decided, nothing is lowered that a fault-free tick would not lower, the ledger agrees
with the target, and docs/faults.md is the matrix this run produces. Plus botocore's real attempt
count, and the worst case of one call against the functions' Timeout."""

from __future__ import annotations

from typing import Any

import pytest
import template_values as tv
from faultinjection import FAULTS_BY_NAME, generate, render
from prescaler import service
from prescaler.aws import clients

pytestmark = pytest.mark.integration

#: Faults the next tick cannot fix: the function fails so the Errors alarm fires.
ALARMED = {"access_denied": "permission_denied", "validation": "rejected"}
#: Faults botocore retries: the attempts a persistent one makes (the first request included).
RETRIED = ("throttled", "5xx", "unreachable")
#: (function, operation, occurrence) after which the MinCapacity change has been made: a fault
#: there cannot undo it, the tick reports what was done.
AFTER_THE_CHANGE = {("prescale", "UpdateItem", 2), ("relax", "UpdateItem", 2),
                    ("relax", "UpdateEndpointWeightsAndCapacities", 1)}


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return generate()


def _cells(matrix: dict[str, Any]) -> list[tuple[tuple, Any]]:
    return list(matrix["cells"].items())


def test_the_matrix_covers_every_call_of_every_function_and_every_fault(matrix: dict[str, Any]) -> None:
    calls = {(fn, op) for (fn, _svc, op, _n, _f) in matrix["cells"]}
    assert {("prescale", "RegisterScalableTarget"), ("relax", "UpdateEndpointWeightsAndCapacities"),
            ("prescale", "GetMetricData"), ("relax", "UpdateItem"), ("gpu_metric", "PutMetricData"),
            ("gpu_metric", "DescribeEndpointConfig"), ("prescale", "DescribeScalingActivities")} <= calls
    faults = {f for (*_, f) in matrix["cells"]}
    assert faults == set(FAULTS_BY_NAME)
    # and the fault-free ticks do what the scenarios say
    base = matrix["baseline"]
    assert (base["prescale"].outcome, base["prescale"].min_before, base["prescale"].min_after) == ("applied", 2, 6)
    assert (base["relax"].outcome, base["relax"].min_after, base["relax"].desired_after) == ("applied", 2, 2)
    assert base["gpu_metric"].outcome == "applied"


def test_every_fault_has_a_decided_outcome(matrix: dict[str, Any]) -> None:
    decided = {"applied", "hold", "throttled", "unavailable", "deferred", "duplicate"}
    for (fn, _svc, op, n, fault), cell in _cells(matrix):
        where = f"{fn} {op}#{n} {fault}: {cell.outcome}"
        assert not cell.outcome.startswith("UNHANDLED"), where
        if fault in ALARMED and (fn, op, n) not in AFTER_THE_CHANGE and op != "UpdateEndpointWeightsAndCapacities":
            assert cell.outcome == f"{ALARMED[fault]}: fails (Errors alarm)", where
        elif fault == "killed":
            assert cell.outcome.split(" -> ")[1] in decided, where
        else:
            assert cell.outcome in decided, where


def test_no_fault_lowers_more_than_a_fault_free_tick_and_the_ledger_agrees(matrix: dict[str, Any]) -> None:
    for (fn, _svc, op, n, fault), cell in _cells(matrix):
        base = matrix["baseline"][fn]
        where = f"{fn} {op}#{n} {fault}: {cell}"
        assert cell.min_after in (cell.min_before, base.min_after), where
        assert cell.min_after >= min(cell.min_before, base.min_after), where
        assert cell.desired_after >= base.desired_after, where
        if cell.outcome not in ("applied",) and not cell.outcome.startswith("killed"):
            assert cell.min_after == cell.min_before, where  # a hold changed nothing
        assert cell.ledger_consistent, where


def test_botocore_retries_the_retryable_faults_three_times_in_all(matrix: dict[str, Any]) -> None:
    assert clients.ATTEMPTS == 3
    for (fn, _svc, op, n, fault), cell in _cells(matrix):
        where = f"{fn} {op}#{n} {fault}: {cell}"
        if fault in RETRIED:
            assert cell.attempts == clients.ATTEMPTS, where
        elif fault == "throttled_once":
            assert cell.attempts == 2 and cell.outcome == matrix["baseline"][fn].outcome, where
        else:
            assert cell.attempts == 1, where  # not retried: AccessDenied, validation, killed


def test_a_killed_tick_is_recovered_by_the_next_one(matrix: dict[str, Any]) -> None:
    for (fn, _svc, op, n, fault), cell in _cells(matrix):
        if fault == "killed":
            base = matrix["baseline"][fn]
            assert cell.min_after == base.min_after, f"{fn} {op}#{n}: {cell}"
            assert cell.desired_after == base.desired_after, f"{fn} {op}#{n}: {cell}"


def test_docs_faults_md_is_the_generated_matrix(matrix: dict[str, Any]) -> None:
    committed = (tv.ROOT / "docs" / "faults.md").read_text()
    assert committed == render(matrix), "docs/faults.md is out of date: run `make faults`"


def test_one_calls_worst_case_fits_the_function_timeout_with_room_to_record_the_outcome() -> None:
    # Given the template's Timeout and the clients' retry config
    timeout_s = int(tv.template()["Globals"]["Function"]["Timeout"])
    retries = clients.CONFIG.retries
    assert retries == {"mode": "standard", "total_max_attempts": clients.ATTEMPTS}
    assert (clients.CONFIG.connect_timeout, clients.CONFIG.read_timeout) == (clients.CONNECT_TIMEOUT_S,
                                                                             clients.READ_TIMEOUT_S)
    # When one call fails every attempt on its timeouts, with botocore's longest backoff between them
    worst = clients.worst_case_call_s()
    assert worst == clients.ATTEMPTS * (clients.CONNECT_TIMEOUT_S + clients.READ_TIMEOUT_S) + (1 + 5) + (2 + 5)
    # Then it ends with at least 15 s of the Timeout left to log, publish metrics and return a result
    assert worst + 15 <= timeout_s, (worst, timeout_s)
    # and a ledger intent outlives any invocation that could still be running
    assert service.INTENT_IN_FLIGHT.total_seconds() > timeout_s
