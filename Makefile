# make demo : synthetic nuclei -> train, evaluate and infer with the DSB bundle through the bundle CLI
# make pictures : the README's pictures in docs/ from make demo's output (scripts/make_pictures.py)
# make lint : ruff (lint, import order, format) and mypy on common/
# make test : lint, then the whole test suite (EXTRAS=test,deploy: the MONAI Deploy tests run too; EXTRAS=test skips them)
# Both create .venv and install the project into it on first use.
VENV ?= .venv
EXTRAS ?= test,deploy
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-$(EXTRAS)
# napari's viewer tests need a display: without one, the suite runs in Xvfb when xvfb-run is installed
XVFB := $(if $(DISPLAY),,$(if $(shell command -v xvfb-run),xvfb-run -a -s "-screen 0 1280x1024x24"))

.PHONY: demo pictures lint test test-fast bench map-app clean-venv

$(INSTALLED): setup.cfg pyproject.toml scripts/setup_venv.sh scripts/system_packages.sh
	VENV=$(VENV) EXTRAS=$(EXTRAS) ./scripts/setup_venv.sh
	touch $@

demo: $(INSTALLED)
	$(PYTHON) scripts/demo.py --out demo_output

pictures: $(INSTALLED)  # after make demo; the bioimage.io picture needs the bioimageio extra
	$(PYTHON) scripts/make_pictures.py --demo demo_output --out docs

lint: $(INSTALLED)
	$(VENV)/bin/ruff check common tests scripts
	$(VENV)/bin/ruff format --check common tests scripts
	$(VENV)/bin/mypy

test: lint
	$(XVFB) $(PYTHON) -m pytest -q -n 2 --dist loadgroup --durations=20

test-fast: $(INSTALLED)
	$(XVFB) $(PYTHON) -m pytest -q -n 2 --dist loadgroup -m "not slow"

bench: $(INSTALLED)
	$(PYTHON) -m tests.benchmarks.bench_flows

map-app: $(INSTALLED)  # the folder `monai-deploy package` takes: app.py, app.yaml, requirements.txt and common as bundles carry it
	rm -rf build/map_app && mkdir -p build/map_app
	$(PYTHON) -m common.bundle copy-common build/map_app
	cp common/deploy/app.py common/deploy/app.yaml common/deploy/requirements.txt build/map_app/

clean-venv:
	rm -rf $(VENV)
