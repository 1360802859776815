#!/usr/bin/env bash
# Provision a fresh Debian or Ubuntu VM to run {{ cookiecutter.project_name }} with Docker Compose.
# Idempotent: run it again after changing an option, or once DNS points here to
# replace the temporary certificate with a real one. Run as root from the
# clone of the repository that will serve the site (e.g. /srv/{{ cookiecutter.project_slug }}):
#   sudo deploy/bootstrap.sh --email you@example.com [--ci-key 'ssh-ed25519 AAAA...']
# Options:
#   --email ADDRESS      Let's Encrypt account (expiry warnings); required for
#                        a real certificate
#   --self-signed        keep a self-signed certificate (staging, no DNS yet)
#   --deploy-user NAME   the account CI logs in as (default: deploy)
#   --ci-key KEY         CI's public key, allowed to run deploy/deploy.sh only
# What it does: Docker Engine and the compose plugin from Docker's apt
# repository, a firewall (SSH, HTTP, HTTPS), the deploy user, .env with fresh
# secrets, the first certificate, and `docker compose up`. docs/compose.md.
set -euo pipefail

SLUG={{ cookiecutter.project_slug }}
DOMAIN={{ cookiecutter.__domain }}
LIVE=/etc/letsencrypt/live/$DOMAIN

email=
self_signed=false
deploy_user=deploy
ci_key=

fail() {
  echo "bootstrap: $*" >&2
  exit 1
}

usage() {
  sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

while [ "$#" -gt 0 ]; do
  case "$1" in
  --email) email=${2:?--email needs an address}; shift 2 ;;
  --self-signed) self_signed=true; shift ;;
  --deploy-user) deploy_user=${2:?--deploy-user needs a name}; shift 2 ;;
  --ci-key) ci_key=${2:?--ci-key needs a public key}; shift 2 ;;
  -h | --help) usage ;;
  *) echo "bootstrap: unknown option $1" >&2; usage ;;
  esac
done

[ "$(id -u)" -eq 0 ] || fail "run as root (sudo $0)"
[[ $deploy_user =~ ^[a-z_][a-z0-9_-]*$ ]] || fail "--deploy-user: '$deploy_user' is not a user name"
if ! $self_signed && [ -z "$email" ]; then
  fail "--email is required for a Let's Encrypt certificate (or --self-signed)"
fi
if [ -n "$ci_key" ] && [[ ! $ci_key =~ ^ssh-(ed25519|rsa)\ [A-Za-z0-9+/=]+( [^\"]*)?$ ]]; then
  fail "--ci-key: expected one public key line (ssh-ed25519 AAAA... comment)"
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
APP_DIR=$PWD
[ -f compose.yaml ] || fail "no compose.yaml in $APP_DIR: run this from the project's clone"
# shellcheck source=/dev/null
. /etc/os-release
case "${ID:-}" in
debian | ubuntu) ;;
*) fail "Debian or Ubuntu only (this is ${PRETTY_NAME:-unknown})" ;;
esac

export DEBIAN_FRONTEND=noninteractive

echo "bootstrap: packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates curl git openssl ufw \
  unattended-upgrades >/dev/null

echo "bootstrap: Docker Engine and the compose plugin"
# Docker's own repository: the distribution's packages lag behind and not
# every release has the compose v2 plugin.
# https://docs.docker.com/engine/install/debian/
if ! docker compose version >/dev/null 2>&1; then
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/docker.asc
  chmod a+r /etc/apt/keyrings/docker.asc
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc]" \
    "https://download.docker.com/linux/$ID $VERSION_CODENAME stable" >/etc/apt/sources.list.d/docker.list
  apt-get update -qq
  apt-get install -y -qq docker-ce docker-ce-cli containerd.io docker-buildx-plugin \
    docker-compose-plugin >/dev/null
fi
systemctl enable --now docker >/dev/null

echo "bootstrap: firewall"
# Ports Docker publishes (80 and 443 here) bypass ufw's rules; nothing else
# is published, so ufw guards SSH and the rest.
# https://docs.docker.com/engine/network/packet-filtering-firewalls/
ufw default deny incoming >/dev/null
ufw default allow outgoing >/dev/null
ufw allow OpenSSH >/dev/null
ufw allow 80/tcp >/dev/null
ufw allow 443/tcp >/dev/null
ufw --force enable >/dev/null

echo "bootstrap: deploy user $deploy_user"
if ! id "$deploy_user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$deploy_user"
fi
# The docker group is root-equivalent: the key CI uses may run deploy.sh only.
usermod -aG docker "$deploy_user"
home=$(getent passwd "$deploy_user" | cut -d: -f6)
install -d -m 0700 -o "$deploy_user" -g "$deploy_user" "$home/.ssh"
chown -R "$deploy_user:" "$APP_DIR"
if [ -n "$ci_key" ]; then
  keys=$home/.ssh/authorized_keys
  touch "$keys"
  # sshd runs this command whatever CI asks for; CI's request (the commit id)
  # arrives in SSH_ORIGINAL_COMMAND and deploy.sh refuses anything else.
  line="command=\"$APP_DIR/deploy/deploy.sh \\\"\$SSH_ORIGINAL_COMMAND\\\"\",restrict $ci_key"
  key_body=$(cut -d' ' -f2 <<<"$ci_key")
  grep -vF "$key_body" "$keys" >"$keys.new" || true
  echo "$line" >>"$keys.new"
  mv "$keys.new" "$keys"
  chown "$deploy_user:" "$keys"
  chmod 0600 "$keys"
fi
# The server reads the repository with its own read-only key (a GitHub
# "deploy key"); CI never sends code, only the commit id to deploy.
if [ ! -f "$home/.ssh/id_ed25519" ]; then
  runuser -u "$deploy_user" -- ssh-keygen -q -t ed25519 -N '' -C "$SLUG@$(hostname)" -f "$home/.ssh/id_ed25519"
fi

echo "bootstrap: .env"
secret() {
  openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n'
}
if [ ! -f .env ]; then
  umask 077
  while IFS= read -r line || [ -n "$line" ]; do
    while [[ $line == [A-Z]*=*change-me* ]]; do
      line=${line/change-me/$(secret)}
    done
    echo "$line"
  done <.env.example >.env
  umask 022
fi
{% if cookiecutter.database == "postgres" %}
# The db container's password; compose.yaml builds DATABASE_URL from it.
if ! grep -q '^POSTGRES_PASSWORD=.' .env; then
  sed -i '/^POSTGRES_PASSWORD=/d' .env
  echo "POSTGRES_PASSWORD=$(secret)" >>.env
fi
password=$(sed -n 's/^POSTGRES_PASSWORD=//p' .env | tail -n1)
# The same URL for commands that read .env directly (compose sets its own).
sed -i "s#^DATABASE_URL=.*#DATABASE_URL=postgresql://$SLUG:$password@db:5432/$SLUG#" .env
{% endif %}
chown "$deploy_user:" .env
chmod 0600 .env

# Images are tagged with the commit, as deploy/deploy.sh tags them. git runs as
# the owner of the clone (git refuses a repository owned by another user).
revision=$(runuser -u "$deploy_user" -- git -C "$APP_DIR" rev-parse HEAD)
compose() {
  REVISION=$revision docker compose "$@"
}

# nginx needs a certificate to start, and certbot needs nginx to answer the
# challenge: start with a self-signed pair in certbot's place, then swap it.
echo "bootstrap: certificate for $DOMAIN"
certbot_sh() {
  compose run --rm --no-deps --entrypoint /bin/sh "$@"
}
if ! certbot_sh certbot -c "test -e $LIVE/fullchain.pem"; then
  tmp=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$DOMAIN" \
    -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" 2>/dev/null
  certbot_sh --volume "$tmp:/tmp/selfsigned:ro" certbot \
    -c "mkdir -p $LIVE && cp /tmp/selfsigned/*.pem $LIVE/"
  rm -rf "$tmp"
fi

echo "bootstrap: build and start"
compose up --detach --wait --wait-timeout 600

# A certbot lineage has a renewal file; the self-signed pair has none.
if ! $self_signed && ! certbot_sh certbot -c "test -e /etc/letsencrypt/renewal/$DOMAIN.conf"; then
  certbot_sh certbot -c "rm -rf $LIVE"
  if compose run --rm --no-deps certbot certonly --webroot --webroot-path /var/www/certbot \
    --domain "$DOMAIN" --email "$email" --agree-tos --non-interactive; then
    compose exec nginx nginx -s reload
  else
    echo "bootstrap: certbot failed (does $DOMAIN point here?); keeping a self-signed" \
      "certificate: run this script again once DNS is right" >&2
    tmp=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$DOMAIN" \
      -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" 2>/dev/null
    certbot_sh --volume "$tmp:/tmp/selfsigned:ro" certbot \
      -c "mkdir -p $LIVE && cp /tmp/selfsigned/*.pem $LIVE/"
    rm -rf "$tmp"
  fi
fi

cat <<MSG
bootstrap: done. $DOMAIN is served from $APP_DIR.
Next (docs/ci.md):
  - add this read-only deploy key to the GitHub repository:
    $(cat "$home/.ssh/id_ed25519.pub")
  - as $deploy_user, accept GitHub's host key once: ssh -T git@github.com
  - set the repository's secrets DEPLOY_HOST, DEPLOY_USER=$deploy_user,
    DEPLOY_SSH_KEY and DEPLOY_KNOWN_HOSTS (ssh-keyscan -H this host)
MSG
