# iskpi serve: the API and the scheduled sync. Configure with ISKPI_* variables.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY models ./models
COPY kpi ./kpi
COPY service ./service
COPY migrations ./migrations
COPY simulators ./simulators
RUN pip install --no-cache-dir . && useradd --create-home iskpi
USER iskpi
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["iskpi", "serve", "--host", "0.0.0.0", "--port", "8000"]
