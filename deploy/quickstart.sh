#!/usr/bin/env bash
# The README's two commands:
#   bash deploy/quickstart.sh demo   install what is needed, then run the gateway end to end on the
#                                    embedded defaults (emulated SIM7600, embedded broker, dashboard)
#   bash deploy/quickstart.sh test   install what is needed (plus mosquitto and chromium), run the tests
# Idempotent: a second run installs nothing new. Everything Python goes into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-}"; shift || true
case "$MODE" in demo|test|install) ;; *) echo "usage: bash deploy/quickstart.sh demo|test|install [args]" >&2; exit 2;; esac

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# Debian / Raspberry Pi OS packages. Every mode: speech, audio tools, PortAudio, npm for mqtt.js, and
# Graphviz (the dashboard and `callgate flow render` draw flows with its dot command).
# Tests also start a real mosquitto, drive a real chromium, and check the systemd unit and udev rules.
APT_PKGS=(python3-venv espeak-ng sox libportaudio2 graphviz)
command -v npm >/dev/null 2>&1 || APT_PKGS+=(nodejs npm)
[ "$MODE" = test ] && APT_PKGS+=(mosquitto mosquitto-clients chromium udev systemd)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# python3-venv is only needed where the interpreter lacks venv (pyenv builds have it)
if [ "${#missing[@]}" -gt 0 ] && python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing=("${missing[@]/python3-venv}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
EXTRAS=""; [ "$MODE" = test ] && EXTRAS="[test]"
STAMP=".venv/.callgate-installed$EXTRAS"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "pip install -e .$EXTRAS"
    .venv/bin/pip install -q --disable-pip-version-check -e ".$EXTRAS" 2>&1 | grep -v "is ignored: it is neither" || true
    .venv/bin/python -c "import gateway, webrtcvad, numpy, paho.mqtt, amqtt" && touch "$STAMP"
fi
say "mqtt.js for the dashboard (npm)"
sh deploy/web-vendor.sh

case "$MODE" in
  demo) say "starting the demo (Ctrl-C stops it)"; exec .venv/bin/python -m hil demo "$@" ;;
  test) say "running the tests"; exec .venv/bin/python -m pytest "$@" ;;
  install) say "installed: .venv/bin/callgate --help" ;;
esac
