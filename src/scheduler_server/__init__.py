"""scheduler-server: observing schedules and XNAT pipelines behind one HTTP API."""

__version__ = "0.1.0"
