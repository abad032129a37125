# Two entry points for a fresh machine: `make app` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-requirements

.PHONY: setup app test corpus atlas clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

app: setup
	$(BIN)/streamlit run app.py

test: setup
	$(BIN)/python -m pytest

corpus: setup
	$(BIN)/python scripts/build_corpus.py

atlas: setup
	$(BIN)/python scripts/build_atlas.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
