# The README's two commands: `make study` (the main job) and `make test`.
# Each one creates and fills .venv/ when it is missing or pyproject.toml changed,
# and registers the project's Jupyter kernel ("xfer-nb") inside that venv.
PYTHON ?= python3.11
VENV := .venv
KERNEL := xfer-nb
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: study test lab

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (xfer-nb)" >/dev/null
	touch $@

study: $(VENV)/.installed
	$(VENV)/bin/xfer-nb study params/study.yaml

test: $(VENV)/.installed
	bash .ci/system-packages
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider --durations=25

lab: $(VENV)/.installed
	$(VENV)/bin/xfer-nb lab
