# Every target installs what it needs first (uv and the locked workspace), so each one
# works on a fresh clone with only Python 3.11+ present.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV_RUN := uv run --frozen

.PHONY: bootstrap run load test compose-test images push lint typecheck proto proto-check proto-release migrate bench

bootstrap:
	@scripts/bootstrap.sh

## run: the whole platform on this machine (embedded mode: SQLite, no Docker); Ctrl-C stops it
run: bootstrap
	$(UV_RUN) python -m zoptal_platform run

## load: the load generator against `make run` (run it in another terminal), 30 s at 2 journeys/s;
## exits 1 below 99 % successful calls. LOAD_ARGS adds options, e.g.
## make load LOAD_ARGS="--duration 120 --rate 10 --output json" (docs/operations.md)
load: bootstrap
	$(UV_RUN) python -m zoptal_loadgen $(LOAD_ARGS)

## test: every layer under tests/: unit, integration, e2e, faults, fuzz and deploy checks, on real
## PostgreSQL and Redis (see the README for what each needs and when it skips); the compose stack
## test is `make compose-test`
test: bootstrap
	$(UV_RUN) pytest --ignore=tests/deploy/compose_up

## compose-test: docker-compose.yml for real (installs Docker, Compose v2 and the images it lacks;
## root); cleans up after itself
compose-test: bootstrap
	@scripts/compose_test.sh

## images: the six images, each built once, tagged zoptal/<target>:$(ZOPTAL_TAG) (default dev)
images:
	@scripts/images.sh build

## push: images, tagged and pushed as $(REGISTRY)/zoptal/<target>:$(ZOPTAL_TAG)
push:
	@scripts/images.sh push

lint: bootstrap
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .

## typecheck: mypy strict on every package of the workspace and on the end-to-end tests (the
## list is [tool.mypy] files in pyproject.toml)
typecheck: bootstrap
	$(UV_RUN) mypy

## proto: regenerate libs/zoptal-api from protos/ (and lint the protos with buf)
proto: bootstrap
	$(UV_RUN) python scripts/generate_protos.py

## proto-check: fail when buf lint fails, when protos/ breaks clients of the last release
## (buf breaking against protos/releases/), or when the committed code differs from what protos/
## generates (what tests/unit/api/test_generated_code.py runs); changes nothing
proto-check: bootstrap
	$(UV_RUN) python scripts/generate_protos.py --check

## proto-release: record protos/ as release VERSION (make proto-release VERSION=v0.2.0)
proto-release: bootstrap
	$(UV_RUN) python scripts/generate_protos.py --release $(VERSION)

## migrate: apply every service's Alembic migrations to its DATABASE_URL
migrate: bootstrap
	$(UV_RUN) python -m zoptal_platform migrate

bench: bootstrap
	$(UV_RUN) python benchmarks/run_all.py
