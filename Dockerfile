FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY storage storage
COPY gateway gateway
COPY server server
COPY devices devices
COPY app app
COPY dashboards/web dashboards/web
RUN pip install --no-cache-dir .
# the web UI's files (the installed package does not carry them)
ENV PATROL_UI_DIR=/app/dashboards/web
USER nobody
ENTRYPOINT ["patrol"]
