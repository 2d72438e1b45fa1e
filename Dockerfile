# treecredit server image. One file, two images:
#
#   CPU (the defaults):  docker build -t treecredit:cpu .
#   CUDA:                docker build -t treecredit:cuda \
#                          --build-arg BASE_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04 \
#                          --build-arg TORCH=torch==2.13.0 --build-arg TORCH_INDEX_URL= \
#                          --build-arg EXTRA_APT_PACKAGES="gcc python3-dev" .
#
# Run: docker run --rm -p 50051:50051 treecredit:cpu   (add --gpus all for the CUDA image)
# `make image` builds the CPU image offline with podman from a local wheelhouse (deploy/container/).

# Any Debian or Ubuntu image: debian:bookworm-slim for CPU, an nvidia/cuda runtime image for CUDA.
ARG BASE_IMAGE=debian:bookworm-slim

# --- python: the base image plus the system Python (and, for CUDA, the C compiler Triton needs at run time)
FROM ${BASE_IMAGE} AS python
ARG EXTRA_APT_PACKAGES=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Versions come from the base image's release; pinning them here would tie the file to one base.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ${EXTRA_APT_PACKAGES} \
 && rm -rf /var/lib/apt/lists/*

# --- build: a virtual environment in /opt/treecredit with torch, the server dependencies and the project
FROM python AS build
# torch for this image: the CPU build by default; `torch==2.13.0` from PyPI is the CUDA build (it brings triton).
ARG TORCH=torch==2.13.0+cpu
# Where pip finds that torch besides PyPI (empty: PyPI only).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# pip reads this variable: 1 installs only from the wheelhouse deploy/container/wheels/ (how `make image` builds).
ARG PIP_NO_INDEX=0
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/treecredit
WORKDIR /src
COPY deploy/container/wheels/ /wheels/
COPY pyproject.toml ./
COPY client/pyproject.toml client/
COPY deploy/container/requirements.py deploy/container/
# Dependencies first, in their own layer: editing the source does not reinstall torch.
RUN python3 deploy/container/requirements.py > requirements.txt \
 && /opt/treecredit/bin/pip install --no-cache-dir --find-links /wheels \
      ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} "${TORCH}" -r requirements.txt
COPY README.md ./
COPY client/ client/
COPY server/ server/
COPY kernels/ kernels/
# The two distributions: the SDK (client/) and the server (./).
RUN /opt/treecredit/bin/pip install --no-cache-dir --no-deps --find-links /wheels ./client . \
 && /opt/treecredit/bin/pip check

# --- runtime: the system Python, the virtual environment, an unprivileged user
FROM python AS runtime
RUN useradd --create-home --uid 10001 --user-group treecredit
COPY --from=build /opt/treecredit /opt/treecredit
# Change the port with TREECREDIT_PORT rather than --port: the HEALTHCHECK reads the variable.
ENV PATH=/opt/treecredit/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    TREECREDIT_HOST=0.0.0.0 \
    TREECREDIT_PORT=50051
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001
WORKDIR /home/treecredit
# gRPC, and Prometheus /metrics (TREECREDIT_METRICS_PORT; -1 turns it off).
EXPOSE 50051 9464
# Asks the gRPC health service on 127.0.0.1:$TREECREDIT_PORT whether CreditService is SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "treecredit_server.probe"]
# Flags after the image name go to the server: docker run treecredit:cpu --compute-threads 8
ENTRYPOINT ["treecredit-server"]
