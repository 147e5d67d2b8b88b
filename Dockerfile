FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY storage storage
COPY gateway gateway
COPY server server
COPY devices devices
COPY app app
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["patrol"]
