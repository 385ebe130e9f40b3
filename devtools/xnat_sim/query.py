"""What XNAT's experiment listings do with their query (QueryOrganizerResource, ExperimentListResource):

- the **root element**: ``xsiType`` (a single type; a comma list is ignored, as XNAT ignores it), else the default
  (``xnat:subjectAssessorData`` under a project, ``xnat:experimentData`` for ``/data/experiments``) narrowed to any
  subtype a filter or column path names (``columns=xnat:mrSessionData/date`` lists MR sessions only): rows are the
  experiments of the root type;
- **filters**: a shortcut name (``label=``, ``project=``, ``subject_label=``) or a path (``xnat:mrSessionData/label=``)
  with comma-separated values, any of which matches; ``*`` or ``%`` make a value an SQL ``LIKE`` pattern
  (case-sensitive; ``_`` then matches one character). Date fields take ranges in XNAT; that is not simulated (501).
"""

from __future__ import annotations

import re

from .errors import SimError
from .seed import OTHER_ASSESSORS, SESSION_TYPES, Experiment

# The element each experiment shortcut's XFT path lies on (XMLPathShortcuts), lower-cased.
_IMAGE = "xnat:imagesessiondata"
SHORTCUT_ELEMENT = {
    **{
        k: "xnat:experimentdata"
        for k in "ID visit_id visit date time note pi_firstname pi_lastname project label".split()
    },
    **{
        k: "xnat:experimentdata" for k in "validation_method validation_status validation_date validation_notes".split()
    },
    **{k: "xnat:experimentdata" for k in "insert_date insert_user last_modified xsiType".split()},
    **{k: _IMAGE for k in "scanner operator dcmAccessionNumber dcmPatientId dcmPatientName session_type".split()},
    **{k: _IMAGE for k in "modality UID studyInstanceUID session_ID session_label session_project".split()},
    **{k: "xnat:mrsessiondata" for k in "coil fieldStrength marker".split()},
    "stabilization": "xnat:petsessiondata",
    "subject_ID": "xnat:subjectassessordata",
    "subject_label": "xnat:subjectdata",
    "subject_project": "xnat:subjectdata",
}
DATE_FIELDS = {"date", "insert_date", "last_modified", "validation_date", "time"}
TYPES = {t.lower(): t for t in (*SESSION_TYPES, *OTHER_ASSESSORS)} | {
    "xnat:experimentdata": "xnat:experimentData",
    "xnat:subjectassessordata": "xnat:subjectAssessorData",
    "xnat:imagesessiondata": "xnat:imageSessionData",
}
_PARENT = {
    "xnat:subjectassessordata": "xnat:experimentdata",
    "xnat:imagesessiondata": "xnat:subjectassessordata",
    **{t.lower(): "xnat:imagesessiondata" for t in SESSION_TYPES},
    **{t.lower(): "xnat:subjectassessordata" for t in OTHER_ASSESSORS},
}


def extends(element: str, root: str) -> bool:
    """Whether ``element`` is a proper subtype of ``root`` (both lower-case)."""
    parent = _PARENT.get(element)
    while parent is not None:
        if parent == root:
            return True
        parent = _PARENT.get(parent)
    return False


def _element_of(name: str) -> str | None:
    if "/" in name:
        return name.split("/", 1)[0].lower()
    return SHORTCUT_ELEMENT.get(name)


def root_element(args, default: str, reserved: set[str]) -> str:
    """The listing's root type, as QueryOrganizerResource.getRootElementName chooses it."""
    wanted = args.get("xsiType")
    if wanted and "," not in wanted:
        if wanted.lower() not in TYPES:
            raise SimError(400, f"xsiType: unknown data type {wanted!r}")
        return TYPES[wanted.lower()]
    root = default.lower()
    names = [k for k in args if k not in reserved]
    names += [c.strip() for c in (args.get("columns") or "").split(",") if c.strip()]
    for name in names:
        element = _element_of(name)
        if element is not None and extends(element, root):
            root = element
    return TYPES[root]


def filters(args, reserved: set[str]) -> list[tuple[str, list[str]]]:
    """The query's field filters: (field key, values); anything else not reserved is refused."""
    found = []
    for key, value in args.items():
        if key in reserved:
            continue
        field = key.split("/", 1)[1] if "/" in key else key
        if _element_of(key) is None or ("/" in key and key.split("/", 1)[0].lower() not in TYPES):
            raise SimError(400, f"unknown query parameter {key} (not a field XNAT filters experiments by)")
        if field in DATE_FIELDS:
            raise SimError(501, f"not simulated by devtools.xnat_sim: filtering by the date field {key}")
        found.append((key, [v.strip() for v in value.split(",") if v.strip()]))
    return found


def _like(pattern: str) -> re.Pattern:
    out = "".join(".*" if c in "*%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.S)


def matches(e: Experiment, row: dict, wanted: list[tuple[str, list[str]]]) -> bool:
    for key, values in wanted:
        if "/" in key:
            element, _, field = key.partition("/")
            if not e.is_a(element):
                return False
            value = str({k.lower(): v for k, v in row.items()}.get(field.lower(), ""))
        else:
            value = str(row.get(key, ""))
        hit = any(_like(v).match(value) if ("*" in v or "%" in v) else v == value for v in values)
        if not hit:
            return False
    return True
