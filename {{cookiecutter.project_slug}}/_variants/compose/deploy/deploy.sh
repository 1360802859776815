#!/usr/bin/env bash
# Deploy one commit on this server with Docker Compose: what CI runs over SSH
# (.github/workflows/deploy.yml, docs/ci.md), and what you run by hand.
#   deploy/deploy.sh GIT_SHA
# Fetches the commit, builds its image, runs bin/release and starts the new
# containers (`up --wait`: bin/release first, then web must pass /healthz),
# checks /healthz through nginx, and goes back to the previous commit and
# image when any of that fails. Run as the deploy user, from any directory.
set -euo pipefail

SLUG={{ cookiecutter.project_slug }}
DOMAIN={{ cookiecutter.__domain }}
# How long the new containers may take to become healthy.
WAIT_SECONDS=${DEPLOY_WAIT_SECONDS:-300}

fail() {
  echo "deploy: $*" >&2
  exit 1
}

sha=${1:-}
if [[ ! $sha =~ ^[0-9a-f]{40}$ ]]; then
  echo "usage: $0 GIT_SHA (a full 40-character commit id, got '${sha}')" >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f .env ] || fail "no .env in $PWD: run deploy/bootstrap.sh first (docs/compose.md)"
command -v docker >/dev/null || fail "docker is not installed: run deploy/bootstrap.sh first"

# One deploy at a time on this server, whatever CI does.
exec 9>.deploy.lock
flock --nonblock 9 || fail "another deploy is running (lock: $PWD/.deploy.lock)"

previous=$(git rev-parse HEAD)
echo "deploy: $previous -> $sha"
git fetch --quiet origin
git cat-file -e "$sha^{commit}" 2>/dev/null || fail "commit $sha is not in origin (pushed?)"

# The new commit answers /healthz through nginx with its own revision.
serves() {
  local body
  # Loopback to this machine: the certificate may still be the self-signed
  # one; the uptime monitor checks the real chain from outside.
  body=$(curl --silent --show-error --fail --insecure --max-time 10 \
    --resolve "$DOMAIN:443:127.0.0.1" "https://$DOMAIN/healthz") || return 1
  [[ $body == *"\"$1\""* ]] || {
    echo "deploy: /healthz answered $body, expected revision $1" >&2
    return 1
  }
}

# Containers of REVISION $1 from the compose.yaml now checked out.
up() {
  REVISION=$1 docker compose up --detach --wait --wait-timeout "$WAIT_SECONDS" --remove-orphans "${@:2}"
}

rollback() {
  echo "deploy: $sha failed; going back to $previous" >&2
  docker compose logs --tail 50 release web >&2 || true
  git checkout --quiet --force --detach "$previous"
  # Without bin/release: the database may already be migrated ahead, and the
  # old code's migrations would refuse it (keep migrations backwards
  # compatible, docs/compose.md). nginx reloads to find the new web container.
  if docker image inspect "$SLUG:$previous" >/dev/null 2>&1 \
    && up "$previous" --no-build --no-deps web worker backup \
    && docker compose exec nginx nginx -s reload; then
    echo "deploy: $previous is serving again" >&2
  else
    echo "deploy: could not bring $previous back; see docker compose ps" >&2
  fi
  exit 1
}

git checkout --quiet --force --detach "$sha"
REVISION=$sha docker compose build || rollback
up "$sha" || rollback
serves "$sha" || rollback

# Keep the images of this commit and the one before (the rollback target).
docker image ls --format '{{ '{{' }}.Tag{{ '}}' }}' "$SLUG" \
  | grep -vx -e "$sha" -e "$previous" -e latest \
  | while read -r tag; do docker image rm "$SLUG:$tag" >/dev/null || true; done
echo "deploy: $sha is live"
