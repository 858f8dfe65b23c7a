#!/usr/bin/env bash
# Debian packages listend and its tests need. Run as root (or it uses sudo).
# --runtime: only what running listend needs (scripts/install.sh, `make run`).
set -euo pipefail
RUNTIME=(
  python3-venv python3-dev gcc make    # venv and building PyAudio
  portaudio19-dev alsa-utils            # PyAudio -> PortAudio -> ALSA
)
PACKAGES=(
  "${RUNTIME[@]}"
  mosquitto mosquitto-clients           # the MQTT tests run a real broker
  openssl                               # the MQTT TLS test makes its own CA
  espeak-ng sox ffmpeg                  # generated speech for tests and the command source
  systemd procps                        # systemd-analyze for the unit tests; /bin/kill (ExecReload=)
  chromium fonts-dejavu-core            # the captions page tests drive headless Chromium
)
if [ "${1:-}" = --runtime ]; then PACKAGES=("${RUNTIME[@]}"); fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# mosquitto's package starts a system broker on :1883; the tests start their own on free ports.
