"""Branch coverage of the core layers, from the coverage data the test run left behind.

    python scripts/coverage_check.py [--min 95]

Prints, for codecs, engine and socketio, the share of branches taken by the tests and the
branches never taken (file:line->line), and exits 1 when a layer is under the minimum.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

LAYERS = ("codecs", "engine", "socketio")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min", type=float, default=95.0, help="minimum %% of branches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)],
                       check=True)
        data = json.loads(out.read_text())
    taken: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    missing: dict[str, list[str]] = defaultdict(list)
    for name, info in sorted(data["files"].items()):
        parts = Path(name).parts
        layer = next((p for p in LAYERS if p in parts[-2:-1]), None)
        if layer is None:
            continue
        summary = info["summary"]
        total[layer] += summary["num_branches"]
        taken[layer] += summary["covered_branches"]
        for source, target in info.get("missing_branches", []):
            missing[layer].append(f"{'/'.join(parts[-2:])}:{source}->{target}")
    failed = False
    for layer in LAYERS:
        share = 100.0 * taken[layer] / total[layer] if total[layer] else 100.0
        ok = share >= args.min
        failed |= not ok
        print(f"branch coverage {layer:9} {share:5.1f}% of {total[layer]} branches"
              f"{'' if ok else f'  (under {args.min:g}%)'}")
        for branch in missing[layer]:
            print(f"    not taken: {branch}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
