"""Write docs/faults.md: every AWS call of every function x every fault (``make faults``).

Runs the fault-injection harness of tests/integration (faultinjection.py) under moto, in-process, with
no AWS account and no network.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
OUT = ROOT / "docs" / "faults.md"


def main() -> int:
    warnings.simplefilter("ignore")
    from faultinjection import generate, render

    matrix = generate()
    OUT.write_text(render(matrix))
    print(f"wrote {OUT.relative_to(ROOT)}: {len(matrix['cells'])} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
