"""The series this process records (docs/metrics.md lists them). Built on first use, after ``setup``
has decided the multiprocess directory: prometheus-client reads that choice when it is imported."""

from __future__ import annotations

PREFIX = "scheduler_server_"

#: Seconds from submission to the script's start: a start within the same commit up to an hour's queue.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Seconds an instance took from its row to reachable: a local process up to a slow cloud.
BOOT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
#: Seconds of a Schedule API request: the dummy policy up to a week of sat.
SCHEDULE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Series:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        p = PREFIX
        self.submissions = Counter(
            p + "pipeline_submissions", "Pipelines submitted, by task type and outcome.", ["kind", "outcome"]
        )
        self.starts = Counter(
            p + "pipeline_starts", "Pipeline attempts whose script was started (launched, or re-attached)."
        )
        self.ends = Counter(p + "pipeline_ends", "Pipeline attempts ended, by outcome.", ["outcome"])
        self.submit_to_start = Histogram(
            p + "pipeline_submit_to_start_seconds",
            "From submission to the pipeline's first script start, whatever the attempt.",
            buckets=WAIT_BUCKETS,
        )
        self.boot = Histogram(
            p + "instance_boot_seconds",
            "From an instance's creation to reachable, by backend.",
            ["backend"],
            buckets=BOOT_BUCKETS,
        )
        self.leading = Gauge(
            p + "dispatcher_leading",
            "1 while this process dispatches pipelines (holds the lease), else 0.",
            multiprocess_mode="liveall",
        )
        self.backend_errors = Counter(
            p + "backend_api_errors",
            "Backend calls that failed for good, by backend and operation.",
            ["backend", "operation"],
        )
        self.backend_retries = Counter(
            p + "backend_api_retries", "Backend calls repeated after a transient failure.", ["backend", "operation"]
        )
        self.schedule = Histogram(
            p + "schedule_request_duration_seconds",
            "Schedule API requests (POST /api/v1/schedule/) by policy and outcome, and how long they took.",
            ["policy", "outcome"],
            buckets=SCHEDULE_BUCKETS,
        )
