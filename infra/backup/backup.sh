#!/bin/sh
# PostgreSQL dumps for the compose `backup` service (docs/operations.md, "Backups and restore").
#
#   backup.sh          a dump at start, then every BACKUP_INTERVAL_H hours, forever
#   backup.sh once     one dump, then exit: restore drills, a dump before a risky change
#   backup.sh check    exit 0 when the newest dump is younger than two intervals (the healthcheck)
#
# Settings: BACKUP_DIR (/backups), BACKUP_INTERVAL_H (6), BACKUP_KEEP (28), BACKUP_RETRY_S (300),
# BACKUP_RUN_AS (unset: the current user).
#
# Connection from libpq's own variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD), or the
# password from the file PGPASSWORD_FILE names (a Docker secret). Dumps are pg_dump's custom format
# (`pg_restore` reads it, table by table if need be), named adiuva-<UTC time>.dump, so their names
# sort by age. Each is written to a hidden temporary file in the same directory and renamed when
# complete: a dump that is listed is whole, and a crash leaves only a temporary file, removed later.
set -eu

BACKUP_DIR="${BACKUP_DIR:-/backups}"
BACKUP_INTERVAL_H="${BACKUP_INTERVAL_H:-6}"
BACKUP_KEEP="${BACKUP_KEEP:-28}"
# After a failed dump, the next attempt comes this much sooner than a whole interval.
BACKUP_RETRY_S="${BACKUP_RETRY_S:-300}"

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) backup: $*"; }
fail() {
  log "$*" >&2
  exit 2
}
positive() { case "$2" in '' | *[!0-9]* | 0*) fail "$1 must be a positive whole number, got '$2'" ;; esac }
positive BACKUP_INTERVAL_H "$BACKUP_INTERVAL_H"
positive BACKUP_KEEP "$BACKUP_KEEP"
positive BACKUP_RETRY_S "$BACKUP_RETRY_S"

if [ -n "${PGPASSWORD_FILE:-}" ]; then
  PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
  # Read once, here: after the step down below the file may no longer be readable.
  export PGPASSWORD
  unset PGPASSWORD_FILE
fi

# BACKUP_RUN_AS (the compose service: postgres): started as root, since a new volume belongs to
# root, hand the directory to that user and go on as it, as the image's own entrypoint does
# (su-exec on Alpine, gosu on Debian).
if [ -n "${BACKUP_RUN_AS:-}" ] && [ "$(id -u)" = 0 ] && [ "${1:-loop}" != check ]; then
  for step_down in su-exec gosu; do
    if command -v "$step_down" >/dev/null 2>&1; then
      mkdir -p "$BACKUP_DIR"
      chown "$BACKUP_RUN_AS" "$BACKUP_DIR"
      exec "$step_down" "$BACKUP_RUN_AS" sh "$0" "$@"
    fi
  done
  fail "BACKUP_RUN_AS is set but neither su-exec nor gosu is installed"
fi

# Dumps hold password hashes and wrapped encryption keys: readable by their owner only.
umask 077

newest_fresh() {
  find "$BACKUP_DIR" -maxdepth 1 -name 'adiuva-*.dump' -mmin "-$((BACKUP_INTERVAL_H * 2 * 60))" 2>/dev/null | grep -q .
}

prune() {
  # Names sort by time; everything past the newest BACKUP_KEEP goes.
  find "$BACKUP_DIR" -maxdepth 1 -name 'adiuva-*.dump' | sort -r | tail -n "+$((BACKUP_KEEP + 1))" |
    while IFS= read -r old; do
      rm -f "$old"
      log "removed $old"
    done
}

dump() {
  mkdir -p "$BACKUP_DIR"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  final="$BACKUP_DIR/adiuva-$stamp.dump"
  partial="$BACKUP_DIR/.adiuva-$stamp.dump.partial"
  if ! pg_dump --format=custom --no-password --file="$partial"; then
    rm -f "$partial"
    log "pg_dump failed" >&2
    return 1
  fi
  mv "$partial" "$final"
  log "wrote $final ($(wc -c <"$final" | tr -d ' ') bytes)"
  prune
}

case "${1:-loop}" in
once)
  dump
  ;;
check)
  newest_fresh || fail "no dump in $BACKUP_DIR younger than $((BACKUP_INTERVAL_H * 2)) h"
  ;;
loop)
  # Temporary files of a dump cut short by a stop or a crash.
  find "$BACKUP_DIR" -maxdepth 1 -name '.adiuva-*.dump.partial' -exec rm -f {} + 2>/dev/null || true
  # A stop between dumps ends the wait at once instead of at Docker's SIGKILL.
  sleeper=""
  trap 'log "stopping"; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT
  log "every ${BACKUP_INTERVAL_H} h into $BACKUP_DIR, keeping $BACKUP_KEEP"
  while :; do
    if dump; then wait_s=$((BACKUP_INTERVAL_H * 3600)); else wait_s="$BACKUP_RETRY_S"; fi
    sleep "$wait_s" &
    sleeper=$!
    wait "$sleeper"
  done
  ;;
*)
  fail "usage: backup.sh [loop|once|check]"
  ;;
esac
