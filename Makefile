# Two commands do all set-up on a fresh machine with Python 3.11:
#   make app    create .venv, install, start the app on http://127.0.0.1:7860 (bundled defaults)
#   make test   create .venv, install (and Debian's chromium when root), run ruff and the tests
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test lint browser install

$(STAMP): requirements.txt requirements-render.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# the soundfont renderer (demo set, corpus notes); its pyaudio dependency does not build
	$(PY) -m pip install --quiet --no-deps -r requirements-render.txt
	touch $(STAMP)

install: $(STAMP)

app: $(STAMP)
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m app

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install Debian's chromium for the browser test"; fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: $(STAMP) browser lint
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest tests --timeout 900
