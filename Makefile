# GovHub — the targets the README and CI use.
PY      := .venv/bin/python
STAMP   := .venv/.govhub-installed
PYTEST_ARGS ?=

.PHONY: help demo test unit integration lint format typecheck bench bench-exchange \
	bench-registry bench-connectors bench-gateway bench-data-service bench-soak bench-all kafka-up kafka-down clean \
	ops-test metrics-doc dashboards deploy-files generated console-screenshots console-assets

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py scripts/bootstrap.sh $(wildcard hub/*/_*.c)
	./scripts/bootstrap.sh

demo: $(STAMP)  ## start a local Kafka, run the end-to-end demo, stop everything
	.venv/bin/govhub --log-format text demo

test: $(STAMP)  ## the whole test suite (starts a local Kafka unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: $(STAMP)  ## unit tests only (no broker)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

integration: $(STAMP)  ## integration tests on real Kafka
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff lint and format check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: $(STAMP)  ## apply ruff formatting and fixes
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

typecheck: $(STAMP)  ## mypy (strict on hub/)
	.venv/bin/mypy

bench: $(STAMP)  ## every benchmark (results in benchmarks/results/)
	$(PY) benchmarks/exchange.py --json benchmarks/results/exchange.json
	$(PY) benchmarks/registry_vs_hello.py
	$(PY) benchmarks/connectors_ingest.py
	$(PY) benchmarks/connectors_postgres.py
	$(PY) benchmarks/gateway_scale.py
	$(PY) benchmarks/data_service.py

bench-all: $(STAMP)  ## every benchmark + peers (MirrorMaker 2, Connect SMT), plots, summary
	$(PY) benchmarks/all.py --out benchmarks/results/all-$$(date -u +%Y-%m-%d)

bench-exchange: $(STAMP)  ## router vs a raw consume→produce loop
	$(PY) benchmarks/exchange.py --json benchmarks/results/exchange.json

bench-registry: $(STAMP)  ## cached registry reads and registrations vs aiohttp hello-world
	$(PY) benchmarks/registry_vs_hello.py

bench-connectors: $(STAMP)  ## HTTP, file and PostgreSQL ingest vs raw produce
	$(PY) benchmarks/connectors_ingest.py
	$(PY) benchmarks/connectors_postgres.py

bench-gateway: $(STAMP)  ## 10,000 subscriber streams on one gateway process
	$(PY) benchmarks/gateway_scale.py

bench-data-service: $(STAMP)  ## key lookups and verifications vs a plain handler, 1M records
	$(PY) benchmarks/data_service.py

bench-soak: $(STAMP)  ## 30 minutes of the whole path at half load: memory flat, nothing lost
	$(PY) benchmarks/soak.py --minutes 30 --json benchmarks/results/soak-$$(date -u +%Y-%m-%d).json

ops-test: $(STAMP)  ## operations: promtool rule tests, real Prometheus on a live hub, deploy/ checks
	$(PY) -m pytest -q tests/ops $(PYTEST_ARGS)

metrics-doc: $(STAMP)  ## regenerate docs/metrics.md from the code
	$(PY) -m hub.ops.metricsdoc

dashboards: $(STAMP)  ## regenerate deploy/grafana/dashboards from hub/ops/dashboards.py
	$(PY) -m hub.ops.dashboards

deploy-files: $(STAMP)  ## regenerate the broker metrics rules in deploy/compose and deploy/k8s
	$(PY) -m hub.ops.deployfiles

generated: metrics-doc dashboards deploy-files  ## every generated operations file

console-screenshots: $(STAMP)  ## run the console's browser journey, saving docs/console/*.png
	GOVHUB_CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest -q tests/e2e/test_console.py $(PYTEST_ARGS)

console-assets:  ## re-vendor the console's htmx from npm into hub/console/static/vendor
	scripts/console-assets.sh

kafka-up: $(STAMP)  ## start the local single-node Kafka and leave it running
	.venv/bin/govhub kafka up

kafka-down: $(STAMP)  ## stop the local Kafka
	.venv/bin/govhub kafka down

clean:  ## remove the virtualenv, caches and demo output (not the Kafka jar cache)
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache demo-out
