#!/bin/sh
# Alertmanager reads no environment variables in its configuration: this writes ALERT_WEBHOOK_URL
# into it, then starts Alertmanager on the result. `start.sh render` prints the result only (the
# check in test/infra/compose.test.ts runs it that way).
set -eu
TEMPLATE="${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}"
RENDERED=/tmp/alertmanager.yml

url="${ALERT_WEBHOOK_URL:-}"
case "$url" in
  http://* | https://*) ;;
  *) echo "ALERT_WEBHOOK_URL must be an http(s) URL" >&2 && exit 1 ;;
esac
# The URL sits in single quotes in YAML: a quote or whitespace would end it or be dropped.
case "$url" in
  *"'"* | *[[:space:]]*) echo "ALERT_WEBHOOK_URL must not contain quotes or whitespace" >&2 && exit 1 ;;
esac

# Literal replacement (index/substr, not a regular expression): & and \ in the URL stay as they are.
render() {
  awk -v key='${ALERT_WEBHOOK_URL}' '{
    i = index($0, key)
    if (i) $0 = substr($0, 1, i - 1) ENVIRON["ALERT_WEBHOOK_URL"] substr($0, i + length(key))
    print
  }' "$TEMPLATE"
}

if [ "${1:-}" = render ]; then
  render
  exit 0
fi
render >"$RENDERED"
exec /bin/alertmanager --config.file="$RENDERED" --storage.path=/alertmanager
