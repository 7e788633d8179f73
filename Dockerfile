# depeg-backend-processor
#   docker build -t depeg-backend-processor .          (the runtime image, the last stage)
#   docker build --target devnet -t depeg-devnet .     (tools for docker-compose.yml's local chain)
# The base is a build argument, so an image made elsewhere can stand in for the official one:
#   podman build --format docker --pull=never --build-arg BASE=localhost/my-python:3.11 .
ARG BASE=python:3.11-slim

# The package goes into a virtual environment at /opt/venv that holds no pip, setuptools or
# wheel; the runtime stage copies that environment and nothing else from here. pip compiles
# the modules as it installs them, so a start does not compile them again in every container.
FROM ${BASE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv --without-pip /opt/venv
# The locked dependencies alone, in a layer of their own: a change to the code or the README
# leaves it cached. requirements/runtime.txt is the runtime's part of requirements/lock.txt, the
# lock the tests install from: the same versions, each checked against its hash.
COPY requirements/runtime.txt requirements/
RUN python -m pip --python /opt/venv/bin/python install --require-hashes --no-deps \
        -r requirements/runtime.txt
COPY setup.py setup.cfg README.md ./
COPY depeg_processor ./depeg_processor
RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && python -m pip --python /opt/venv/bin/python install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels build *.egg-info

# docker-compose.yml's one-shot deployment of the product test double (runs as root, local use).
FROM build AS devnet
COPY requirements/devnet.txt requirements/
RUN python -m pip --python /opt/venv/bin/python install --require-hashes --no-deps \
        -r requirements/devnet.txt
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /devnet
COPY devnet ./devnet
COPY contracts/build ./contracts/build

FROM ${BASE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    NODE_ENV=production PORT=3000
# Nothing installs packages at run time: the base's own pip, setuptools and wheel go.
COPY deploy/image/drop_installers.py /tmp/
RUN python /tmp/drop_installers.py && rm /tmp/drop_installers.py \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin processor
COPY --from=build /opt/venv /opt/venv
# The working directory holds app.json (Dokku reads it there in image deploys) and no source:
# the service runs from the package installed in /opt/venv.
WORKDIR /app
COPY app.json ./
USER processor
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/monitor/liveness' % os.environ.get('PORT', '3000'), timeout=4)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["depeg-processor"]
CMD ["run"]
