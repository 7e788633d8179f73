# depeg-backend-processor
#   docker build -t depeg-backend-processor .          (the runtime image, the last stage)
#   docker build --target devnet -t depeg-devnet .     (tools for docker-compose.yml's local chain)
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY setup.py setup.cfg README.md ./
COPY depeg_processor ./depeg_processor
RUN pip install --no-cache-dir .

FROM base AS devnet
RUN pip install --no-cache-dir '.[devnet]'
COPY devnet ./devnet
COPY contracts/build ./contracts/build

FROM base AS runtime
ENV NODE_ENV=production PORT=3000
COPY app.json ./
RUN useradd --system --uid 10001 --no-create-home processor
USER processor
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/monitor/liveness' % os.environ.get('PORT', '3000'), timeout=4)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "depeg_processor"]
CMD ["run"]
