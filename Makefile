# napkin's own commands. `make test` is the command README.md and CI run.
.DEFAULT_GOAL := help
.PHONY: help system-deps test bench

VENV := .venv
PYTEST_WORKERS ?= 3

# Debian packages the tests drive for real (see README.md, "Testing").
SYSTEM_PACKAGES := nginx rclone age sqlite3 openssl wrk postgresql \
	debootstrap systemd-container nftables iproute2 openssh-client curl git

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

system-deps: ## install the Debian packages the tests use (root)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null
	command -v uv >/dev/null || python3 -m pip install --quiet uv

$(VENV)/.installed: requirements-test.txt
	uv venv --quiet --allow-existing $(VENV)
	uv pip install --quiet --python $(VENV)/bin/python -r requirements-test.txt
	touch $@

test: $(VENV)/.installed ## lint the template's own Python, then run every tier of its tests
	$(VENV)/bin/ruff check hooks tests bench
	$(VENV)/bin/ruff format --check hooks tests bench
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

bench: $(VENV)/.installed ## benchmarks: requests/s and jobs/s (docs/performance.md)
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
