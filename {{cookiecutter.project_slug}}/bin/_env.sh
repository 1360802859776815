# Sourced by the bin/ entrypoints: run from the project root, use its
# virtualenv, and read .env without overriding what the environment sets.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

if [ -n "${VIRTUAL_ENV:-}" ]; then
  PATH="$VIRTUAL_ENV/bin:$PATH"
elif [ -d .venv ]; then
  PATH="$PWD/.venv/bin:$PATH"
fi
export PATH

if [ -f .env ]; then
  while IFS='=' read -r key value || [ -n "$key" ]; do
    case "$key" in
      '' | '#'*) continue ;;
    esac
    if [ -z "${!key+set}" ]; then
      export "$key=$value"
    fi
  done <.env
fi
