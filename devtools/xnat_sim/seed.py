"""The simulator's site: users, projects, subjects and experiments, read from a small YAML (or dict) seed.

A seed looks like::

    users:
      - {name: alice, password: "...", may_write_workflows: true}
      - {name: bob, password: "...", projects: [test]}      # bob reads only project test
    projects:
      test:
        name: Test project
        subjects:
          S01:
            experiments:
              - {label: S01_MR1, ID: XNAT_E00001, xsiType: xnat:mrSessionData, date: 2024-01-02}
    generate:
      - {project: big, subjects: 100, experiments_per_subject: 10, xsiType: xnat:mrSessionData}

IDs left out are given in order, site-wide, as XNAT does (``XNAT_S00001``, ``XNAT_E00001``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# The image session types XNAT ships (xnat.xsd); all are xnat:imageSessionData < subjectAssessorData < experimentData.
SESSION_TYPES = {
    "xnat:mrSessionData": "MR",
    "xnat:petSessionData": "PET",
    "xnat:ctSessionData": "CT",
    "xnat:petmrSessionData": "PETMR",
    "xnat:crSessionData": "CR",
    "xnat:dxSessionData": "DX",
    "xnat:usSessionData": "US",
    "xnat:xaSessionData": "XA",
    "xnat:otherDicomSessionData": "OT",
}
# Subject assessors that are not image sessions (XNAT's own), so a seed can hold a non-session experiment.
OTHER_ASSESSORS = {"xnat:subjectVariablesData"}


class SeedError(ValueError):
    """A seed that cannot describe a site; the message names the key."""


@dataclass
class User:
    name: str
    password: str
    may_write_workflows: bool = False
    admin: bool = False
    projects: list[str] | None = None  # None: every project

    def can_read(self, project: str) -> bool:
        return self.admin or self.projects is None or project in self.projects


@dataclass
class Experiment:
    id: str
    label: str
    xsi_type: str
    project: str
    subject_id: str
    subject_label: str
    date: str = ""
    insert_date: str = "2024-01-01 00:00:00.0"
    insert_user: str = "admin"

    def is_a(self, element: str) -> bool:
        """Whether this experiment is of ``element`` or a subtype of it (XFT's instanceOf, case-insensitive)."""
        element = element.lower()
        own = self.xsi_type.lower()
        if element in (own, "xnat:experimentdata", "xnat:subjectassessordata"):
            return True
        return element == "xnat:imagesessiondata" and self.xsi_type in SESSION_TYPES

    @property
    def modality(self) -> str:
        return SESSION_TYPES.get(self.xsi_type, "")


@dataclass
class Subject:
    id: str
    label: str
    project: str
    experiments: list[Experiment] = field(default_factory=list)
    insert_date: str = "2024-01-01 00:00:00.0"
    insert_user: str = "admin"


@dataclass
class Project:
    id: str
    name: str
    description: str = ""
    secondary_id: str = ""
    pi_firstname: str = ""
    pi_lastname: str = ""
    subjects: list[Subject] = field(default_factory=list)


@dataclass
class Site:
    users: dict[str, User]
    projects: dict[str, Project]
    experiments: dict[str, Experiment]  # by ID, site-wide
    subjects: dict[str, Subject]  # by ID, site-wide


def load_seed(seed: dict | str | Path) -> Site:
    """A site from a seed dict or the path of a YAML seed file."""
    if isinstance(seed, str | Path):
        seed = yaml.safe_load(Path(seed).read_text()) or {}
    if not isinstance(seed, dict):
        raise SeedError("seed: a mapping with users and projects")
    unknown = set(seed) - {"users", "projects", "generate"}
    if unknown:
        raise SeedError(f"seed: unknown key(s) {sorted(unknown)}")
    site = Site(users=_users(seed.get("users") or []), projects={}, experiments={}, subjects={})
    counters = {"S": 0, "E": 0}
    for pid, body in (seed.get("projects") or {}).items():
        _add_project(site, str(pid), body or {}, counters)
    for i, gen in enumerate(seed.get("generate") or []):
        _generate(site, gen, counters, f"generate[{i}]")
    return site


def _users(items: list) -> dict[str, User]:
    users = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name") or not item.get("password"):
            raise SeedError(f"users[{i}]: needs name and password")
        unknown = set(item) - {"name", "password", "may_write_workflows", "admin", "projects"}
        if unknown:
            raise SeedError(f"users[{i}]: unknown key(s) {sorted(unknown)}")
        user = User(
            name=str(item["name"]),
            password=str(item["password"]),
            may_write_workflows=bool(item.get("may_write_workflows", False)),
            admin=bool(item.get("admin", False)),
            projects=[str(p) for p in item["projects"]] if item.get("projects") is not None else None,
        )
        if user.name in users or user.name.lower() == "guest":
            raise SeedError(f"users[{i}].name: {user.name!r} is taken")
        users[user.name] = user
    return users


def _next_id(counters: dict, kind: str, taken: dict) -> str:
    while True:
        counters[kind] += 1
        candidate = f"XNAT_{kind}{counters[kind]:05d}"
        if candidate not in taken:
            return candidate


def _add_project(site: Site, pid: str, body: dict, counters: dict) -> Project:
    if pid in site.projects:
        raise SeedError(f"projects.{pid}: defined twice")
    unknown = set(body) - {"name", "description", "secondary_ID", "pi_firstname", "pi_lastname", "subjects"}
    if unknown:
        raise SeedError(f"projects.{pid}: unknown key(s) {sorted(unknown)}")
    project = Project(
        id=pid,
        name=str(body.get("name", pid)),
        description=str(body.get("description", "")),
        secondary_id=str(body.get("secondary_ID", pid)),
        pi_firstname=str(body.get("pi_firstname", "")),
        pi_lastname=str(body.get("pi_lastname", "")),
    )
    site.projects[pid] = project
    for label, sbody in (body.get("subjects") or {}).items():
        _add_subject(site, project, str(label), sbody or {}, counters)
    return project


def _add_subject(site: Site, project: Project, label: str, body: dict, counters: dict) -> Subject:
    where = f"projects.{project.id}.subjects.{label}"
    unknown = set(body) - {"ID", "experiments"}
    if unknown:
        raise SeedError(f"{where}: unknown key(s) {sorted(unknown)}")
    if any(s.label == label for s in project.subjects):
        raise SeedError(f"{where}: defined twice")
    sid = str(body.get("ID") or _next_id(counters, "S", site.subjects))
    if sid in site.subjects:
        raise SeedError(f"{where}.ID: {sid} is taken")
    subject = Subject(id=sid, label=label, project=project.id)
    site.subjects[sid] = subject
    project.subjects.append(subject)
    for i, ebody in enumerate(body.get("experiments") or []):
        _add_experiment(site, project, subject, ebody or {}, counters, f"{where}.experiments[{i}]")
    return subject


def _add_experiment(site: Site, project: Project, subject: Subject, body: dict, counters: dict, where: str) -> None:
    unknown = set(body) - {"label", "ID", "xsiType", "date"}
    if unknown or not body.get("label"):
        raise SeedError(f"{where}: needs label (and only label, ID, xsiType, date)")
    xsi_type = str(body.get("xsiType", "xnat:mrSessionData"))
    if xsi_type not in SESSION_TYPES and xsi_type not in OTHER_ASSESSORS:
        raise SeedError(f"{where}.xsiType: {xsi_type!r} is not a subject assessor type this simulator knows")
    label = str(body["label"])
    if any(e.label == label for s in project.subjects for e in s.experiments):
        raise SeedError(f"{where}.label: {label!r} is taken in project {project.id}")
    eid = str(body.get("ID") or _next_id(counters, "E", site.experiments))
    if eid in site.experiments:
        raise SeedError(f"{where}.ID: {eid} is taken")
    date = body.get("date", "")
    date = date.isoformat() if isinstance(date, dt.date) else str(date)
    experiment = Experiment(eid, label, xsi_type, project.id, subject.id, subject.label, date)
    site.experiments[eid] = experiment
    subject.experiments.append(experiment)


def _generate(site: Site, gen: dict, counters: dict, where: str) -> None:
    try:
        pid = str(gen["project"])
        n_subjects = int(gen.get("subjects", 1))
        per_subject = int(gen.get("experiments_per_subject", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise SeedError(f"{where}: needs project, subjects, experiments_per_subject ({exc})") from None
    xsi_type = str(gen.get("xsiType", "xnat:mrSessionData"))
    project = site.projects.get(pid) or _add_project(site, pid, {"name": pid}, counters)
    start = dt.date(2020, 1, 1)
    for s in range(1, n_subjects + 1):
        subject = _add_subject(site, project, f"{pid}_S{s:04d}", {}, counters)
        for k in range(1, per_subject + 1):
            day = (start + dt.timedelta(days=s * per_subject + k)).isoformat()
            body = {"label": f"{subject.label}_{SESSION_TYPES.get(xsi_type, 'X')}{k}", "xsiType": xsi_type, "date": day}
            _add_experiment(site, project, subject, body, counters, f"{where}[{s},{k}]")


def _session(label: str, eid: str, xsi_type: str, date: str) -> dict:
    return {"label": label, "ID": eid, "xsiType": f"xnat:{xsi_type}SessionData", "date": date}


def default_seed() -> dict:
    """The seed the ``xnat_sim`` fixture uses: two users, project ``test`` (3 subjects, 5 sessions, one CT) and
    project ``big`` (1,000 MR sessions over 100 subjects, for the launch benchmark)."""
    test = {
        "S01": [
            _session("S01_MR1", "XNAT_E00001", "mr", "2024-01-02"),
            _session("S01_MR2", "XNAT_E00002", "mr", "2024-02-02"),
        ],
        "S02": [_session("S02_PET1", "XNAT_E00003", "pet", "2024-01-05")],
        "S03": [
            _session("S03_MR1", "XNAT_E00004", "mr", "2024-01-07"),
            _session("S03_CT1", "XNAT_E00005", "ct", "2024-01-08"),
        ],
    }
    return {
        "users": [
            {"name": "alice", "password": "alice-Pw-4c1e9b", "may_write_workflows": True},
            {"name": "bob", "password": "bob-Pw-77d2a0", "may_write_workflows": False},
        ],
        "projects": {
            "test": {"name": "Test project", "subjects": {label: {"experiments": e} for label, e in test.items()}},
        },
        "generate": [
            {"project": "big", "subjects": 100, "experiments_per_subject": 10, "xsiType": "xnat:mrSessionData"}
        ],
    }
