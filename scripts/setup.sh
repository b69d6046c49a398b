#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, a virtualenv in .venv, the project.
# Usage: scripts/setup.sh [--dev]   (--dev adds what the tests and benchmarks need)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(graphviz)
if [[ "${1:-}" == "--dev" ]]; then
    apt_packages+=(prometheus)  # the integration tests start a real Prometheus and promtool
    apt_packages+=(prometheus-alertmanager)  # and a real Alertmanager (its inhibit rules)
    apt_packages+=(chromium)    # the web page tests drive it headless with Playwright
    apt_packages+=(valgrind)    # the benchmarks that count instructions (and their smoke test)
    apt_packages+=(linux-perf)  # the one that counts system calls and wake-ups (its smoke test)
fi
python=${PYTHON:-python3}
# Debian's python3 makes a virtualenv only with its venv package (ensurepip) installed.
if [[ ! -x .venv/bin/python ]] && ! "$python" -c "import ensurepip" >/dev/null 2>&1; then
    apt_packages+=(python3-venv)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
extra=""
[[ "${1:-}" == "--dev" ]] && extra="[dev]"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
