# iskpi serve: the API and the scheduled sync. Configure with ISKPI_* variables.
# tests/test_packaging.py checks this file without a Docker engine: it stages the COPY
# sources, runs the `pip install` RUN lines into a clean venv and runs iskpi from there.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 iskpi && mkdir /data && chown iskpi:iskpi /data
WORKDIR /app

# The dependencies in their own layer, rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt
RUN pip install --no-cache-dir -r requirements.txt

# Then the package itself, without dependencies.
COPY README.md ./
COPY connectors ./connectors
COPY simulators ./simulators
COPY models ./models
COPY kpi ./kpi
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info

# The SQLite default lives on a volume the app user owns (PostgreSQL: set ISKPI_DATABASE_URL).
ENV ISKPI_DATABASE_URL=sqlite:////data/iskpi.db
VOLUME /data
USER iskpi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["iskpi", "serve", "--host", "0.0.0.0", "--port", "8000"]
