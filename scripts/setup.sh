#!/usr/bin/env bash
# Prepares this checkout to run mcuota and its tests on a fresh Debian machine with Python >= 3.11:
#   - the Debian tools the interop tests and transports talk to, when missing (needs root or sudo);
#   - .venv with mcuota installed in editable mode with its dev extras.
# Idempotent: a second run with nothing changed takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "mcuota needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1 || echo missing))"; exit 1
fi

# Debian packages by the command that proves they are installed.
declare -A tools=(
  [srec_cat]=srecord          # CRC interop (srec_cat -crc32-l-e / -stm32-l-e)
  [dfu-suffix]=dfu-util       # DFU suffix / DfuSe interop (dfu-suffix, dfuse-pack)
  [sz]=lrzsz                  # YMODEM interop (sz / rz)
  [socat]=socat               # pty pairs for serial tests
  [mosquitto]=mosquitto       # a real MQTT broker the tests start on a free port
  [mosquitto_sub]=mosquitto-clients
  [curl]=curl
)
missing=()
for cmd in "${!tools[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${tools[$cmd]}")
done
# The update-server tests start their own PostgreSQL server; Debian keeps its binaries off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=("postgresql")
# dfuse-pack (Debian's dfu-util) imports intelhex from the system Python for its -i option.
/usr/bin/python3 -c 'import intelhex' >/dev/null 2>&1 || missing+=("python3-intelhex")
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=("python3-venv")
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    say "missing Debian packages: ${missing[*]} (run as root or install them; continuing)"; sudo=(false); fi
  if [ "${sudo[*]}" != false ]; then
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.mcuota-setup
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/mcuota ]; then
  say "installing mcuota and its dev extras into .venv"
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'; } >"$log" 2>&1; then
    cat "$log" >&2; say "pip install failed (log: $log)"; exit 1
  fi
  echo "$want" >"$stamp"
fi
# Byte-compile once: the command line's start-up time counts in every firmware build that signs, and
# environments that set PYTHONDONTWRITEBYTECODE would otherwise recompile mcuota on every run.
.venv/bin/python -m compileall -q -j 0 src >/dev/null
