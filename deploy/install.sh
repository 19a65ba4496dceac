#!/usr/bin/env bash
# Install callgate on a Raspberry Pi OS / Debian board, from this checkout, as a systemd service.
#
#   sudo bash deploy/install.sh [--with-mosquitto] [--start]     install or upgrade
#   bash deploy/install.sh --dry-run                              print the steps, change nothing
#   bash deploy/install.sh --prefix DIR [--no-venv]               stage everything under DIR (tests)
#
# What lands where (defaults):
#   /opt/callgate/venv                   Python venv with callgate installed from this checkout (not editable)
#   /opt/callgate/firmware_config        modem profiles (replaced on every run; the unit points
#                                        CALLGATE_FIRMWARE_CONFIG here, a non-editable install has no copy)
#   /opt/callgate/share                  the shipped example config and README, for comparison after upgrades
#   /etc/callgate/callgate.toml          the board's config, flows/main.json its flow: copied only when absent
#   /var/lib/callgate                    data (contacts.db, recordings, prompts), owned by user callgate
#   /etc/systemd/system/callgate.service, /etc/udev/rules.d/99-callgate-modems.rules
#   /etc/mosquitto/{conf.d/callgate.conf,callgate.acl,callgate.passwd}   with --with-mosquitto
# Running it again is safe: it skips what is already there and never overwrites a config a
# technician may have edited. With --prefix (or when not root) it only writes files under the
# given folders and skips apt-get, useradd, chown, systemctl and udevadm, saying so.
set -euo pipefail

SRC=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
PREFIX=/opt/callgate ETC="" STATE="" MOSQ_ETC=""
DRY=0 START=0 MOSQ=0 VENV=1 STAGED=0 PREFIX_SET=0
SERVICE_USER=callgate

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

options:
  --with-mosquitto   also install and configure mosquitto (listeners, users, ACL) for the gateway
  --start            start (or restart) the service once \`callgate config check\` passes
  --dry-run          print every step without doing it
  --prefix DIR       install under DIR instead of /opt/callgate; implies a staged install
  --etc DIR          config folder (default /etc/callgate, or DIR/etc with --prefix)
  --state DIR        data folder (default /var/lib/callgate, or DIR/var/lib/callgate with --prefix)
  --mosquitto-etc DIR  mosquitto folder (default /etc/mosquitto, or DIR/etc/mosquitto with --prefix)
  --no-venv          skip the venv, pip install and the mqtt.js download (file layout only)
EOF
}

need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "install.sh: $1 needs a folder" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --with-mosquitto) MOSQ=1 ;;
        --start) START=1 ;;
        --dry-run) DRY=1 ;;
        --no-venv) VENV=0 ;;
        --prefix) need_arg "$@"; PREFIX=$2; PREFIX_SET=1; shift ;;
        --etc) need_arg "$@"; ETC=$2; shift ;;
        --state) need_arg "$@"; STATE=$2; shift ;;
        --mosquitto-etc) need_arg "$@"; MOSQ_ETC=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

abs() { case "$1" in /*) printf '%s' "${1%/}" ;; *) printf '%s/%s' "$PWD" "${1%/}" ;; esac; }
PREFIX=$(abs "$PREFIX")
if [ "$PREFIX_SET" = 1 ]; then
    STAGED=1
    ETC=${ETC:-$PREFIX/etc}; STATE=${STATE:-$PREFIX/var/lib/callgate}; MOSQ_ETC=${MOSQ_ETC:-$PREFIX/etc/mosquitto}
else
    ETC=${ETC:-/etc/callgate}; STATE=${STATE:-/var/lib/callgate}; MOSQ_ETC=${MOSQ_ETC:-/etc/mosquitto}
fi
ETC=$(abs "$ETC") STATE=$(abs "$STATE") MOSQ_ETC=$(abs "$MOSQ_ETC")
if [ "$(id -u)" != 0 ]; then
    if [ "$STAGED" = 0 ] && [ "$DRY" = 0 ]; then
        echo "install.sh: run as root (sudo bash deploy/install.sh), or stage into a folder with --prefix DIR" >&2
        exit 1
    fi
    STAGED=1
fi
if [ "$STAGED" = 1 ]; then
    UNIT_DIR=$PREFIX/share/systemd RULES_DIR=$PREFIX/share/udev BIN_DIR=$PREFIX/bin
else
    UNIT_DIR=/etc/systemd/system RULES_DIR=/etc/udev/rules.d BIN_DIR=/usr/local/bin
fi
WRAPPER_MARK="# callgate command wrapper, written by deploy/install.sh"

DONE=()
step() { printf '\n==> %s\n' "$*"; }
did() { DONE+=("$*"); }
run() {
    local a
    printf '  +'
    for a in "$@"; do
        case "$a" in *[!A-Za-z0-9_./=:,@%+-]*|"") printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac
    done
    printf '\n'
    [ "$DRY" = 1 ] || "$@"
}
skip() { printf '  - skipped: %s\n' "$*"; }
root_only() { [ "$STAGED" = 0 ]; }
why_staged() {
    if [ "$PREFIX_SET" = 1 ]; then echo "--prefix given"; else echo "not root"; fi
}

# A shipped file with its default paths pointed at the folders chosen here.
rendered() {
    sed -e "s#/opt/callgate#$PREFIX#g" -e "s#/etc/callgate#$ETC#g" \
        -e "s#/var/lib/callgate#$STATE#g" -e "s#/etc/mosquitto#$MOSQ_ETC#g" "$1"
}
render() {   # render SRC DEST MODE: write atomically
    local src=$1 dest=$2 mode=$3 tmp
    printf '  + render %s -> %s (mode %s)\n' "${src#"$SRC"/}" "$dest" "$mode"
    [ "$DRY" = 1 ] && return 0
    tmp=$(mktemp "$(dirname "$dest")/.callgate.XXXXXX")
    rendered "$src" > "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
}

# Install a file a technician may edit: only when absent. Returns 0 when it was installed now.
install_once() {   # install_once SRC DEST MODE [GROUP]
    local src=$1 dest=$2 mode=$3 group=${4:-}
    if [ -e "$dest" ]; then
        if rendered "$src" | cmp -s - "$dest"; then
            printf '  = kept %s (same as shipped)\n' "$dest"
        else
            printf '  = kept %s (differs from the shipped %s; never overwritten)\n' "$dest" "${src#"$SRC"/}"
        fi
        return 1
    fi
    render "$src" "$dest" "$mode"
    if [ -n "$group" ] && root_only; then run chgrp "$group" "$dest"; fi
    did "installed $dest"
    return 0
}

for f in pyproject.toml firmware_config/simcom_sim7600.toml deploy/demo/flow-main.json \
         deploy/callgate.example.toml deploy/callgate.service deploy/99-callgate-modems.rules; do
    [ -f "$SRC/$f" ] || { echo "install.sh: $SRC/$f is missing; run this from a complete callgate checkout" >&2; exit 1; }
done

echo "callgate install from $SRC"
echo "  venv+code $PREFIX   config $ETC   data $STATE   unit $UNIT_DIR   udev $RULES_DIR"
[ "$MOSQ" = 1 ] && echo "  mosquitto $MOSQ_ETC"
[ "$DRY" = 1 ] && echo "  DRY RUN: nothing is changed"
[ "$STAGED" = 1 ] && echo "  staged install ($(why_staged)): apt-get, useradd, chown, systemctl and udevadm are skipped"

# --- 1. Debian packages ---------------------------------------------------------------------------
step "Debian packages"
APT_PKGS=(python3-venv espeak-ng sox libportaudio2 graphviz)
command -v npm >/dev/null 2>&1 || APT_PKGS+=(nodejs npm)
[ "$MOSQ" = 1 ] && APT_PKGS+=(mosquitto mosquitto-clients)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if root_only; then
    if [ "${#missing[@]}" -gt 0 ]; then
        run apt-get update -qq
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        did "apt-get install ${missing[*]}"
    else
        echo "  = all present: ${APT_PKGS[*]}"
    fi
else
    skip "apt-get install ${APT_PKGS[*]} ($(why_staged))${missing[*]:+; missing here: ${missing[*]}}"
fi

# --- 2. service user ------------------------------------------------------------------------------
step "system user $SERVICE_USER (groups dialout, audio)"
if root_only; then
    if getent passwd "$SERVICE_USER" >/dev/null; then
        echo "  = user $SERVICE_USER exists"
    else
        run useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "callgate gateway" "$SERVICE_USER"
        did "created system user $SERVICE_USER"
    fi
    run usermod --append --groups dialout,audio "$SERVICE_USER"
else
    skip "useradd/usermod $SERVICE_USER ($(why_staged))"
fi

# --- 3. folders -----------------------------------------------------------------------------------
step "folders"
run install -d -m 0755 "$PREFIX" "$PREFIX/share" "$UNIT_DIR" "$RULES_DIR" "$BIN_DIR"
run install -d -m 0755 "$ETC" "$ETC/flows"
if root_only; then
    run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE"
else
    run install -d -m 0750 "$STATE"
fi

# --- 4. code: mqtt.js, then a venv with a non-editable install --------------------------------------
step "venv $PREFIX/venv"
if [ "$VENV" = 1 ]; then
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "install.sh: callgate needs Python 3.11 or newer (Raspberry Pi OS / Debian 12 bookworm or later); python3 here is $(python3 -V 2>&1)" >&2
        exit 1
    fi
    # The dashboard's mqtt.js must be in the tree before pip copies gateway/web/static.
    run sh "$SRC/deploy/web-vendor.sh"
    [ -x "$PREFIX/venv/bin/python" ] || { run python3 -m venv "$PREFIX/venv"; did "created venv $PREFIX/venv"; }
    # Build from a copy so that pip's build/ and egg-info never land, root-owned, in the checkout.
    BUILD=""
    if [ "$DRY" = 0 ]; then
        BUILD=$(mktemp -d)
        trap 'rm -rf "$BUILD"' EXIT
        tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./var --exclude=./build \
            --exclude='*.egg-info' --exclude=__pycache__ --exclude=node_modules -cf - . | tar -C "$BUILD" -xf -
    fi
    run "$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check --no-input "${BUILD:-<copy of $SRC>}"
    did "pip install callgate into $PREFIX/venv"
    if [ "$DRY" = 0 ] && ! ls "$PREFIX"/venv/lib/python3*/site-packages/gateway/web/static/vendor/mqtt.min.js >/dev/null 2>&1; then
        echo "install.sh: warning: the installed package has no web/static/vendor/mqtt.min.js; the dashboard will not connect" >&2
    fi
else
    skip "mqtt.js download, venv and pip install (--no-venv)"
fi

# --- 5. modem profiles ----------------------------------------------------------------------------
step "modem profiles $PREFIX/firmware_config"
run rm -rf "$PREFIX/firmware_config.new"
run cp -R "$SRC/firmware_config" "$PREFIX/firmware_config.new"
run rm -rf "$PREFIX/firmware_config"
run mv "$PREFIX/firmware_config.new" "$PREFIX/firmware_config"
did "refreshed $PREFIX/firmware_config"
render "$SRC/deploy/callgate.example.toml" "$PREFIX/share/callgate.example.toml" 0644
[ -f "$SRC/deploy/README.md" ] && render "$SRC/deploy/README.md" "$PREFIX/share/README.md" 0644

# The `callgate` command for technicians: the venv's, with the profile folder it needs.
WRAPPER=$BIN_DIR/callgate
if [ -e "$WRAPPER" ] && ! grep -qF "$WRAPPER_MARK" "$WRAPPER"; then
    echo "  ! $WRAPPER exists and is not ours: left alone; use $PREFIX/venv/bin/callgate with CALLGATE_FIRMWARE_CONFIG=$PREFIX/firmware_config"
else
    printf '  + write %s (runs %s/venv/bin/callgate with CALLGATE_FIRMWARE_CONFIG=%s/firmware_config)\n' "$WRAPPER" "$PREFIX" "$PREFIX"
    if [ "$DRY" = 0 ]; then
        cat > "$WRAPPER.tmp" <<EOF
#!/bin/sh
$WRAPPER_MARK
# A non-editable install has no firmware_config/ beside the package: point it at the installed copy.
export CALLGATE_FIRMWARE_CONFIG="\${CALLGATE_FIRMWARE_CONFIG:-$PREFIX/firmware_config}"
export CALLGATE_CONFIG="\${CALLGATE_CONFIG:-$ETC/callgate.toml}"
exec "$PREFIX/venv/bin/callgate" "\$@"
EOF
        chmod 0755 "$WRAPPER.tmp" && mv -f "$WRAPPER.tmp" "$WRAPPER"
    fi
    did "command $WRAPPER"
fi

# --- 6. config and flow (only when absent) --------------------------------------------------------
step "config $ETC"
CONFIG_NEW=0
install_once "$SRC/deploy/callgate.example.toml" "$ETC/callgate.toml" 0640 "$SERVICE_USER" && CONFIG_NEW=1
install_once "$SRC/deploy/demo/flow-main.json" "$ETC/flows/main.json" 0644 || true

# --- 7. mosquitto ---------------------------------------------------------------------------------
if [ "$MOSQ" = 1 ]; then
    step "mosquitto $MOSQ_ETC"
    run install -d -m 0755 "$MOSQ_ETC" "$MOSQ_ETC/conf.d"
    MOSQ_CHANGED=0
    install_once "$SRC/deploy/mosquitto/callgate.conf" "$MOSQ_ETC/conf.d/callgate.conf" 0644 && MOSQ_CHANGED=1
    install_once "$SRC/deploy/mosquitto/acl.example" "$MOSQ_ETC/callgate.acl" 0640 mosquitto && MOSQ_CHANGED=1
    PASSWD=$MOSQ_ETC/callgate.passwd
    if [ -f "$PASSWD" ] && grep -q "^$SERVICE_USER:" "$PASSWD"; then
        echo "  = broker user $SERVICE_USER exists in $PASSWD"
    elif ! command -v mosquitto_passwd >/dev/null 2>&1 && [ "$DRY" = 0 ]; then
        skip "broker user $SERVICE_USER: mosquitto_passwd is not installed"
    else
        GW_PW=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
        if [ -f "$PASSWD" ]; then
            printf '  + mosquitto_passwd -b %s %s <generated>\n' "$PASSWD" "$SERVICE_USER"
        else
            printf '  + mosquitto_passwd -c -b %s %s <generated>\n' "$PASSWD" "$SERVICE_USER"
        fi
        if [ "$DRY" = 0 ]; then
            if [ -f "$PASSWD" ]; then mosquitto_passwd -b "$PASSWD" "$SERVICE_USER" "$GW_PW"
            else mosquitto_passwd -c -b "$PASSWD" "$SERVICE_USER" "$GW_PW"; fi
            chmod 0640 "$PASSWD"
        fi
        root_only && run chgrp mosquitto "$PASSWD"
        did "broker user $SERVICE_USER in $PASSWD"
        MOSQ_CHANGED=1
        if [ "$CONFIG_NEW" = 1 ]; then
            printf '  + set [mqtt] password in %s to the generated one\n' "$ETC/callgate.toml"
            [ "$DRY" = 1 ] || sed -i "s#^password = \"CHANGE-ME\"#password = \"$GW_PW\"#" "$ETC/callgate.toml"
            did "[mqtt] password of $ETC/callgate.toml set to the broker user's"
        else
            echo "  ! $ETC/callgate.toml already existed: set its [mqtt] password to the one now in $PASSWD:"
            echo "    sudo mosquitto_passwd $PASSWD $SERVICE_USER   (choose one), then put it in the config"
        fi
    fi
    if root_only; then
        run systemctl enable mosquitto
        if [ "$MOSQ_CHANGED" = 1 ] || ! systemctl is-active --quiet mosquitto; then
            run systemctl restart mosquitto
            did "mosquitto enabled and restarted"
        else
            echo "  = mosquitto running, its callgate files unchanged: not restarted"
        fi
    else
        skip "systemctl enable/restart mosquitto ($(why_staged))"
    fi
fi

# --- 8. systemd unit and udev rules ---------------------------------------------------------------
step "systemd unit and udev rules"
render "$SRC/deploy/callgate.service" "$UNIT_DIR/callgate.service" 0644
render "$SRC/deploy/99-callgate-modems.rules" "$RULES_DIR/99-callgate-modems.rules" 0644
did "installed $UNIT_DIR/callgate.service and $RULES_DIR/99-callgate-modems.rules"
if root_only; then
    run udevadm control --reload-rules
    run udevadm trigger --subsystem-match=tty --subsystem-match=usb --action=add
    run systemctl daemon-reload
    run systemctl enable callgate.service
    did "callgate.service enabled (starts at boot)"
else
    skip "udevadm reload/trigger, systemctl daemon-reload/enable ($(why_staged))"
fi

# --- 9. check, and start when asked ---------------------------------------------------------------
step "config check"
CHECK_OK=unknown
CALLGATE=$PREFIX/venv/bin/callgate
if [ "$DRY" = 1 ]; then
    printf '  + %s config check -c %s\n' "$CALLGATE" "$ETC/callgate.toml"
elif [ -x "$CALLGATE" ]; then
    as_service=()
    root_only && as_service=(runuser -u "$SERVICE_USER" --)
    if "${as_service[@]}" env CALLGATE_FIRMWARE_CONFIG="$PREFIX/firmware_config" \
            "$CALLGATE" config check -c "$ETC/callgate.toml" | sed 's/^/  /'; then
        CHECK_OK=yes
    else
        CHECK_OK=no
    fi
else
    skip "config check: $CALLGATE is not installed (--no-venv)"
fi
if [ "$START" = 1 ]; then
    if ! root_only; then
        skip "start ($(why_staged))"
    elif [ "$CHECK_OK" = no ]; then
        echo "  ! not started: fix the config first (see above), then: sudo systemctl start callgate"
    else
        run systemctl restart callgate.service
        did "callgate.service started"
    fi
fi

# --- summary --------------------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then step "would do (dry run; nothing was changed)"; else step "done"; fi
if [ "${#DONE[@]}" -eq 0 ]; then echo "  nothing to do"; fi
for d in "${DONE[@]}"; do echo "  * $d"; done
CMD=$WRAPPER; [ "$WRAPPER" = /usr/local/bin/callgate ] && CMD=callgate
cat <<EOF

Next steps:
  1. Edit $ETC/callgate.toml (as root): the modem ports (ls -l /dev/callgate/ once the modem is
     plugged in), the queue, and one [[agents]] table per person.
  2. For each agent: $CMD hash-password   (paste the output as its password_hash)
     with mosquitto also: sudo mosquitto_passwd $MOSQ_ETC/callgate.passwd <agent id>   (the same password)
  3. Check: sudo -u $SERVICE_USER $CMD config check -c $ETC/callgate.toml
  4. Start: sudo systemctl restart callgate      logs: journalctl -u callgate -f
  5. Agents open http://<this board>:8080/ and sign in with their agent id and password.
EOF
