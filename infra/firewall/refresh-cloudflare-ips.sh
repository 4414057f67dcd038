#!/bin/sh
# Refreshes Cloudflare's IP ranges in every file that lists them: the trustedIPs of
# infra/traefik/traefik.yml (the list anchored `&cloudflare`) and the CLOUDFLARE_V4 / CLOUDFLARE_V6
# lists of infra/firewall/cloudflare-only.sh. docs/edge.md, "Refreshing Cloudflare's ranges".
#
#   refresh-cloudflare-ips.sh            download, show the diff, rewrite the files
#   refresh-cloudflare-ips.sh --check    download and show the diff only; exit 1 when the files differ
#   refresh-cloudflare-ips.sh --from DIR read DIR/ips-v4 and DIR/ips-v6 instead of downloading
#
# CF_IPS_V4_FILE / CF_IPS_V6_FILE read one list from a file; CF_MIN_V4 / CF_MIN_V6 (default 10 and 5)
# are the fewest ranges accepted. Every line must be a CIDR of its family, no broader than /8 (IPv4)
# or /16 (IPv6), without host bits: a truncated download, an error page or a tampered list is
# refused and nothing is written. Otherwise each file is written to a temporary file beside it and
# renamed over it (same mode), only the lines of the ranges differing. Exit status: 0 done or
# nothing to change, 1 changes found with --check, 2 refused or failed.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TRAEFIK="$ROOT/infra/traefik/traefik.yml"
FIREWALL="$ROOT/infra/firewall/cloudflare-only.sh"
CHECK=false

fail() {
  echo "refresh-cloudflare-ips: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=true ;;
    --from)
      [ $# -ge 2 ] || fail "--from needs a directory"
      CF_IPS_V4_FILE="$2/ips-v4"
      CF_IPS_V6_FILE="$2/ips-v6"
      shift
      ;;
    *) fail "unknown argument: $1 (--check, --from DIR)" ;;
  esac
  shift
done

WORK=$(mktemp -d)
STAGED=""
cleanup() {
  # A file staged beside its target and not yet renamed (an interruption) goes away.
  if [ -n "$STAGED" ]; then rm -f "$STAGED"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' HUP INT TERM

# $1: v4 or v6; $2: where to put it. From CF_IPS_V4_FILE / CF_IPS_V6_FILE, or downloaded.
fetch_list() {
  case "$1" in
    v4) source_file=${CF_IPS_V4_FILE:-} ;;
    *) source_file=${CF_IPS_V6_FILE:-} ;;
  esac
  if [ -n "$source_file" ]; then
    [ -r "$source_file" ] || fail "cannot read $source_file"
    cat "$source_file" >"$2"
  else
    curl -fsS --max-time 20 --retry 2 "https://www.cloudflare.com/ips-$1" -o "$2" ||
      fail "could not download https://www.cloudflare.com/ips-$1"
  fi
}

# $1: v4 or v6; $2: the list as received; $3: the minimum count. Writes the ranges, one a line,
# lower case, to stdout; refuses the whole list on the first line that is not a CIDR.
validate() {
  awk -v family="$1" -v minimum="$3" '
    function hex(digits,   i, value) {
      value = 0
      for (i = 1; i <= length(digits); i++) value = value * 16 + index("0123456789abcdef", substr(digits, i, 1)) - 1
      return value
    }
    # True when every bit of value below its top `kept` bits (of `width`) is zero.
    function aligned(value, kept, width,   block) {
      if (kept < 0) kept = 0
      for (block = 1; kept < width; kept++) block *= 2
      return value % block == 0
    }
    function ipv4(address, prefix,   part, n, i) {
      n = split(address, part, ".")
      if (n != 4 || prefix < 8 || prefix > 32) return 0
      for (i = 1; i <= 4; i++) {
        if (part[i] !~ /^(0|[1-9][0-9]?[0-9]?)$/ || part[i] + 0 > 255) return 0
        if (!aligned(part[i] + 0, prefix - 8 * (i - 1), 8)) return 0
      }
      return 1
    }
    function ipv6(address, prefix,   halves, head, tail, group, n, nh, nt, i) {
      if (prefix < 16 || prefix > 128 || address !~ /^[0-9a-f:]+$/ || address ~ /:::/) return 0
      n = split(address, halves, "::")
      if (n > 2) return 0
      nh = halves[1] == "" ? 0 : split(halves[1], head, ":")
      nt = n == 1 || halves[2] == "" ? 0 : split(halves[2], tail, ":")
      if (n == 1 ? nh != 8 : nh + nt > 7) return 0
      for (i = 1; i <= nh; i++) group[i] = head[i]
      for (i = nh + 1; i <= 8 - nt; i++) group[i] = "0"
      for (i = 1; i <= nt; i++) group[8 - nt + i] = tail[i]
      for (i = 1; i <= 8; i++) {
        if (group[i] !~ /^[0-9a-f][0-9a-f]?[0-9a-f]?[0-9a-f]?$/) return 0
        if (!aligned(hex(group[i]), prefix - 16 * (i - 1), 16)) return 0
      }
      return 1
    }
    {
      sub(/\r$/, "")
      line = tolower($0)
      gsub(/^[ \t]+|[ \t]+$/, "", line)
      if (line == "") next
      slash = index(line, "/")
      address = substr(line, 1, slash - 1)
      prefix = substr(line, slash + 1)
      ok = slash > 1 && prefix ~ /^[0-9]+$/
      if (ok) ok = family == "v4" ? ipv4(address, prefix + 0) : ipv6(address, prefix + 0)
      if (!ok) {
        printf "refresh-cloudflare-ips: ips-%s line %d is not an IP%s range: %s\n", family, NR, family, substr($0, 1, 80) > "/dev/stderr"
        bad = 1
        exit
      }
      if (line in seen) {
        printf "refresh-cloudflare-ips: ips-%s lists %s twice\n", family, line > "/dev/stderr"
        bad = 1
        exit
      }
      seen[line] = 1
      print line
      count++
    }
    END {
      if (bad) exit 2
      if (count < minimum) {
        printf "refresh-cloudflare-ips: ips-%s has %d ranges, fewer than %d: refused\n", family, count, minimum > "/dev/stderr"
        exit 2
      }
    }
  ' "$2" || exit 2
}

# $1: the file's name; $2: an ERE for the line after which the ranges stand; $3: the ranges.
# Prints the file, read from stdin, with the run of range lines after the (single) marker replaced, each new line indented and
# prefixed as the first old one was; fails when the marker or the ranges under it are not found.
rewrite() {
  awk -v marker="$2" -v ranges="$3" '
    BEGIN { while ((getline line < ranges) > 0) list[++n] = line }
    function flush(   i) {
      for (i = 1; i <= n; i++) print lead list[i]
      inside = 0
    }
    inside && /^[ \t]*(- )?[0-9a-fA-F:.]+\/[0-9]+$/ {
      if (!old++) { match($0, /^[ \t]*(- )?/); lead = substr($0, 1, RLENGTH) }
      next
    }
    inside { flush() }
    $0 ~ marker { markers++; inside = 1 }
    { print }
    END {
      if (inside) flush()
      if (markers != 1 || !old) exit 1
    }
  ' || fail "$1: expected one line matching /$2/ followed by the ranges; the file was left alone"
}

fetch_list v4 "$WORK/ips-v4.raw"
fetch_list v6 "$WORK/ips-v6.raw"
validate v4 "$WORK/ips-v4.raw" "${CF_MIN_V4:-10}" >"$WORK/v4"
validate v6 "$WORK/ips-v6.raw" "${CF_MIN_V6:-5}" >"$WORK/v6"
cat "$WORK/v4" "$WORK/v6" >"$WORK/all"

# Every new file is complete and checked before the first one is replaced.
rewrite infra/traefik/traefik.yml 'trustedIPs: &cloudflare$' "$WORK/all" <"$TRAEFIK" >"$WORK/traefik.yml"
rewrite infra/firewall/cloudflare-only.sh '^CLOUDFLARE_V4="$' "$WORK/v4" <"$FIREWALL" >"$WORK/firewall.v4"
rewrite infra/firewall/cloudflare-only.sh '^CLOUDFLARE_V6="$' "$WORK/v6" <"$WORK/firewall.v4" >"$WORK/cloudflare-only.sh"

# $1: the file; $2: its new text. Shows the difference; succeeds when there is one.
differs() {
  if cmp -s "$1" "$2"; then return 1; fi
  diff -u "$1" "$2" | sed "2s|^+++ $WORK/[^	]*|+++ ${1#"$ROOT"/} (Cloudflare's list)|" || true
}
# $1: the file; $2: its new text. Written beside the file with its mode, then renamed over it.
replace() {
  STAGED=$(mktemp "$(dirname "$1")/.$(basename "$1").XXXXXX")
  cp -p "$1" "$STAGED"
  cat "$2" >"$STAGED"
  mv -f "$STAGED" "$1"
  STAGED=""
}

traefik_changed=false
firewall_changed=false
if differs "$TRAEFIK" "$WORK/traefik.yml"; then traefik_changed=true; fi
if differs "$FIREWALL" "$WORK/cloudflare-only.sh"; then firewall_changed=true; fi

if [ "$traefik_changed" = false ] && [ "$firewall_changed" = false ]; then
  echo "Cloudflare's ranges are unchanged ($(wc -l <"$WORK/v4" | tr -d ' ') IPv4, $(wc -l <"$WORK/v6" | tr -d ' ') IPv6)."
  exit 0
fi
if [ "$CHECK" = true ]; then
  echo "Cloudflare's ranges changed; run infra/firewall/refresh-cloudflare-ips.sh to apply (docs/edge.md)."
  exit 1
fi
if [ "$traefik_changed" = true ]; then replace "$TRAEFIK" "$WORK/traefik.yml"; fi
if [ "$firewall_changed" = true ]; then replace "$FIREWALL" "$WORK/cloudflare-only.sh"; fi

cat <<'EOF'
Rewritten. Apply, from the checkout:
  docker compose up -d --force-recreate traefik   # traefik.yml is static configuration, read at start
  sudo infra/firewall/cloudflare-only.sh          # replaces the ADIUVA-CLOUDFLARE chain
Then commit the two files, so the next git pull does not conflict with them.
EOF
