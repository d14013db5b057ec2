"""Load ``scripts/<name>.py`` (not a package) as a module, for the tests of the project's scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def script_module(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module, registered in ``sys.modules`` (its dataclasses resolve their
    annotations)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
