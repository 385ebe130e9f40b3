# scheduler-server: serves both APIs on port 8010 with the embedded defaults.
#   docker build -t scheduler-server .
#   docker run --rm -p 8010:8010 scheduler-server
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 1000 scheduler
USER scheduler

ENV SCHEDULER_SERVER__SERVER__HOST=0.0.0.0 \
    SCHEDULER_SERVER__DATA_DIR=/home/scheduler/data
EXPOSE 8010
# `serve` runs waitress and the pipeline dispatcher in one process
# and binds to all interfaces inside the container.
CMD ["scheduler-server", "serve"]
