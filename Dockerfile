# copilot: drop-in for Flyte's flyte-copilot data sidecar.
# Small Python base, non-root, copilot on PATH and at /bin/flyte-copilot.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

COPY pyproject.toml README.md constraints.txt /src/
COPY copilot /src/copilot
COPY scripts/install-image /src/scripts/install-image
RUN /src/scripts/install-image /src /opt/copilot /bin \
 && rm -rf /src \
 && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin copilot

# Data volumes (/var/inputs, /var/outputs) are mounted by the pod; a temp dir is
# the only other place copilot writes.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/bin/flyte-copilot"]
