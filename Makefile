# Two entry points for a fresh machine: `make app` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-requirements

.PHONY: setup browser app test corpus atlas clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

setup: $(STAMP)

app: setup
	$(BIN)/streamlit run app.py

# The browser tests drive Debian's chromium: installed here when running as root (as CI does), else named.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$CELLANG_SKIP_BROWSER" != 1 ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test: the browser tests need Debian's chromium: run 'sudo apt-get install chromium'," \
	         "or 'CELLANG_SKIP_BROWSER=1 make test' to run without them (reported as skipped)" >&2; \
	    exit 1; \
	  fi; \
	fi

test: setup browser
	$(BIN)/python -m pytest

corpus: setup
	$(BIN)/cellang build corpus

atlas: setup
	$(BIN)/cellang build atlas

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
