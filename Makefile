# Two commands set everything up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-live lint format eval bench install clean

# Installs exactly what uv.lock pins (dev group included, the project itself editable);
# `--locked` fails if uv.lock no longer matches pyproject.toml: run `$(VENV)/bin/uv lock` then.
$(STAMP): pyproject.toml uv.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check 'uv>=0.13,<1'
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync -q --locked --group dev --python $(PY)
	@# The console's browser test drives Debian Chromium (never a downloaded browser).
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  echo "installing Debian chromium for the browser test"; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium) \
	    || echo "chromium not installed: the browser test skips here and fails in CI"; \
	fi
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tgtg serve

# Two runs: the tests in parallel, one worker per core, a whole file per worker (pytest-xdist;
# TEST_WORKERS=0 runs them in this process), then the few marked `serial` in one process
# (schemathesis' per-operation tests do not expand under xdist workers). pytest exit 5 means no
# test ran: a run that selects nothing is fine only when the other ran tests; both empty fails.
TEST_WORKERS ?= auto
test: $(STAMP)
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS); a=$$?; \
	$(PY) -m pytest -m serial $(PYTEST_ARGS); b=$$?; \
	if [ $$a -eq 5 ] && [ $$b -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	for rc in $$a $$b; do if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; done

# Real model endpoint only (Crusoe, vLLM, Ollama): LIVE_LLM_BASE_URL, LIVE_LLM_API_KEY, LIVE_LLM_MODEL.
# Then the operator task suite on that endpoint, two trials per task: average reward, pass^1, pass^2.
test-live: $(STAMP)
	$(PY) -m pytest tests/live -m live_llm --force-enable-socket
	$(PY) -m evals agents --base-url "$$LIVE_LLM_BASE_URL" --model "$$LIVE_LLM_MODEL" \
	  --api-key "$${LIVE_LLM_API_KEY:-none}" --trials 2 --k 1 --k 2

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy --strict tools graphs store agents prompts
	$(VENV)/bin/mypy ui evals

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

eval: $(STAMP)
	$(VENV)/bin/tgtg replay --start 2023-06-01 --days 7

bench: $(STAMP)
	$(PY) scripts/bench_scoring.py
	$(PY) scripts/bench_route.py
	$(PY) scripts/bench_replay.py

clean:
	rm -rf $(VENV) var .pytest_cache
