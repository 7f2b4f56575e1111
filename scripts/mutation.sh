#!/usr/bin/env bash
# Mutation testing of the wire codecs, the engine and the CORS policy (mutmut), run by hand:
# each mutant (a small change to the code) must make at least one test fail. Takes hours on
# two cores. Prints the score and lists the surviving mutants; `mutmut show NAME` shows one.
#   bash scripts/mutation.sh                # everything configured in pyproject.toml
#   bash scripts/mutation.sh "sockjet.codecs*"   # one layer (a mutant name pattern)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/mutmut ] || .venv/bin/python -m pip install -q mutmut
.venv/bin/mutmut run "$@" || true
.venv/bin/mutmut results --all true > mutants/results.txt || true
.venv/bin/python - <<'PY'
from collections import Counter
from pathlib import Path

lines = [line.strip() for line in Path("mutants/results.txt").read_text().splitlines()
         if ": " in line]
status = Counter(line.rsplit(": ", 1)[1] for line in lines)
killed = status["killed"] + status["timeout"]
scored = killed + status["survived"]
print(dict(status))
if scored:
    print(f"mutation score: {killed}/{scored} = {100 * killed / scored:.1f}% killed")
for line in lines:
    if line.endswith(": survived"):
        print("  survived:", line.rsplit(": ", 1)[0])
PY
