#!/usr/bin/env bash
# Make this machine ready for Aion: Debian packages (when root), Python >= 3.11, the .venv.
# Idempotent and quiet when nothing is missing. Used by every Makefile target.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*" >&2; }

# 1. Debian packages: PostgreSQL's server binaries, redis-server, and promtool (from the
#    prometheus package: the tests check compose/'s Prometheus config and alert rules with it).
#    java, mvn, cargo are expected on the machine; `aion stack up` names the install command of
#    any that is missing.
need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v promtool >/dev/null || need+=(prometheus)
command -v wrk >/dev/null || need+=(wrk)  # the HTTP load generator of `aion bench`
command -v chromium >/dev/null || need+=(chromium)  # the console's browser tests (Playwright)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    say "missing: ${need[*]}. Install them with:"
    say "  sudo apt-get install -y ${need[*]}"
    exit 1
  fi
fi

# 2. Python >= 3.11 and the virtual environment.
python=""
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate; break
  fi
done
if [ -z "$python" ]; then
  say "Python >= 3.11 is needed: apt-get install -y python3 python3-venv"
  exit 1
fi
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $python"
  "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages into .venv (first time: about a minute)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
