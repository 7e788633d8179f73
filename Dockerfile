# depeg-backend-processor: docker build -t depeg-backend-processor .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NODE_ENV=production PORT=3000

WORKDIR /app
COPY setup.py setup.cfg README.md ./
COPY depeg_processor ./depeg_processor
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home processor

USER processor
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/monitor/liveness' % os.environ.get('PORT', '3000'), timeout=4)"

STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "depeg_processor"]
CMD ["run"]
