#!/usr/bin/env bash
# Run a command every day at a fixed UTC time, for ever: the compose backup
# service's schedule (the systemd variant uses a timer instead).
#   deploy/nightly.sh HH:MM COMMAND [ARG...]
# A failed run is logged and retried the next night; bin/backup's
# BACKUP_PING_URL is what tells you a night was missed.
set -euo pipefail

usage() {
  echo "usage: $0 HH:MM COMMAND [ARG...]" >&2
  exit 2
}

[ "$#" -ge 2 ] || usage
at=$1
shift
[[ $at =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] || usage

# Stop at once on `docker compose stop` instead of finishing the sleep.
trap 'exit 0' TERM INT

while :; do
  now=$(date -u +%s)
  next=$(date -u -d "today $at" +%s)
  if [ "$next" -le "$now" ]; then
    next=$(date -u -d "tomorrow $at" +%s)
  fi
  echo "nightly: next run of $* at $(date -u -d "@$next" '+%F %H:%M') UTC"
  sleep "$((next - now))" &
  wait "$!"
  "$@" || echo "nightly: $* failed with status $?" >&2
done
