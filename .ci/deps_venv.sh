#!/usr/bin/env bash
# Build a venv that runs the suite against the edges of what pyproject.toml allows:
#   .ci/deps_venv.sh lowest [DIR]  every runtime dependency at its floor (the ">=" of
#                                  pyproject.toml, pinned with "=="); what they pull in,
#                                  and the test tools, at their usual versions
#   .ci/deps_venv.sh newest [DIR]  the newest releases installable on this Python
# DIR defaults to .venv-lowest / .venv-newest in the repo. The venv is made anew each time.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: .ci/deps_venv.sh lowest|newest [DIR]}
venv=${2:-.venv-$mode}
python=${PYTHON:-python3}

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip

case $mode in
lowest)
    constraints="$venv/floors.txt"
    # Every runtime dependency must state a floor, or "lowest" would mean nothing.
    "$venv/bin/python" - >"$constraints" <<'PY'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    dependencies = tomllib.load(f)["project"]["dependencies"]
for requirement in dependencies:
    match = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+).*", requirement)
    if not match:
        sys.exit(f"pyproject.toml: {requirement!r} states no '>=' floor")
    print(f"{match[1]}=={match[3]}")
PY
    echo "floors:"; sed 's/^/  /' "$constraints"
    "$venv/bin/pip" install -q -c "$constraints" -e '.[test]'
    ;;
newest)
    "$venv/bin/pip" install -q --upgrade --upgrade-strategy eager -e '.[test]'
    ;;
*)
    echo "usage: .ci/deps_venv.sh lowest|newest [DIR]" >&2
    exit 2
    ;;
esac

"$venv/bin/pip" list --format=freeze 2>/dev/null \
    | grep -iE '^(django|wagtail|stripe|django-q2|cryptography|babel|django-filter)==' \
    | sed 's/^/installed: /'
