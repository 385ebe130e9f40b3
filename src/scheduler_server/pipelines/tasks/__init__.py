"""What a pipeline *is*: one module per task type, registered here by its ``type`` name."""

from __future__ import annotations

from scheduler_server.pipelines.tasks.base import SECRET, Command, PathError, TaskRequest, TaskType, resolve_in_folder
from scheduler_server.pipelines.tasks.script import ScriptTask
from scheduler_server.pipelines.tasks.xnat import XnatTask

TASK_TYPES: dict[str, TaskType] = {task.name: task for task in (XnatTask(), ScriptTask())}

__all__ = ["SECRET", "TASK_TYPES", "Command", "PathError", "TaskRequest", "TaskType", "resolve_in_folder"]
