# LeukView: `make run` opens the viewer, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
SAMPLE := resources/samples/BloodImage_00214.jpg

.PHONY: setup app run test lint analyze-sample bench bundle bundle-test clean

# The app's own dependencies only: a pathologist who views does not download torch.
$(VENV)/.stamp-app: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

# Everything: app, training (torch, timm, ...) and developer tools.
$(VENV)/.stamp-setup: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[train,dev]"
	touch $(VENV)/.stamp-app $@

app: $(VENV)/.stamp-app
setup: $(VENV)/.stamp-setup

run: $(VENV)/.stamp-app
	$(BIN)/leukview $(SAMPLE)

analyze-sample: $(VENV)/.stamp-app
	$(BIN)/leukview analyze $(SAMPLE) --out out/sample --overlay

# The offline bundle's smoke test (a few minutes; see installer/README.md), then the whole suite.
test: $(VENV)/.stamp-setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory bundle-test
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# ruff, the import-linter contracts (no cache left in the tree) and mypy on the core.
lint: $(VENV)/.stamp-setup
	$(BIN)/ruff check leukview training tests bench installer
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: $(VENV)/.stamp-setup
	$(BIN)/python bench/bench_segment.py
	$(BIN)/python bench/bench_models.py
	$(BIN)/python bench/bench_analyze.py

# Offline one-folder bundle (PyInstaller, from .venv) -> dist/leukview/; see installer/README.md.
# BUILD_INFO.txt is written last, after the checks pass: it is the stamp.
BUNDLE_INPUTS := pyproject.toml $(shell find leukview resources models -type f \
	-not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null) \
	$(addprefix installer/,leukview.spec entry.py bundlecheck.py build.py bundle-README.txt)

# Freezing needs the app and PyInstaller (dev group), not the train group's torch; an
# up-to-date `make setup` venv already has both.
$(VENV)/.stamp-bundle: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test $(VENV)/.stamp-setup -nt pyproject.toml || $(PIP) install -q -e ".[dev]"
	touch $@

dist/leukview/BUILD_INFO.txt: $(VENV)/.stamp-bundle $(BUNDLE_INPUTS)
	$(BIN)/python installer/build.py

bundle: dist/leukview/BUILD_INFO.txt

# Runs the bundle from a path with spaces, no Python on PATH, no network (unshare -rn).
bundle-test: bundle
	$(BIN)/python installer/smoke_test.py dist/leukview

clean:
	rm -rf $(VENV) build dist out .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
