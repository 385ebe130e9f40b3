"""A pipeline service in a process of its own, for the leadership tests (SIGSTOP, a second process).

``python -m tests.pipelines.leader_child DATA_DIR SETTINGS_JSON``: starts the service (its dispatcher
competes for the lease), prints ``ready``, runs until its stdin closes (or a signal), then stops it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from scheduler_server.config import Settings
from scheduler_server.pipelines.service import PipelineService


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(threadName)s %(name)s: %(message)s")
    data_dir, values = Path(sys.argv[1]), json.loads(sys.argv[2])
    settings = Settings(data_dir=data_dir, pipelines=values)
    service = PipelineService(settings.pipelines, settings.data_path)
    service.ensure_started()
    print("ready", flush=True)
    sys.stdin.read()
    service.close()


if __name__ == "__main__":
    main()
