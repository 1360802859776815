#!/usr/bin/env bash
{% set slug = cookiecutter.project_slug %}
# Deploy one revision of {{ cookiecutter.project_name }} on this server, or roll
# back. What CI runs over SSH (as root); bootstrap.sh installs it as
# /usr/local/sbin/{{ slug }}-deploy, and each deploy refreshes that copy.
#
#   deploy.sh REVISION [REPOSITORY]   deploy a commit, branch or tag
#   deploy.sh --commit SHA            deploy a 40-character commit id, nothing
#                                     else: what the CI key may run (docs/ci.md)
#   deploy.sh --rollback              go back to the previous release
#
# REPOSITORY defaults to DEPLOY_REPO from /etc/{{ slug }}/deploy.conf (the bare
# repository /srv/{{ slug }}/repo.git that CI pushes to). Each release lives in
# /srv/{{ slug }}/releases/<commit>/ with its own .venv; /srv/{{ slug }}/current
# points at the live one and /srv/{{ slug }}/previous at the one before, so a
# rollback is a symlink switch and a restart. Steps: fetch, install the
# dependencies, bin/release (migrations, static files), switch, restart, wait
# for /healthz to report the new revision; if it does not, switch back, say so
# and exit 1. Migrations are not undone: keep them backward compatible.
set -euo pipefail

APP={{ slug }}
DOMAIN={{ cookiecutter.__domain }}
BASE=/srv/$APP
REPO_DIR=$BASE/repo.git
# Releases kept on disk, the live one included.
KEEP=3
# Seconds to wait for a healthy /healthz after a restart.
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}

say() { printf 'deploy.sh: %s\n' "$*"; }
die() {
  say "$*" >&2
  exit 1
}
usage() {
  printf 'usage: deploy.sh REVISION [REPOSITORY]\n       deploy.sh --commit SHA\n       deploy.sh --rollback\n' >&2
  exit 2
}

[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0)"
[ -d "$BASE/releases" ] || die "$BASE/releases is missing: run deploy/bootstrap.sh first"
cd /

# One deploy at a time.
exec 9>"/run/lock/$APP-deploy.lock"
flock -n 9 || die "another deploy is running"

# Run a command as the app user with a clean environment: bin/_env.sh reads the
# settings from the release's .env, which links to /etc/$APP/env.
as_app() {
  runuser -u "$APP" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/var/lib/$APP" \
    LANG=C.UTF-8 UV_CACHE_DIR="/var/cache/$APP/uv" UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system UV_COMPILE_BYTECODE=1 "$@"
}

# Put the release `current` points at into service. A restart, not a reload:
# only a new gunicorn master runs the new release's virtualenv and bin/web, and
# only its answers prove the release healthy (docs/deploy.md, "Reload and
# restart"). $APP-web.socket keeps the port open meanwhile: requests wait for
# the new process instead of failing.
restart() {
  systemctl restart "$APP-web.service" "$APP-worker.service"
}

# /healthz through nginx, so TLS, the site and the app are checked together
# (-k: the certificate may still be the self-signed stand-in).
healthy() {
  local expected=$1 deadline=$((SECONDS + HEALTH_TIMEOUT)) body
  while [ "$SECONDS" -lt "$deadline" ]; do
    if body=$(curl -fsSk --max-time 5 --resolve "$DOMAIN:443:127.0.0.1" \
      "https://$DOMAIN/healthz" 2>/dev/null) &&
      python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]).get("revision") != sys.argv[2])' \
        "$body" "$expected" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  say "last /healthz answer: ${body:-none}" >&2
  return 1
}

# Point `link` at `target` atomically (readers never see it missing).
switch() {
  local link=$1 target=$2
  ln -sfn "$target" "$link.new"
  mv -T "$link.new" "$link"
}

if [ "${1:-}" = --rollback ]; then
  [ $# -eq 1 ] || usage
  [ -e "$BASE/previous" ] || die "no previous release to roll back to"
  from=$(readlink "$BASE/current")
  to=$(readlink "$BASE/previous")
  switch "$BASE/current" "$to"
  switch "$BASE/previous" "$from"
  restart
  if ! healthy "$(basename "$to")"; then
    die "rolled back to $(basename "$to"), but /healthz does not answer: see journalctl -u $APP-web"
  fi
  say "rolled back from $(basename "$from") to $(basename "$to")"
  exit 0
fi

if [ "${1:-}" = --commit ]; then
  # The CI key's forced command: one full commit id, from the configured
  # repository, so a leaked key can only redeploy commits already pushed.
  [ $# -eq 2 ] || usage
  [[ $2 =~ ^[0-9a-f]{40}$ ]] || die "--commit takes a 40-character commit id, not '$2'"
  shift
fi
[ $# -ge 1 ] && [ $# -le 2 ] && [ -n "$1" ] && [ "${1#-}" = "$1" ] || usage
revision=$1
if [ $# -eq 2 ]; then
  repository=$2
else
  DEPLOY_REPO=
  # shellcheck source=/dev/null
  [ -f "/etc/$APP/deploy.conf" ] && . "/etc/$APP/deploy.conf"
  repository=${DEPLOY_REPO:-$REPO_DIR}
fi

# --- fetch ----------------------------------------------------------------------------
[ -d "$REPO_DIR" ] || git init --quiet --bare "$REPO_DIR"
if [ "$repository" != "$REPO_DIR" ]; then
  git -C "$REPO_DIR" fetch --quiet --force --tags "$repository" '+refs/heads/*:refs/heads/*' ||
    die "cannot fetch from $repository"
fi
commit=$(git -C "$REPO_DIR" rev-parse --verify --quiet "$revision^{commit}") ||
  die "unknown revision '$revision' in $repository"
release=$BASE/releases/$commit
say "deploying $commit"

# --- build the release (once; a half-built one is rebuilt) ----------------------------
if [ ! -f "$release/.complete" ]; then
  rm -rf "$release"
  install -d -m 0755 -o "$APP" -g "$APP" "$release"
  git -C "$REPO_DIR" archive "$commit" | runuser -u "$APP" -- tar -x -C "$release"
  printf '%s\n' "$commit" | runuser -u "$APP" -- tee "$release/REVISION" >/dev/null
  ln -sfn "/etc/$APP/env" "$release/.env"
  # The virtualenv is built where it runs: its scripts name their own path.
  sync_args=(--no-dev)
  [ -f "$release/uv.lock" ] && sync_args+=(--locked)
  (cd "$release" && as_app uv sync --quiet "${sync_args[@]}") ||
    die "installing the dependencies of $commit failed"
  touch "$release/.complete"
fi

# --- migrations and static files, then the switch ----------------------------------------
(cd "$release" && as_app bin/release) || die "bin/release failed for $commit; still running the previous release"

before=$(readlink "$BASE/current" 2>/dev/null || true)
before_previous=$(readlink "$BASE/previous" 2>/dev/null || true)
switch "$BASE/current" "$release"
if [ -n "$before" ] && [ "$before" != "$release" ]; then
  switch "$BASE/previous" "$before"
fi
systemctl start "$APP-web.socket"
restart

if ! healthy "$commit"; then
  if [ -n "$before" ] && [ "$before" != "$release" ]; then
    switch "$BASE/current" "$before"
    if [ -n "$before_previous" ]; then
      switch "$BASE/previous" "$before_previous"
    fi
    restart
    die "$commit failed its health check: rolled back to $(basename "$before") (journalctl -u $APP-web)"
  fi
  die "$commit failed its health check and there is no previous release (journalctl -u $APP-web)"
fi

# --- tidy up: keep the newest $KEEP releases, and always current and previous -------------
current=$(readlink "$BASE/current")
previous=$(readlink "$BASE/previous" 2>/dev/null || true)
find "$BASE/releases" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' |
  sort -rn | tail -n +$((KEEP + 1)) | cut -d' ' -f2- | while read -r old; do
  if [ "$old" != "$current" ] && [ "$old" != "$previous" ]; then
    rm -rf "$old"
  fi
done
install -m 0755 "$release/deploy/deploy.sh" "/usr/local/sbin/$APP-deploy"
say "deployed $commit (previous: ${previous:+$(basename "$previous")})"
