# copilot: drop-in for Flyte's flyte-copilot data sidecar.
# Small Python base, non-root, copilot on PATH and at /bin/flyte-copilot.
# BASE: any Debian-like image with python3 and its venv module (python:*-slim by
# default; scripts/test-image passes one built from Debian packages).
# BUILDER: where the install runs, BASE by default; any image with the same
# python at the same path.  When it has binutils' strip (python:3.12 has), the
# install's shared objects lose their symbols and debug info (about 17 MB).
ARG BASE=python:3.12-slim
ARG BUILDER=${BASE}
FROM ${BUILDER} AS build

# EXTRAS: copilot's extras to install (gcs: gs:// through gcsfs; redis: redis://,
# about 2 MB).  obstore serves S3 and Azure Blob in every image; --build-arg
# EXTRAS=redis leaves GCS out (about 50 MB).
ARG EXTRAS=gcs,redis

ENV PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md constraints.txt /src/
COPY copilot /src/copilot
COPY scripts/install-image scripts/precompile.py /src/scripts/
RUN /src/scripts/install-image /src /opt/copilot /tmp/bin

FROM ${BASE}
# VERSION is kept equal to pyproject.toml's by tests/test_image.py; SOURCE and
# REVISION say where the build came from (scripts/test-image passes the git commit).
ARG BASE
ARG VERSION=0.1.0
ARG SOURCE=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="flyte-copilot" \
      org.opencontainers.image.description="Data sidecar for raw container tasks (drop-in for Flyte's flyte-copilot)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=build /opt/copilot /opt/copilot
# One layer: the commands on PATH and at Flyte's path, and the user with a group of
# its own (uid = gid = 65532, the "nonroot" id distroless images use).
RUN ln -s /opt/copilot/bin/copilot /bin/copilot \
 && ln -s /opt/copilot/bin/copilot /bin/flyte-copilot \
 && /bin/flyte-copilot --version >/dev/null \
 && echo "copilot:x:65532:65532:copilot:/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
 && echo "copilot:x:65532:" >> /etc/group

# Data volumes (/var/inputs, /var/outputs) are mounted by the pod; a temp dir is
# the only other place copilot writes.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/bin/flyte-copilot"]
