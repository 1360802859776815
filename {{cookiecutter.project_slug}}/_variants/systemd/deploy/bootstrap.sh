#!/usr/bin/env bash
{% set slug = cookiecutter.project_slug %}
# Turn a fresh Debian 12/13 or Ubuntu 24.04 VM into the server of
# {{ cookiecutter.project_name }}. Run as root from a copy of this repository:
#
#   sudo CERTBOT_EMAIL=you@example.com deploy/bootstrap.sh
#
# Safe to run again: it converges on the same state, keeps /etc/{{ slug }}/env
# (the secrets) and the certificate, and re-installs the units and the nginx
# site from this copy. Then deploy with deploy/deploy.sh (docs/deploy.md).
#
# Environment:
#   CERTBOT_EMAIL   Let's Encrypt account email. Without it, or while DNS for
#                   {{ cookiecutter.__domain }} does not reach this server yet,
#                   nginx serves a self-signed certificate; run again later.
#   DEPLOY_REPO     repository deploy.sh fetches from by default (recorded in
#                   /etc/{{ slug }}/deploy.conf); default: the bare repository
#                   /srv/{{ slug }}/repo.git that CI pushes to.
set -euo pipefail

APP={{ slug }}
DOMAIN={{ cookiecutter.__domain }}
SRC=$(cd "$(dirname "$0")/.." && pwd)
# Commands run as other users (postgres) need a directory they may enter.
cd /
# uv installs each release's virtualenv (deploy.sh); pinned like the Dockerfile's.
UV_VERSION=0.13.9

say() { printf 'bootstrap.sh: %s\n' "$*"; }
die() {
  say "$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0)"
[ -f "$SRC/deploy/systemd/$APP-web.service" ] || die "run me from a copy of the repository ($SRC has no deploy/systemd/)"

# --- supported systems only ---------------------------------------------------
# shellcheck source=/dev/null
. /etc/os-release
case "${ID:-}:${VERSION_ID:-}" in
  debian:12 | debian:13 | ubuntu:24.04) ;;
  *) die "unsupported system: ${PRETTY_NAME:-unknown}. Supported: Debian 12, Debian 13, Ubuntu 24.04." ;;
esac
say "provisioning ${PRETTY_NAME} for https://$DOMAIN"

# --- packages -----------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
packages=(
  nginx certbot openssl ca-certificates curl git
  python3 python3-venv sqlite3 age rclone
  ufw unattended-upgrades
)
{% if cookiecutter.database == "postgres" %}
packages+=(postgresql)
{% endif %}
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

if ! /opt/uv/bin/uv --version 2>/dev/null | grep -qF "$UV_VERSION"; then
  python3 -m venv /opt/uv
  /opt/uv/bin/pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
ln -sfn /opt/uv/bin/uv /usr/local/bin/uv

# Security updates install themselves (Debian's default origins: security only).
cat >/etc/apt/apt.conf.d/20auto-upgrades <<'CONF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
CONF

# --- firewall: SSH, HTTP, HTTPS ------------------------------------------------
ufw allow 22/tcp >/dev/null
ufw allow 80/tcp >/dev/null
ufw allow 443/tcp >/dev/null
ufw --force enable >/dev/null

# --- the app user and its directories -------------------------------------------
if ! id -u "$APP" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "/var/lib/$APP" --no-create-home \
    --shell /usr/sbin/nologin "$APP"
fi
install -d -m 0755 -o root -g root "/srv/$APP" "/srv/$APP/releases"
install -d -m 0750 -o "$APP" -g "$APP" "/var/lib/$APP" "/var/cache/$APP"
install -d -m 0750 -o root -g "$APP" "/etc/$APP"
install -d -m 0755 /var/www/certbot

# The repository deploy.sh fetches releases from (CI pushes here).
if [ ! -d "/srv/$APP/repo.git" ]; then
  git init --quiet --bare "/srv/$APP/repo.git"
fi
if [ ! -f "/etc/$APP/deploy.conf" ] || [ -n "${DEPLOY_REPO:-}" ]; then
  printf 'DEPLOY_REPO=%s\n' "${DEPLOY_REPO:-/srv/$APP/repo.git}" >"/etc/$APP/deploy.conf"
fi

# --- settings and secrets: written once, never overwritten -----------------------
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }
env_file=/etc/$APP/env
if [ ! -f "$env_file" ]; then
{% if cookiecutter.database == "postgres" %}
  database_url="postgresql://$APP:$(secret)@127.0.0.1:5432/$APP"
{% else %}
  database_url="sqlite:////var/lib/$APP/db.sqlite3"
{% endif %}
  # Every setting of .env.example, with production values and fresh secrets.
  tmp=$(mktemp "/etc/$APP/env.XXXXXX")
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      APP_ENV=*) line=APP_ENV=production ;;
      DEBUG=*) line=DEBUG=false ;;
      ALLOWED_HOSTS=*) line="ALLOWED_HOSTS=$DOMAIN" ;;
      DATABASE_URL=*) line="DATABASE_URL=$database_url" ;;
      # gunicorn itself reads WEB_CONCURRENCY and fails on an empty value.
      WEB_CONCURRENCY=) line="WEB_CONCURRENCY=$((2 * $(nproc)))" ;;
      *=change-me) line="${line%%=*}=$(secret)" ;;
    esac
    printf '%s\n' "$line"
  done <"$SRC/.env.example" >"$tmp"
  chown root:"$APP" "$tmp"
  chmod 0640 "$tmp"
  mv "$tmp" "$env_file"
  say "wrote $env_file with fresh secrets: edit BACKUP_* and RCLONE_CONFIG_OFFSITE_* there"
fi
{% if cookiecutter.database == "postgres" %}

# --- PostgreSQL: the role (password from the env file) and the database -------------
systemctl enable --quiet --now postgresql
database_url=$(sed -n 's/^DATABASE_URL=//p' "$env_file")
password=${database_url#postgresql://*:}
password=${password%%@*}
psql() { runuser -u postgres -- psql -XqAt -v ON_ERROR_STOP=1 "$@"; }
if [ -z "$(psql -c "SELECT 1 FROM pg_roles WHERE rolname = '$APP'")" ]; then
  psql -v pw="$password" <<<"CREATE ROLE \"$APP\" LOGIN PASSWORD :'pw';"
else
  psql -v pw="$password" <<<"ALTER ROLE \"$APP\" LOGIN PASSWORD :'pw';"
fi
if [ -z "$(psql -c "SELECT 1 FROM pg_database WHERE datname = '$APP'")" ]; then
  psql -c "CREATE DATABASE \"$APP\" OWNER \"$APP\""
fi
{% endif %}

# --- nginx and the certificate ------------------------------------------------------
live=/etc/letsencrypt/live/$DOMAIN
self_signed() {
  install -d -m 0755 "$live"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$live/privkey.pem" -out "$live/fullchain.pem" 2>/dev/null
  chmod 0600 "$live/privkey.pem"
}
# nginx will not start without the files its site names: a self-signed pair
# stands in until certbot has the real one.
if [ ! -f "$live/fullchain.pem" ]; then
  self_signed
fi
install -m 0644 "$SRC/deploy/nginx/$APP.conf" "/etc/nginx/sites-available/$APP.conf"
ln -sfn "/etc/nginx/sites-available/$APP.conf" "/etc/nginx/sites-enabled/$APP.conf"
# Our site answers (or refuses) every host name itself.
rm -f /etc/nginx/sites-enabled/default
nginx -t -q
systemctl enable --quiet nginx
systemctl reload-or-restart nginx

if [ -f "/etc/letsencrypt/renewal/$DOMAIN.conf" ]; then
  say "certificate for $DOMAIN is managed by certbot (renews itself)"
elif [ -z "${CERTBOT_EMAIL:-}" ]; then
  say "no CERTBOT_EMAIL: serving a self-signed certificate. Once DNS for $DOMAIN points here, run: sudo CERTBOT_EMAIL=you@example.com $0"
else
  # certbot refuses to write into a live/ directory it did not create: move the
  # stand-in aside (nginx keeps serving it from memory) and back on failure.
  mv "$live" "$live.self-signed"
  if certbot certonly --webroot --webroot-path /var/www/certbot \
    --domain "$DOMAIN" --email "$CERTBOT_EMAIL" --agree-tos --non-interactive \
    --deploy-hook "systemctl reload nginx"; then
    rm -rf "$live.self-signed"
    systemctl reload nginx
    say "certificate for $DOMAIN obtained; renewals reload nginx"
  else
    rm -rf "$live"
    mv "$live.self-signed" "$live"
    say "WARNING: certbot could not get a certificate for $DOMAIN (does its DNS point here, is port 80 open?). Still serving the self-signed one; run me again to retry."
  fi
fi

# --- the units -------------------------------------------------------------------------
install -m 0644 "$SRC"/deploy/systemd/"$APP"-* /etc/systemd/system/
systemctl daemon-reload
systemctl enable --quiet "$APP-web.socket" "$APP-web.service" "$APP-worker.service" "$APP-backup.timer"
systemctl start "$APP-backup.timer"
# Before the first deploy there is nothing to run; deploy.sh starts it all.
if [ -e "/srv/$APP/current" ]; then
  # Apply changed units to what runs; the socket keeps the port open.
  systemctl start "$APP-web.socket"
  systemctl restart "$APP-web.service" "$APP-worker.service"
fi

install -m 0755 "$SRC/deploy/deploy.sh" "/usr/local/sbin/$APP-deploy"
say "done. Deploy a revision: git push to /srv/$APP/repo.git, then $APP-deploy <revision> (docs/deploy.md)"
