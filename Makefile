# Two commands set up a fresh machine: `make run` (the bot, or the console chat without a token) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared
DATA   ?= $(SHARED)/data
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Two malloc arenas instead of one per thread: the bot's RSS no longer steps up ~150 MB after a reindex (soak).
export MALLOC_ARENA_MAX ?= 2

.PHONY: run install test lint unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch==2.13.0 first: here it is a local CPU wheel; any other version would pull gigabytes of CUDA.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	@if [ -d $(SHARED)/articles ]; then \
	  $(BIN)/articlebot add --if-empty $$(find $(SHARED)/articles -type f ! -name README.md | sort); fi
	@if [ -n "$$TELEGRAM_BOT_TOKEN" ]; then exec $(BIN)/articlebot serve; else exec $(BIN)/articlebot chat; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: lint unit

# The benchmarks of issues 3-5 (not timed in CI): quality and cost on the public sets plus the bot load test
# (docs/benchmarks.md), the 10-minute soak against the loopback Bot API, and the long SIGKILL run.
bench: install
	$(BIN)/python -m scripts.bench --data $(DATA)
	$(BIN)/python -m scripts.soak_bot --users 200 --seconds 600 --out docs/soak.md
	$(BIN)/python -m scripts.crash_soak --kills 50 --json docs/crash_soak.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
