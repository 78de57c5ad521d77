# probe: one process, one container. Build:  docker build -t probe .
# Run (the README has the full line):
#   docker run -d --name probe -p 8080:8080 -v probe-data:/data \
#     -v "$PWD/config.toml:/etc/probe/config.toml:ro" \
#     --sysctl net.ipv4.ping_group_range="0 2147483647" probe

# --- build: a wheel, so the runtime image holds no compiler, sources or build tools -------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY probe probe
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime ----------------------------------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin probe \
 && mkdir -p /data /etc/probe && chown probe:probe /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The example config, made to listen on all interfaces and keep its database on the volume.
# Mount your own file over /etc/probe/config.toml.
COPY config.example.toml /etc/probe/config.example.toml
RUN sed -e 's|^listen = "127.0.0.1:8080"|listen = "0.0.0.0:8080"|' \
        -e 's|^path = "probe.db"|path = "/data/probe.db"|' \
        /etc/probe/config.example.toml > /etc/probe/config.toml
ENV PROBE_CONFIG=/etc/probe/config.toml PYTHONUNBUFFERED=1
USER probe
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["probe"]
CMD ["run"]
