"""Values read from template.yaml, so moto resources and the template cannot drift.

A YAML loader that tolerates CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...):
each tagged node becomes ``{"Fn::<Tag>": value}`` (``{"Ref": value}`` for ``!Ref``).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def template() -> dict:
    """template.yaml as a dict (intrinsics kept as ``{"Ref": ...}`` / ``{"Fn::Sub": ...}``)."""
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def default(parameter: str) -> Any:
    """A template parameter's Default, as CloudFormation would pass it (numbers as numbers)."""
    value = template()["Parameters"][parameter]["Default"]
    return value


def function_env(logical_id: str, **overrides: str) -> dict[str, str]:
    """The environment a function gets from the template with every parameter at its default
    (Globals + the function's own variables), ``!Ref Param`` resolved; ``!Ref LedgerTable`` etc.
    must be given in ``overrides``."""
    params = template()["Parameters"]
    env = dict(template()["Globals"]["Function"]["Environment"]["Variables"])
    env.update(template()["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
    out = {}
    for key, value in env.items():
        if key in overrides:
            out[key] = overrides[key]
        elif isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            if ref not in params:
                raise KeyError(f"{key} refers to resource {ref}: pass it in overrides")
            out[key] = str(params[ref].get("Default", ""))
        elif isinstance(value, dict) and value.get("Fn::If", [None])[0] == "IsFleet":
            out[key] = str(value["Fn::If"][2])  # the default FleetMode is single: IsFleet is false
        elif isinstance(value, dict):
            raise KeyError(f"{key}: {value} cannot be resolved from the defaults: pass it in overrides")
        else:
            out[key] = str(value)
    out.update({k: v for k, v in overrides.items() if k not in out})
    return out


def event(name: str) -> Any:
    """One of the sample events in events/ (the same files ``sam local invoke -e`` uses)."""
    return json.loads((EVENTS / name).read_text())


EVENT_FILES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != "env.json")


def dashboard(params: dict[str, str]) -> dict:
    """The Dashboard's body as CloudWatch receives it for these parameter values (``EndpointName``,
    ``VariantName``, ``InferenceComponentName``, ``MetricsNamespace``, ``AWS::Region``): the
    ``Fn::Sub`` variables (``Fn::If [HasComponent, ...]``) resolved, then every ``${...}``."""
    text, variables = template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    has_component = bool(params.get("InferenceComponentName"))

    def sub(value: Any) -> str:
        if isinstance(value, dict) and "Fn::If" in value:
            condition, yes, no = value["Fn::If"]
            assert condition == "HasComponent", value
            return sub(yes if has_component else no)
        if isinstance(value, dict) and "Fn::Sub" in value:
            value = value["Fn::Sub"]
        return re.sub(r"\$\{([^}]+)\}", lambda m: params[m.group(1)], str(value))

    scope = {**params, **{name: sub(v) for name, v in variables.items()}}
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: scope[m.group(1)], text))
