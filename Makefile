# make demo : synthetic nuclei -> train, evaluate and infer with the DSB bundle through the bundle CLI
# make test : the whole test suite
# Both create .venv and install the project into it on first use.
VENV ?= .venv
EXTRAS ?= test
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test test-fast bench clean-venv

$(INSTALLED): setup.cfg pyproject.toml scripts/setup_venv.sh
	VENV=$(VENV) EXTRAS=$(EXTRAS) ./scripts/setup_venv.sh
	touch $@

demo: $(INSTALLED)
	$(PYTHON) scripts/demo.py --out demo_output

test: $(INSTALLED)
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup

test-fast: $(INSTALLED)
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup -m "not slow"

bench: $(INSTALLED)
	$(PYTHON) tests/benchmarks/bench_flows.py

clean-venv:
	rm -rf $(VENV)
