"""`prescaler simulate --scenario llm-workday`: the inference-component twin from the command line."""

from __future__ import annotations

import json

import pytest
from prescaler.cli import main

pytestmark = pytest.mark.unit


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_llm_workday_compares_the_policies_on_a_component_that_scales_to_zero(capsys) -> None:
    code, out, _ = run(capsys, "simulate", "--scenario", "llm-workday", "--days", "1", "--json",
                       "--copies-per-instance", "4", "--max-instances", "2")
    assert code == 0
    data = json.loads(out)
    # the model is the component's: MinCapacity 0 by default, the placement options as given
    assert data["model"]["min_capacity"] == 0
    assert data["model"]["component"] == {"copies_per_instance": 4, "copy_startup_s": [60.0, 120.0],
                                          "max_instances": 2}
    assert data["settings"]["baseline_min_capacity"] == 0
    assert data["demand"]["evaluated_minutes"] == 1440 and data["demand"]["warmup_minutes"] == 4 * 1440
    assert len(data["policies"]) == 7
    # the table says copies
    code, out, _ = run(capsys, "simulate", "--scenario", "llm-workday", "--days", "1", "--warmup-days", "1")
    assert code == 0 and "req/s per copy" in out and "2 copies per instance" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--scenario", "nope"], "built in: reference, llm-workday"),
    (["--min-capacity", "0"], "scale to zero, only for an inference component"),
    (["--scenario", "llm-workday", "--max-capacity", "9"], "do not fit"),
    (["--scenario", "llm-workday", "--copies-per-instance", "0"], "copies_per_instance"),
    (["--scenario", "llm-workday", "--copy-startup-s", "90", "30"], "low <= high"),
])
def test_component_options_that_cannot_work_are_one_line_errors(capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, "simulate", "--days", "1", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
