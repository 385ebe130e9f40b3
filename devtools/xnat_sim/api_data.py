"""``/data/JSESSION`` and the archive: projects, subjects, experiments (listings and single items).

Paths, parameters and answers follow xnat-web's restlet resources (UserSession, ProjectListResource,
ProjectSubjectList, ProjSubExptList, ExperimentListResource, ExperimentResource, SubjAssessmentResource):
a project the user cannot read is "Unable to identify project", subjects and experiments are found by label or ID;
a single experiment is found as XNAT finds it for GET: by ID anywhere, else by label in the path's project, the
path's subject unchecked (a client verifying a session must compare the answer's ``subject_ID`` and ``project``).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from . import columns, query, render
from .errors import SimError, fmt_of, only_params
from .seed import Experiment, Project, Subject

bp = Blueprint("xnat_data", __name__)


def _sim():
    return current_app.config["SIM"]


# --- sessions -------------------------------------------------------------------------


@bp.route("/data/JSESSION", methods=["GET", "POST", "DELETE"])
def jsession():
    only_params({"CSRF"}, request.args)
    state = _sim().state
    current = state.session(request.cookies.get("JSESSIONID"))
    if request.method == "DELETE":
        if current is not None:
            state.end_session(current.id)
        return Response("", 200)
    if current is None or current.user != g.user.name:
        current = state.open_session(g.user.name, g.alias)
    response = Response(current.id, 200, mimetype="text/plain")
    response.set_cookie("JSESSIONID", current.id, path="/", httponly=True)
    return response


# --- lookups --------------------------------------------------------------------------


def project_or_404(pid: str) -> Project:
    project = _sim().site.projects.get(pid)
    if project is None or not g.user.can_read(project.id):
        raise SimError(404, f"Unable to identify project {pid}")
    return project


def subject_or_404(project: Project, sid: str) -> Subject:
    for subject in project.subjects:
        if sid in (subject.label, subject.id):
            return subject
    raise SimError(404, f"Unable to identify subject {sid}")


def find_experiment(eid: str, project: Project | None) -> Experiment:
    """As ExperimentResource and SubjAssessmentResource find one for GET: by ID anywhere the user may read (the
    path's project and subject are not checked), else by label in the path's project."""
    e = _sim().site.experiments.get(eid)
    if e is not None and g.user.can_read(e.project):
        return e
    if project is not None:
        for s in project.subjects:
            for e in s.experiments:
                if e.label == eid:
                    return e
    raise SimError(404, "Unable to find the specified experiment.")


def readable_experiment(eid: str) -> Experiment:
    return find_experiment(eid, None)


# --- listings -------------------------------------------------------------------------


@bp.route("/data/projects", methods=["GET"])
def projects():
    only_params({"format", "columns"}, request.args)
    fmt = fmt_of(request.args, render.LISTING_FORMATS, "html")
    rows = [columns.project_row(p) for p in _sim().site.projects.values() if g.user.can_read(p.id)]
    probe = rows[0] if rows else columns.project_row(Project("x", "x"))
    cols = columns.kept_columns(request.args.get("columns"), columns.PROJECT_DEFAULT, probe)
    return render.result_set(rows, cols, fmt)


@bp.route("/data/projects/<pid>/subjects", methods=["GET"])
def subjects(pid: str):
    only_params({"format", "columns"}, request.args)
    fmt = fmt_of(request.args, render.LISTING_FORMATS, "html")
    project = project_or_404(pid)
    rows = [columns.subject_row(s) for s in project.subjects]
    probe = columns.subject_row(Subject("x", "x", "x"))
    cols = columns.kept_columns(request.args.get("columns"), columns.SUBJECT_DEFAULT, probe)
    return render.result_set(rows, cols, fmt)


_LISTING_PARAMS = {"format", "columns", "xsiType", "offset", "limit"}


def _listing(found: list[Experiment], default_root: str, default_columns: list[str] | None = None) -> Response:
    """An experiment listing as QueryOrganizerResource builds it: root type, field filters, columns, paging."""
    fmt = fmt_of(request.args, render.LISTING_FORMATS, "html")
    root = query.root_element(request.args, default_root, _LISTING_PARAMS)
    wanted = query.filters(request.args, _LISTING_PARAMS)
    if default_columns is None:
        default_columns = columns.EXPERIMENT_DEFAULT
        if query.extends(root.lower(), "xnat:experimentdata") and root != "xnat:experimentData":
            default_columns = [*default_columns, "subject_ID", "subject_label"]
    cols = columns.experiment_columns(request.args.get("columns"), root, default_columns)
    rows = []
    for e in found:
        if e.is_a(root):
            row = columns.experiment_cells(e, cols, root)
            if query.matches(e, row, wanted):
                rows.append(row)
    paged = "offset" in request.args or "limit" in request.args
    if paged:
        start, count = _int_arg("offset", 0), _int_arg("limit", len(rows))
        rows = rows[start : start + count]
    return render.result_set(rows, cols, fmt, total=not paged)


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise SimError(400, f"{name}: not a non-negative integer: {raw!r}")
    return int(raw)


@bp.route("/data/projects/<pid>/experiments", methods=["GET"])
def project_experiments(pid: str):
    project = project_or_404(pid)
    return _listing(
        [e for s in project.subjects for e in s.experiments], "xnat:subjectAssessorData", columns.EXPERIMENT_DEFAULT
    )


@bp.route("/data/projects/<pid>/subjects/<sid>/experiments", methods=["GET"])
def subject_experiments(pid: str, sid: str):
    subject = subject_or_404(project_or_404(pid), sid)
    return _listing(list(subject.experiments), "xnat:subjectAssessorData", columns.EXPERIMENT_DEFAULT)


@bp.route("/data/experiments", methods=["GET"])
def all_experiments():
    found = [e for e in _sim().site.experiments.values() if g.user.can_read(e.project)]
    return _listing(found, "xnat:experimentData")


# --- single items ---------------------------------------------------------------------


def _experiment_item(e: Experiment) -> Response:
    only_params({"format"}, request.args)
    fields = {"ID": e.id, "label": e.label, "project": e.project, "subject_ID": e.subject_id, "date": e.date}
    if e.modality:
        fields["modality"] = e.modality
    return render.item(e.xsi_type, fields, fmt_of(request.args, render.ITEM_FORMATS, "xml"))


@bp.route("/data/projects/<pid>", methods=["GET"])
def project_item(pid: str):
    only_params({"format"}, request.args)
    p = project_or_404(pid)
    fields = {"ID": p.id, "secondary_ID": p.secondary_id, "name": p.name, "description": p.description}
    return render.item("xnat:projectData", fields, fmt_of(request.args, render.ITEM_FORMATS, "xml"))


@bp.route("/data/projects/<pid>/subjects/<sid>", methods=["GET"])
def subject_item(pid: str, sid: str):
    only_params({"format"}, request.args)
    s = subject_or_404(project_or_404(pid), sid)
    fields = {"ID": s.id, "label": s.label, "project": s.project}
    return render.item("xnat:subjectData", fields, fmt_of(request.args, render.ITEM_FORMATS, "xml"))


@bp.route("/data/projects/<pid>/subjects/<sid>/experiments/<eid>", methods=["GET"])
def subject_experiment_item(pid: str, sid: str, eid: str):
    """XNAT checks the project here (SubjAssessmentResource), not the subject: a client must compare subject_ID."""
    return _experiment_item(find_experiment(eid, project_or_404(pid)))


@bp.route("/data/projects/<pid>/experiments/<eid>", methods=["GET"])
def project_experiment_item(pid: str, eid: str):
    """ExperimentResource: an unknown project is no error; an ID is found whatever project the path names."""
    project = _sim().site.projects.get(pid)
    return _experiment_item(find_experiment(eid, project if project and g.user.can_read(pid) else None))


@bp.route("/data/experiments/<eid>", methods=["GET"])
def experiment_item(eid: str):
    return _experiment_item(readable_experiment(eid))
