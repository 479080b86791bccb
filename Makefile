# simgan: `make train` trains on the embedded eye data (CPU is fine); `make test` runs the tests.
# Both install what is missing first. Override the interpreter with `make PYTHON=python3.11 ...`.
PYTHON ?= python3
# torch is installed first and pinned: an unpinned torch pulls GBs of CUDA wheels. On a
# CUDA machine pick your build, e.g. `make install TORCH_SPEC="torch==2.13.0 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
STAMP := .make/installed

.PHONY: install train test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install $(TORCH_SPEC)
	$(PYTHON) -m pip install -e ".[dev]"
	@mkdir -p $(dir $@) && touch $@

train: install
	$(PYTHON) src/train.py $(ARGS)

# bytecode caching on: the DDP, sweep and shutdown tests start many Python processes
test: install
	env -u PYTHONDONTWRITEBYTECODE $(PYTHON) -m pytest $(ARGS)

test-fast: install
	$(PYTHON) -m pytest -m "not slow" $(ARGS)

clean:
	rm -rf .make .pytest_cache data/cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
