# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Installed first so that nothing later pulls another torch build. `torch==2.13.0` is whatever build the
# index serves first: PyPI's is the CUDA one on Linux x86_64; for the CPU-only build use
# TORCH_SPEC=torch==2.13.0+cpu TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (README, "Install").
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
# The stub generator, in a venv of its own (its protobuf 4.25 can't share one with the server's):
# grpcio-tools 1.62.3 (protoc 25) writes stubs that check no runtime version, so the SDK runs on
# protobuf>=4.25 and grpcio>=1.62 as well as on the newest.
PROTOC_VENV ?= .venv-protoc
GRPCIO_TOOLS ?= grpcio-tools==1.62.3
HOST ?= 127.0.0.1
PORT ?= 50051

.PHONY: run test test-dist test-verl dist proto bench clean image test-container learning

# What serving needs: torch, the SDK and the server (editable).
$(VENV)/.installed: pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--extra-index-url "$(TORCH_INDEX_URL)")
	$(PY) -m pip install --quiet -e ./client -e .
	touch $@

# ...and the test tools.
$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ./client -e ".[dev]"
	touch $@

$(PROTOC_VENV)/.installed:
	$(PYTHON) -m venv $(PROTOC_VENV)
	$(PROTOC_VENV)/bin/python -m pip install --quiet "$(GRPCIO_TOOLS)"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/treecredit-server --host $(HOST) --port $(PORT)

# TREECREDIT_PROTOC_PYTHON: the generator the stale-stub test runs.
test: $(VENV)/.dev $(PROTOC_VENV)/.installed
	TRITON_INTERPRET=1 TREECREDIT_PROTOC_PYTHON=$(PROTOC_VENV)/bin/python $(PY) -m pytest -q

# Slow (fresh venvs, packages from the index): each distribution alone in a clean venv, and the SDK
# installed beside the protobuf/grpcio pins trainers have. Prints the versions it checked.
test-dist: $(VENV)/.dev dist
	$(PY) -m pytest -q -p no:cacheprovider -s tests/dist

# Slow (about 2 GB): the verl adapter against the real verl 0.9.1 (and its v1 trainer's advantage step) in
# a venv of its own, the SDK installed beside it without changing a package.
test-verl: $(VENV)/.dev
	$(PY) -m pytest -q -p no:cacheprovider -s tests/verl

# Both wheels into dist/: treecredit (the SDK) and treecredit-server.
dist:
	rm -rf dist build client/build
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir dist ./client .

# Regenerate the committed stubs in client/treecredit/v1 from proto/.
proto: $(PROTOC_VENV)/.installed
	$(PROTOC_VENV)/bin/python -m grpc_tools.protoc -Iproto --python_out=client --pyi_out=client --grpc_python_out=client proto/treecredit/v1/*.proto

bench: $(VENV)/.installed
	$(PY) bench/score.py

# The learning experiment behind docs/LEARNING.md: regenerates its figures, tables and raw results (about 30 min on
# 2 idle cores; finished runs are kept in build/learning-runs, so an interrupted run resumes). QUICK=1: one seed,
# 2 updates, into build/learning-quick (the smoke test in tests/test_learning.py).
learning: $(VENV)/.dev
ifeq ($(QUICK),1)
	$(PY) -m experiments.learning --quick --out build/learning-quick
else
	$(PY) -m experiments.learning --out docs/learning --doc docs/LEARNING.md --cache build/learning-runs
endif

# The CPU image, built with podman offline (base via debootstrap, torch from a local wheelhouse): deploy/container/.
IMAGE ?= treecredit:cpu
image: $(VENV)/.dev
	$(VENV)/bin/hadolint Dockerfile
	TORCH="$(TORCH_SPEC)" deploy/container/image.sh $(IMAGE) $(PY)

# Run the image, pass its HEALTHCHECK and a Score call from the SDK on the host, remove it.
test-container: image
	deploy/container/test.sh $(IMAGE) $(PY)

clean:
	rm -rf $(VENV) $(PROTOC_VENV) build dist client/build *.egg-info client/*.egg-info
