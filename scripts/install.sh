#!/usr/bin/env bash
# Install (or upgrade, or uninstall) listend as a systemd service, from this checkout.
#
#   sudo ./scripts/install.sh [--api-key-file FILE]   install or upgrade in place
#   sudo ./scripts/install.sh --uninstall             remove it; config and state stay
#   ./scripts/install.sh --prefix /tmp/root ...       everything under another root (no systemctl)
#
# What goes where (all under --prefix, default /):
#   /opt/listend                      a virtualenv with listend and its runtime dependencies
#   /etc/systemd/system/listend.service, enabled (multi-user.target)
#   /etc/listend/listend.yaml         from config/examples/pi-microphone.yaml; never overwritten
#   /etc/credstore.encrypted/deepgram the API key (systemd-creds), or /etc/credstore/deepgram
#   /usr/local/bin/listend -> /opt/listend/bin/listend
#   /usr/local/share/man/man1/listend.1, bash completion under /usr/local/share
# /var/lib/listend (state: outboxes, transcripts) belongs to the service and is never touched.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=/
KEY_FILE=""
ACTION=install
SYSTEM_PACKAGES=auto
CREDENTIAL=auto

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --prefix ROOT          install under ROOT instead of / (packaging, tests); implies no
                         systemctl and no Debian packages
  --api-key-file FILE    store the Deepgram API key from FILE ("-": stdin) as the systemd
                         credential `deepgram`; without one listend uses its offline engine
  --credential MODE      auto (default: encrypted with systemd-creds when installing to / and it
                         works), encrypted, or plain (a root-only file in /etc/credstore)
  --no-system-packages   do not apt-get the runtime packages (python3-venv, PortAudio, ...)
  --uninstall            disable and remove the service, the virtualenv, man page and
                         completion; keep /etc/listend, the credential and /var/lib/listend
  -h, --help             this help
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) ROOT="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) ROOT="${1#*=}"; shift ;;
    --api-key-file) KEY_FILE="${2:?--api-key-file needs a file}"; shift 2 ;;
    --api-key-file=*) KEY_FILE="${1#*=}"; shift ;;
    --credential) CREDENTIAL="${2:?--credential needs auto, encrypted or plain}"; shift 2 ;;
    --credential=*) CREDENTIAL="${1#*=}"; shift ;;
    --no-system-packages) SYSTEM_PACKAGES=no; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
case "$CREDENTIAL" in auto | encrypted | plain) ;; *) die "--credential: auto, encrypted or plain" ;; esac

ROOT="$(realpath -m "$ROOT")"
R="${ROOT%/}"                       # prefix for every path ("" for /)
VENV="$R/opt/listend"
UNIT_DIR="$R/etc/systemd/system"
UNIT="$UNIT_DIR/listend.service"
DROPIN_DIR="$UNIT_DIR/listend.service.d"
CONFIG_DIR="$R/etc/listend"
CONFIG="$CONFIG_DIR/listend.yaml"
MAN="$R/usr/local/share/man/man1/listend.1"
COMPLETION="$R/usr/local/share/bash-completion/completions/listend"
LINK="$R/usr/local/bin/listend"      # `listend ...` on the PATH, pointing into the virtualenv

# systemctl only for the real root on a machine where systemd runs; otherwise say what it would do.
LIVE=no
if [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then LIVE=yes; fi
systemctl_do() {
  if [ "$LIVE" = yes ]; then
    systemctl "$@"
  else
    echo "    (systemd is not running here; on the device: systemctl $*)"
  fi
}

if [ -z "$R" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (sudo $0 ...), or use --prefix"; fi

uninstall() {
  say "uninstalling listend from ${ROOT}"
  if [ "$LIVE" = yes ]; then
    systemctl disable --now listend.service 2>/dev/null || true
  elif [ -e "$UNIT" ]; then
    systemctl --root="$ROOT" disable listend.service >/dev/null 2>&1 \
      || rm -f "$UNIT_DIR/multi-user.target.wants/listend.service"
  fi
  rm -f "$UNIT" "$DROPIN_DIR/credential.conf" "$MAN" "$COMPLETION"
  if [ "$(readlink "$LINK" 2>/dev/null)" = /opt/listend/bin/listend ]; then rm -f "$LINK"; fi
  rmdir "$DROPIN_DIR" 2>/dev/null || true
  rm -rf "$VENV"
  systemctl_do daemon-reload
  say "removed the service, $VENV, the man page and the completion"
  echo "    kept: $CONFIG_DIR (config), $R/var/lib/listend (state, outboxes) and the credential"
  echo "    (/etc/credstore*/deepgram); remove them by hand if you want them gone."
}

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

make_venv() {
  python_ok python3 || die "listend needs Python 3.11 or newer (python3 is $(python3 -V 2>&1))"
  if [ -x "$VENV/bin/python" ] && ! python_ok "$VENV/bin/python"; then
    say "the virtualenv's Python is gone or too old: recreating $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtualenv $VENV"
    install -d -m 0755 "$(dirname "$VENV")"
    python3 -m venv "$VENV"
  fi
  say "installing listend and its runtime dependencies into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # Runtime dependencies only (no extras); --upgrade replaces the previous listend in place.
  "$VENV/bin/python" -m pip install --quiet --upgrade "$SRC"
}

store_key() {
  [ -n "$KEY_FILE" ] || return 0
  local mode="$CREDENTIAL"
  if [ "$mode" = auto ]; then
    mode=plain
    if [ -z "$R" ] && command -v systemd-creds >/dev/null \
      && systemd-creds setup >/dev/null 2>&1; then mode=encrypted; fi
  fi
  local key
  if [ "$KEY_FILE" = - ]; then key="$(cat)"; else key="$(cat -- "$KEY_FILE")"; fi
  key="${key//[$'\t\r\n ']/}"
  [ -n "$key" ] || die "the API key file is empty"
  if [ "$mode" = encrypted ]; then
    install -d -m 0700 "$R/etc/credstore.encrypted"
    printf %s "$key" | systemd-creds encrypt --name=deepgram - "$R/etc/credstore.encrypted/deepgram"
    chmod 0600 "$R/etc/credstore.encrypted/deepgram"
    rm -f "$R/etc/credstore/deepgram"
    install -d -m 0755 "$DROPIN_DIR"
    printf '%s\n' "# Written by scripts/install.sh: the key is encrypted with systemd-creds." \
      "[Service]" "LoadCredential=" "LoadCredentialEncrypted=deepgram" \
      >"$DROPIN_DIR/credential.conf"
    say "stored the API key encrypted in /etc/credstore.encrypted/deepgram"
  else
    install -d -m 0700 "$R/etc/credstore"
    (umask 077 && printf %s "$key" >"$R/etc/credstore/deepgram")
    chmod 0600 "$R/etc/credstore/deepgram"
    rm -f "$R/etc/credstore.encrypted/deepgram" "$DROPIN_DIR/credential.conf"
    say "stored the API key in /etc/credstore/deepgram (root only)"
  fi
  unset key
}

install_docs() {
  install -d -m 0755 "$(dirname "$MAN")" "$(dirname "$COMPLETION")"
  "$VENV/bin/listend" manpage >"$MAN.tmp" && mv "$MAN.tmp" "$MAN"
  "$VENV/bin/listend" completion bash >"$COMPLETION.tmp" && mv "$COMPLETION.tmp" "$COMPLETION"
  chmod 0644 "$MAN" "$COMPLETION"
  install -d -m 0755 "$(dirname "$LINK")"
  if [ ! -e "$LINK" ] || [ -L "$LINK" ]; then ln -sfn /opt/listend/bin/listend "$LINK"; fi
}

install_all() {
  local upgrade=no
  [ -x "$VENV/bin/listend" ] && upgrade=yes
  if [ "$SYSTEM_PACKAGES" = auto ] && [ -z "$R" ] && command -v apt-get >/dev/null; then
    say "Debian packages listend needs to run"
    "$SRC/scripts/setup-system.sh" --runtime
  fi
  make_venv
  install_docs

  install -d -m 0755 "$UNIT_DIR"
  install -m 0644 "$SRC/systemd/listend.service" "$UNIT"
  say "installed the unit $UNIT"

  if [ -e "$CONFIG" ]; then
    say "keeping the existing $CONFIG"
  else
    install -d -m 0755 "$CONFIG_DIR"
    install -m 0644 "$SRC/config/examples/pi-microphone.yaml" "$CONFIG"
    say "wrote $CONFIG (a USB microphone; edit it for your sources and sinks)"
  fi
  store_key

  say "checking the config: listend validate $CONFIG"
  # As the service will see it: the credential in $CREDENTIALS_DIRECTORY, no $DEEPGRAM_API_KEY.
  local valid=yes credentials="$R/etc/credstore" scratch=""
  if [ -e "$R/etc/credstore.encrypted/deepgram" ] && command -v systemd-creds >/dev/null; then
    scratch="$(mktemp -d)"
    credentials="$scratch"
    systemd-creds decrypt --name=deepgram "$R/etc/credstore.encrypted/deepgram" \
      "$scratch/deepgram" >/dev/null 2>&1 || true
  fi
  if ! env -u DEEPGRAM_API_KEY CREDENTIALS_DIRECTORY="$credentials" \
    STATE_DIRECTORY="$R/var/lib/listend" "$VENV/bin/listend" validate "$CONFIG"; then
    valid=no
  fi
  [ -z "$scratch" ] || rm -rf "$scratch"

  if [ "$LIVE" = yes ]; then
    systemctl daemon-reload
    systemctl enable listend.service
  else
    systemctl --root="$ROOT" enable listend.service >/dev/null 2>&1 \
      || { install -d -m 0755 "$UNIT_DIR/multi-user.target.wants"
           ln -sf /etc/systemd/system/listend.service \
             "$UNIT_DIR/multi-user.target.wants/listend.service"; }
    echo "    (systemd is not running here: enabled by symlink; start it on the device)"
  fi
  if [ "$valid" = yes ]; then
    if [ "$upgrade" = yes ]; then systemctl_do restart listend.service
    else systemctl_do start listend.service; fi
  fi

  echo
  if [ "$upgrade" = yes ]; then say "listend upgraded in place ($("$VENV/bin/listend" --version | head -1))"
  else say "listend installed ($("$VENV/bin/listend" --version | head -1))"; fi
  cat <<EOF
Next steps:
  sudoedit /etc/listend/listend.yaml          your sources and sinks (docs/configuration.md)
  listend devices                             find your microphone's name
  sudo listend validate /etc/listend/listend.yaml
  sudo systemctl restart listend              after an edit (or: systemctl reload listend)
  systemctl status listend                    Status: what is up, and what is not and why
  journalctl -u listend -f                    the log
  man listend
EOF
  if [ -z "$KEY_FILE" ] && [ ! -e "$R/etc/credstore/deepgram" ] \
    && [ ! -e "$R/etc/credstore.encrypted/deepgram" ]; then
    echo "  sudo $0 --api-key-file KEYFILE     use Deepgram (until then: the offline engine)"
  fi
  if [ "$valid" = no ]; then
    echo
    echo "The config has problems (above): the service is enabled but not started;" >&2
    echo "fix /etc/listend/listend.yaml, then: sudo systemctl restart listend" >&2
    exit 1
  fi
}

if [ "$ACTION" = uninstall ]; then uninstall; else install_all; fi
