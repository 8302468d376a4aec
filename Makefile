# QualityWatch — common tasks. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
RUN_DIR ?= var/demo

.DEFAULT_GOAL := help
.PHONY: help install run demo test test-unit test-integration screenshots lint typecheck bench clean

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/qualitywatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(BIN)/qualitywatch  ## create .venv and install the project with its test and dev tools

run: install  ## run the platform on the embedded defaults (embedded broker, SQLite, demo data)
	$(BIN)/qualitywatch up

# replay refuses records after its validation clock (the wall clock by default): the demo's clock is
# the end of the simulated weeks, the one `qualitywatch simulate` prints (a unit test keeps them equal)
demo: install  ## offline demo: simulate five years of data, replay them through the detectors, score the warnings
	$(BIN)/qualitywatch simulate --seed 1 --out $(RUN_DIR)
	$(BIN)/qualitywatch replay $(RUN_DIR)/events.jsonl --patrols $(RUN_DIR)/patrols.jsonl --out $(RUN_DIR)/warnings.jsonl \
		--now 2025-12-29T00:00:00+08:00
	$(BIN)/qualitywatch evaluate $(RUN_DIR)

test: install  ## run the whole test suite (starts the embedded broker itself; PostgreSQL too if QW_TEST_DATABASE_URL is set)
	$(BIN)/pytest

test-unit: install  ## unit tests only
	$(BIN)/pytest tests/unit

test-integration: install  ## integration tests only (real broker, real databases, real SMTP)
	$(BIN)/pytest -m integration

screenshots: install  ## refresh the README's dashboard screenshots (docs/screenshots) with the browser tests
	QW_UPDATE_SCREENSHOTS=1 $(BIN)/pytest tests/browser

lint: install  ## ruff
	$(BIN)/ruff check .

typecheck: install  ## mypy (strict)
	$(BIN)/mypy schemas detectors stream alerts qualitywatch

bench: install  ## the benchmarks (figures go into docs/benchmarks.md; see there for each one's options)
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/detection.py --seeds 10
	$(BIN)/python bench/stream_throughput.py --records 20000
	$(BIN)/python bench/stream_latency.py --rate 1000 --seconds 30
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/alerts_throughput.py --warnings 10000
	$(BIN)/python bench/alerts_sse_latency.py --rate 50 --seconds 40

clean:  ## remove the virtual environment and generated files
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
