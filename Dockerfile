FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY server server
COPY devices devices
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["patrol"]
