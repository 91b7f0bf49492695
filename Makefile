# paperbot: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

DEMO_ENV := \
	PAPERBOT_PROFILES=config/profiles.example.yaml \
	PAPERBOT_SOURCES=sample \
	PAPERBOT_DATABASE_URL=sqlite:///demo.db \
	PAPERBOT_OUTBOX=outbox \
	PAPERBOT_SMTP_HOST= \
	PAPERBOT_FROM="paperbot <digest@paperbot.example.org>" \
	PAPERBOT_BASE_URL=https://paperbot.example.org \
	PAPERBOT_SECRET_KEY=demo-only-secret-change-me \
	PAPERBOT_UNSUBSCRIBE_MAILTO=unsubscribe@paperbot.example.org \
	PAPERBOT_ADMIN_EMAIL=admin@paperbot.example.org \
	PAPERBOT_POSTAL_ADDRESS="paperbot, 1 Example Street, Example City"

.PHONY: install demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/paperbot send

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format bot tests bench
	$(BIN)/ruff check --fix bot tests bench

clean:
	rm -rf $(VENV) outbox demo.db demo.db-wal demo.db-shm .pytest_cache .mypy_cache .ruff_cache
