# copilot: drop-in for Flyte's flyte-copilot data sidecar.
# Small Python base, non-root, copilot on PATH and at /bin/flyte-copilot.
# BASE: any Debian-like image with python3 and its venv module (python:*-slim by
# default; scripts/test-image passes one built from Debian packages).
ARG BASE=python:3.12-slim
FROM ${BASE}

# EXTRAS: copilot's extras to install (gcs: gs:// through gcsfs; redis: redis://,
# about 2 MB).  obstore serves S3 and Azure Blob in every image; --build-arg
# EXTRAS=redis leaves GCS out (~50 MB).
ARG EXTRAS=gcs,redis

# VERSION is kept equal to pyproject.toml's by tests/test_image.py; SOURCE and
# REVISION say where the build came from (scripts/test-image passes the git commit).
ARG BASE
ARG VERSION=0.1.0
ARG SOURCE=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="copilot" \
      org.opencontainers.image.description="Data sidecar for raw container tasks (drop-in for Flyte's flyte-copilot)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

COPY pyproject.toml README.md constraints.txt /src/
COPY copilot /src/copilot
COPY scripts/install-image /src/scripts/install-image
# One layer: install, drop the sources, and add the user with a group of its own
# (uid = gid = 65532, the "nonroot" id distroless images use).
RUN /src/scripts/install-image /src /opt/copilot /bin \
 && rm -rf /src \
 && echo "copilot:x:65532:65532:copilot:/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
 && echo "copilot:x:65532:" >> /etc/group

# Data volumes (/var/inputs, /var/outputs) are mounted by the pod; a temp dir is
# the only other place copilot writes.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/bin/flyte-copilot"]
