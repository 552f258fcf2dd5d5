# The Flotilla operator image (docs/image.md).
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg PACKAGE_VERSION=1.2.3 \
#     -t ghcr.io/OWNER/flotilla:1.2.3 .
#
# Stages, all on one pinned base (Docker's official python:3.11-slim-bookworm, a multi-arch index
# pinned by digest; Python 3.11 is what the test suite and tools/image/build.sh run):
#   wheel   - the pure-Python wheel of this checkout, built once on the build machine's platform;
#   venv    - /opt/flotilla: the wheel and its runtime dependencies, binary wheels of the target
#             platform only (no dev extras, no test tools, none of the dev rig's Go binaries);
#   runtime - the base plus /opt/flotilla, run as uid/gid 65532 (the chart's runAsUser).
# The entrypoint is exec-form: nothing runs a shell at run time. The chart's command,
# `python -m flotilla`, runs the same function as the `flotilla-operator` entrypoint, with the
# venv's python first on PATH. The root filesystem may be read-only; only /tmp must be writable.

# 1. wheel ---------------------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# No .git in the build context: the package version (PEP 440, from git tags: the workflow runs
# `python -m setuptools_scm`) comes in as PACKAGE_VERSION.
ARG PACKAGE_VERSION=0.0.0+unknown
COPY pyproject.toml README.md LICENSE* ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/pip \
    SETUPTOOLS_SCM_PRETEND_VERSION="${PACKAGE_VERSION}" python -m pip wheel --no-deps --wheel-dir /dist .

# 2. venv ----------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# The venv gets no pip of its own: the base's pip installs into it (--python).
RUN python -m venv --without-pip /opt/flotilla
RUN --mount=type=bind,from=wheel,source=/dist,target=/dist \
    --mount=type=cache,target=/root/.cache/pip \
    python -m pip --python /opt/flotilla/bin/python install --only-binary=:all: /dist/*.whl

# 3. runtime -------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
ARG VERSION=0.0.0+unknown
ARG REVISION=unknown
ARG CREATED=""
ARG SOURCE=""
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
       --shell /usr/sbin/nologin nonroot
COPY --from=venv /opt/flotilla /opt/flotilla
ENV PATH=/opt/flotilla/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="flotilla" \
      org.opencontainers.image.description="Flotilla operator: Kubernetes-native multi-cluster scheduler for AI workloads" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["flotilla-operator"]
