# The taskdaemon service of docker-compose.yml: `taskdaemon serve` with the example pipeline.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Graphviz's `dot` draws the web page's DAG (without it: "Cannot draw the DAG") and the SVG of
# `dag --format svg` and of dumps; scripts/setup.sh installs it for the same reason.
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install .
# The example pipeline's loops are `examples.loops:*`, imported from the working directory.
COPY examples ./examples

# An unprivileged user owning TASKDAEMON_HOME, so a fresh named volume there is writable.
RUN useradd --system --uid 10001 --home-dir /var/lib/taskdaemon taskdaemon \
    && mkdir -p /var/lib/taskdaemon \
    && chown taskdaemon:taskdaemon /var/lib/taskdaemon /app
USER taskdaemon
ENV TASKDAEMON_HOME=/var/lib/taskdaemon \
    TASKDAEMON_METRICS_HOST=0.0.0.0 \
    TASKDAEMON_METRICS_PORT=9090

EXPOSE 9090
# Liveness, not readiness: /healthz answers 200 while the engine's loop keeps up, and 503 when it
# is stuck, which a restart mends. /readyz is 503 while the collector refuses spans or log
# records, the span store cannot write (a full disk) or a stage overruns its timeout: none of
# these is mended by a restart, during which pipelines would stop, and an orchestrator that
# replaces unhealthy containers would restart a working daemon for each collector outage. They
# are watched instead: /readyz, the loss counters and their alerts (prometheus/rules/alerts.yml).
# The port is the command's; a command serving on another one needs its own probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=3)"]
CMD ["taskdaemon", "serve", "--host", "0.0.0.0", "--port", "9090", \
     "--pipeline", "examples/feature_delivery.yaml", "--every", "30", "--auto-approve"]
