# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Installed first so that nothing later pulls a multi-GB CUDA build onto a CPU machine.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 50051

.PHONY: run test proto bench clean image test-container

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/treecredit-server --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	TRITON_INTERPRET=1 $(PY) -m pytest -q

# Regenerate the committed stubs in client/treecredit/v1 from proto/.
proto: $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -Iproto --python_out=client --pyi_out=client --grpc_python_out=client proto/treecredit/v1/*.proto

bench: $(VENV)/.installed
	$(PY) bench/score.py

# The CPU image, built with podman offline (base via debootstrap, torch from a local wheelhouse): deploy/container/.
IMAGE ?= treecredit:cpu
image: $(VENV)/.installed
	$(VENV)/bin/hadolint Dockerfile
	TORCH="$(TORCH_SPEC)" deploy/container/image.sh $(IMAGE) $(PY)

# Run the image, pass its HEALTHCHECK and a Score call from the SDK on the host, remove it.
test-container: image
	deploy/container/test.sh $(IMAGE) $(PY)

clean:
	rm -rf $(VENV) build *.egg-info
