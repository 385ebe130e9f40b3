"""Pydantic models of the pipeline API's bodies, queries and answers: they validate and they make the OpenAPI document.

Pipeline requests themselves are validated by the task types' own models
(``XnatRequest``, ``ScriptRequest``), which are the ones documented here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel

from scheduler_server.pipelines.models import PIPELINE_STATES
from scheduler_server.pipelines.storage.queries import SORT_KEYS
from scheduler_server.pipelines.tasks.base import PLAIN_TEXT_SCHEMA, plain_text
from scheduler_server.pipelines.tasks.script import ScriptRequest
from scheduler_server.pipelines.tasks.xnat import XnatRequest
from scheduler_server.web.integers import BYTE_OFFSET_MAX, INT32_MAX, QueryInt
from scheduler_server.web.patterns import matching

PipelineRequest = XnatRequest | ScriptRequest
#: Most pipelines one request may submit (each is validated and inserted in the request).
MAX_SUBMISSION = 1000
#: The 400 of a submission, in both pipeline APIs' documents.
SUBMIT_400 = (
    "A client mistake: the request does not match this document, or no pipeline was accepted because of a rule "
    "the schema cannot state (the script or a file does not exist in LOCAL_SCRIPTS_FOLDER or leaves it, an "
    "environment variable the site does not allow, options a shell cannot split into words, a password that "
    "occurs in a field other than user or is made of '*' only, credentials other than exactly user and pwd or "
    "alias and secret, an alias token for a host not in xnat.servers; for a host in xnat.servers: a host not "
    "listed, credentials XNAT refuses, a project, subject or session it does not have or of a type not configured)"
)


class PipelineSubmission(
    RootModel[PipelineRequest | Annotated[list[PipelineRequest], Field(min_length=1, max_length=MAX_SUBMISSION)]]
):
    """One pipeline request, or a non-empty list of them (each gets its own report)."""


_STATE = "|".join(PIPELINE_STATES)
#: ?status=: comma-separated statuses (spaces around them allowed); empty means no filter.
STATUS_FILTER = rf"^( *({_STATE}) *(, *({_STATE}) *)*)?$"
#: ?id= of GET /pipeline: comma-separated ids of at most 10 digits (ids above the range match nothing).
ID_LIST = r"^ *[0-9]{1,10} *(, *[0-9]{1,10} *)*$"
# As stored: at most 255 characters, no control characters (PostgreSQL refuses NUL in a query parameter).
ProjectFilter = Annotated[str, AfterValidator(plain_text), Field(max_length=255, json_schema_extra=PLAIN_TEXT_SCHEMA)]
StatusFilter = matching(STATUS_FILTER, "comma-separated statuses", max_length=1024)
IdList = matching(ID_LIST, "comma-separated pipeline ids", max_length=4096)
Token = Annotated[str | None, Field(None, description="API token, if not sent as 'Authorization: Bearer'.")]


class Timings(BaseModel):
    queued: str | None = None
    instance_ready: str | None = None
    script_started: str | None = None
    finished: str | None = None


class HistoryEntry(BaseModel):
    at: str
    model_config = ConfigDict(populate_by_name=True)
    from_: str | None = Field(None, alias="from")
    to: str
    attempt: int
    reason: str | None


class PipelineOut(BaseModel):
    """A pipeline as every answer shows it; ``pwd`` is always masked."""

    model_config = ConfigDict(extra="allow")
    id: int
    type: str
    status: Literal["queued", "provisioning", "staging", "running", "succeeded", "failed", "cancelled"]
    script: str
    files: list[str] = []
    priority: int
    timeout: float | None
    attempt: int
    instance: str | None
    exit_code: int | None
    reason: str | None = Field(description="Why it is in its current status.")
    cancel_requested: bool
    timings: Timings
    history: list[HistoryEntry] | None = Field(None, description="Every status change (single-pipeline answers).")


class InstanceOut(BaseModel):
    id: str
    backend: str
    state: Literal["booting", "idle", "busy", "deleting", "deleted", "broken"]
    backend_id: str | None
    address: str | None
    pipeline: int | None
    uses: int
    created: str | None
    ready: str | None
    idle_since: str | None
    error: str | None


class SubmitReport(BaseModel):
    index: int
    request: Literal["success", "error"]
    id: int | None = None
    status: str | None = None
    error: str | None = None
    field: str | None = None
    warnings: list[str] | None = Field(
        None, description="Accepted, but: e.g. a pipeline that may outlive its XNAT alias token (only when any)."
    )


class SeedAnswer(BaseModel):
    """The pipeline seed's envelope: ``content`` holds the answer, or the error message."""

    request: Literal["success", "error"]
    content: Any


class PipelineIds(BaseModel):
    """GET /pipeline's optional JSON body: one id or a list of ids."""

    id: int | list[int]


class DeleteInstancesQuery(BaseModel):
    token: Token
    all: bool = Field(False, description="Also delete instances this scheduler did not create (the seed's behaviour).")
    dry_run: bool = Field(False, description="Only list what would be deleted.")


class PipelineIdQuery(BaseModel):
    id: IdList | None = Field(None, description="Comma-separated ids (or repeat ?id=) to list only those.")
    token: Token


class TokenQuery(BaseModel):
    token: Token


class PipelineListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: StatusFilter | None = Field(
        None, description=f"Comma-separated statuses, e.g. 'queued,running'; one of {', '.join(PIPELINE_STATES)}."
    )
    project: ProjectFilter | None = Field(None, description="Only this XNAT project.")
    subject: ProjectFilter | None = Field(None, description="Only this XNAT subject.")
    session: ProjectFilter | None = Field(None, description="Only this XNAT session.")
    q: ProjectFilter | None = Field(
        None, description="Search: only pipelines whose project, subject, session or script contains this (any case)."
    )
    sort: Literal[SORT_KEYS] = Field(  # type: ignore[valid-type]
        "id",
        description="Order: id, submitted, started, finished, priority or status; a leading '-' reverses it "
        "(not yet started or finished last either way; ties by id).",
    )
    offset: QueryInt = Field(0, ge=0, le=INT32_MAX)
    limit: QueryInt = Field(100, ge=1, le=1000)
    token: Token


#: [ISO time, a count]: a pair in JSON (OpenAPI 3.1's prefixItems are not read by every tool).
TimeCount = Annotated[list[str | int], Field(min_length=2, max_length=2)]
#: The summary's window and bucket (GET /api/v1/pipelines/summary).
SUMMARY_HOURS = 6
SUMMARY_BUCKET_SECONDS = 600


class PipelineSummary(BaseModel):
    counts: dict[str, int] = Field(description="Pipelines in each status (every status listed, 0 included).")
    queue_depth: list[TimeCount] = Field(
        description="[time, pipelines submitted and neither started nor finished then], every bucket edge."
    )
    throughput: list[TimeCount] = Field(description="[end of a bucket, pipelines that finished within it].")
    bucket_seconds: int
    hours: int


class PipelinePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[PipelineOut]


class SubmitAnswer(BaseModel):
    accepted: int
    rejected: int
    pipelines: list[SubmitReport]


class LogsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stream: Literal["stdout", "stderr"] = "stdout"
    since: QueryInt = Field(
        0, ge=0, le=BYTE_OFFSET_MAX, description="Byte offset to read from: the 'next' of the previous answer."
    )
    max_bytes: QueryInt = Field(256 * 1024, ge=1, le=8 * 1024 * 1024)
    token: Token


class LogChunk(BaseModel):
    id: int
    attempt: int
    stream: Literal["stdout", "stderr"]
    status: str
    offset: int
    next: int = Field(description="Pass as ?since= to get what follows.")
    data: str = Field(description="UTF-8 text; passwords masked.")
    complete: bool = Field(description="True when the pipeline has ended and nothing follows.")


class InstanceList(BaseModel):
    items: list[InstanceOut]


class Deleted(BaseModel):
    deleted: str


class ErrorOut(BaseModel):
    status: Literal["error"]
    message: str
    field: str | None = None
