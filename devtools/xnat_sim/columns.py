"""The ``columns=`` of XNAT's listings: its shortcut names (XMLPathShortcuts) and XFT paths (``xnat:mrSessionData/date``).

Experiments: a shortcut or a path ``<data type>/<field>`` of a type this site knows; the header of a path column is
the lower-cased path, as XFT writes it; a path on a type the row is not of is empty. XNAT drops a column it has no
field for (QueryOrganizerResource logs "Unknown alias" and goes on; pyxnat asks projects and subjects for
``xsiType`` and gets none back), so it is dropped here too; ``columns=DEFAULT`` is the default set.
"""

from __future__ import annotations

from .seed import OTHER_ASSESSORS, SESSION_TYPES, Experiment, Project, Subject

EXPERIMENT_DEFAULT = ["ID", "project", "date", "xsiType", "label", "insert_date"]
SUBJECT_DEFAULT = ["ID", "project", "label", "insert_date", "insert_user"]
PROJECT_DEFAULT = ["ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname"]

# XMLPathShortcuts' experiment shortcuts this site has no data for: known, answered empty.
_EMPTY_EXPERIMENT = (
    "visit_id visit time note pi_firstname pi_lastname validation_method validation_status validation_date "
    "validation_notes scanner operator dcmAccessionNumber dcmPatientId dcmPatientName session_type UID "
    "studyInstanceUID coil fieldStrength marker stabilization last_modified"
).split()
_EMPTY_SUBJECT = (
    "group src pi_firstname pi_lastname dob yob age gender handedness ses education educationDesc race ethnicity "
    "weight height gestational_age post_menstrual_age birth_weight last_modified"
).split()
_ELEMENTS = {t.lower() for t in (*SESSION_TYPES, *OTHER_ASSESSORS)} | {
    "xnat:experimentdata",
    "xnat:subjectassessordata",
    "xnat:imagesessiondata",
}


def experiment_row(e: Experiment) -> dict:
    session = e.xsi_type in SESSION_TYPES
    return {
        "ID": e.id,
        "project": e.project,
        "label": e.label,
        "date": e.date,
        "xsiType": e.xsi_type,
        "insert_date": e.insert_date,
        "insert_user": e.insert_user,
        "subject_ID": e.subject_id,
        "subject_label": e.subject_label,
        "subject_project": e.project,
        "session_ID": e.id if session else "",
        "session_label": e.label if session else "",
        "session_project": e.project if session else "",
        "modality": e.modality,
        **{name: "" for name in _EMPTY_EXPERIMENT},
        "URI": f"/data/experiments/{e.id}",
    }


def _path_value(e: Experiment, element: str, fld: str) -> str:
    if not e.is_a(element):
        return ""
    values = {k.lower(): v for k, v in experiment_row(e).items()}
    return str(values.get(fld, ""))


def experiment_columns(requested: str | None, root: str, default: list[str] = EXPERIMENT_DEFAULT) -> list[str]:
    """The listing's headers for ``columns=`` (None or DEFAULT: the default set), then ``URI`` and the root's ID."""
    names = default if requested in (None, "DEFAULT") else [c.strip() for c in requested.split(",") if c.strip()]
    known = set(experiment_row(_PROBE))
    known_lower = {k.lower() for k in known}
    out = []
    for name in names:
        if "/" in name:
            element, _, fld = name.lower().partition("/")
            if element in _ELEMENTS and fld in known_lower:
                out.append(name.lower())
        elif name in known:
            out.append(name)
    return list(dict.fromkeys([*out, "URI", f"{root.lower()}/id"]))


def experiment_cells(e: Experiment, columns: list[str], root: str) -> dict:
    row = experiment_row(e)
    for col in columns:
        if "/" in col and col not in row:
            element, _, fld = col.partition("/")
            row[col] = e.id if col == f"{root.lower()}/id" else _path_value(e, element, fld)
    return row


def subject_row(s: Subject) -> dict:
    return {
        "ID": s.id,
        "project": s.project,
        "label": s.label,
        "insert_date": s.insert_date,
        "insert_user": s.insert_user,
        **{name: "" for name in _EMPTY_SUBJECT},
        "URI": f"/data/subjects/{s.id}",
    }


def project_row(p: Project) -> dict:
    return {
        "ID": p.id,
        "secondary_ID": p.secondary_id,
        "name": p.name,
        "description": p.description,
        "pi_firstname": p.pi_firstname,
        "pi_lastname": p.pi_lastname,
        "keywords": "",
        "URI": f"/data/projects/{p.id}",
    }


def kept_columns(requested: str | None, default: list[str], row: dict) -> list[str]:
    """Projects' and subjects' headers: the requested ones XNAT has (others dropped, as XNAT does), then URI."""
    names = default if requested in (None, "DEFAULT") else [c.strip() for c in requested.split(",") if c.strip()]
    return list(dict.fromkeys([n for n in names if n in row and n != "URI"] + ["URI"]))


_PROBE = Experiment("X", "x", "xnat:mrSessionData", "p", "S", "s")
