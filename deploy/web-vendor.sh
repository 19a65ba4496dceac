#!/bin/sh
# Fetch mqtt.js for the agent dashboard from the npm registry.
#
# Puts package/dist/mqtt.min.js of the newest mqtt@5 release into
# gateway/web/static/vendor/ (git-ignored) and records its version next to it
# in mqtt.version. Running it again does nothing when that version is already
# there. Override the package spec with MQTTJS_SPEC (default: mqtt@5).
set -eu

SPEC="${MQTTJS_SPEC:-mqtt@5}"
HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
VENDOR="$(dirname -- "$HERE")/gateway/web/static/vendor"
TARGET="$VENDOR/mqtt.min.js"
STAMP="$VENDOR/mqtt.version"

die() { echo "web-vendor.sh: $*" >&2; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm is not installed; install Node.js and npm (Debian: apt-get install nodejs npm) and run this again"
command -v node >/dev/null 2>&1 || die "node is not installed; install Node.js (Debian: apt-get install nodejs) and run this again"

# Newest version matching the spec (npm view lists every match for a range).
WANT=$(npm view "$SPEC" version --json 2>/dev/null | node -e '
  let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    let v; try { v = JSON.parse(s); } catch (e) { process.exit(1); }
    const list = [].concat(v).filter(x => /^\d+\.\d+\.\d+$/.test(x));
    if (!list.length) process.exit(1);
    const key = x => x.split(".").map(Number);
    list.sort((a, b) => { const p = key(a), q = key(b);
      for (let i = 0; i < 3; i++) if (p[i] !== q[i]) return p[i] - q[i]; return 0; });
    console.log(list[list.length - 1]);
  });') || WANT=""

HAVE=""
[ -f "$TARGET" ] && [ -f "$STAMP" ] && HAVE=$(cat "$STAMP")

if [ -z "$WANT" ]; then
    if [ -n "$HAVE" ]; then
        echo "web-vendor.sh: cannot reach the npm registry; keeping mqtt.js $HAVE in $TARGET" >&2
        exit 0
    fi
    die "cannot resolve $SPEC from the npm registry (npm view failed); check network access to the registry"
fi

if [ "$HAVE" = "$WANT" ]; then
    echo "mqtt.js $HAVE already in $TARGET"
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
( cd "$TMP" && npm pack --silent "mqtt@$WANT" >/dev/null ) || die "npm pack mqtt@$WANT failed"
TGZ=$(ls "$TMP"/mqtt-*.tgz 2>/dev/null | head -n 1)
[ -n "$TGZ" ] || die "npm pack produced no tarball in $TMP"
tar -xzf "$TGZ" -C "$TMP" package/dist/mqtt.min.js package/package.json \
    || die "$TGZ has no package/dist/mqtt.min.js"
GOT=$(node -p 'require(process.argv[1]).version' "$TMP/package/package.json")
[ "$GOT" = "$WANT" ] || die "asked npm for mqtt@$WANT but the tarball says $GOT"

mkdir -p "$VENDOR"
cp "$TMP/package/dist/mqtt.min.js" "$TARGET.tmp"
mv "$TARGET.tmp" "$TARGET"
echo "$GOT" > "$STAMP"
echo "installed mqtt.js $GOT into $TARGET ($(wc -c < "$TARGET") bytes)"
