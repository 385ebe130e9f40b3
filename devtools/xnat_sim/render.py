"""XNAT's answer shapes: listings as ``{"ResultSet": {"Result": [...], "totalRecords": "N"}}`` (or CSV, HTML),
single items as ``{"items": [{"children": [], "meta": {...}, "data_fields": {...}}]}`` (or XML), and errors as the
pages Restlet and Tomcat write (pyxnat reads the ``<h3>`` of Restlet's page)."""

from __future__ import annotations

import csv
import html
import io
import json
from xml.sax.saxutils import quoteattr

from flask import Response

from .seed import SESSION_TYPES

LISTING_FORMATS = ("json", "csv", "html")
ITEM_FORMATS = ("json", "xml")


def result_set(rows: list[dict], columns: list[str], fmt: str, total: bool = True, title: str = "") -> Response:
    """A listing in ``fmt`` (json, csv or html); ``totalRecords`` is a string, as XNAT writes it."""
    if fmt == "json":
        body: dict = {"Result": [{c: row.get(c, "") for c in columns} for row in rows]}
        if total:
            body["totalRecords"] = str(len(rows))
        if title:
            body["title"] = title
        return Response(json.dumps({"ResultSet": body}), 200, mimetype="application/json")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
        return Response(out.getvalue(), 200, mimetype="text/csv")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>" for row in rows
    )
    page = f"<html><body><table><tr>{head}</tr>{body_rows}</table></body></html>"
    return Response(page, 200, mimetype="text/html")


def item(xsi_type: str, fields: dict, fmt: str) -> Response:
    """One XFT item: JSON as XNAT's ``format=json`` writes it, or a minimal XML document of the same fields."""
    if fmt == "json":
        meta = {"create_event_id": 1, "xsi:type": xsi_type, "isHistory": False, "start_date": "2024-01-01 00:00:00.0"}
        body = {"items": [{"children": [], "meta": meta, "data_fields": fields}]}
        return Response(json.dumps(body), 200, mimetype="application/json")
    prefix, _, name = xsi_type.partition(":")
    element = f"{prefix}:{_xml_name(name)}"
    attrs = "".join(f" {k}={quoteattr(str(v))}" for k, v in fields.items() if k in ("ID", "project", "label"))
    children = "".join(
        f"<{prefix}:{k}>{html.escape(str(v))}</{prefix}:{k}>"
        for k, v in fields.items()
        if k not in ("ID", "project", "label")
    )
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{element}{attrs} xmlns:xnat="http://nrg.wustl.edu/xnat" xmlns:wrk="http://nrg.wustl.edu/workflow" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{children}</{element}>'
    )
    return Response(doc, 200, mimetype="text/xml")


def _xml_name(name: str) -> str:
    """``mrSessionData`` -> ``MRSession``, ``projectData`` -> ``Project``, as the XSD names its elements."""
    base = name.removesuffix("Data")
    for xsi, modality in SESSION_TYPES.items():
        if xsi.endswith(":" + name):
            return modality + "Session" if modality != "OT" else "OtherDicomSession"
    return base[:1].upper() + base[1:]


def restlet_error(status: int, message: str) -> Response:
    """The status page Restlet writes for a resource's error status (its description in the ``<h3>``)."""
    page = (
        "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n"
        f"<h3>{html.escape(message)}</h3>"
        '<p>You can get technical details <a href="http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html">here</a>.'
        '<br>\nPlease continue your visit at our <a href="/">home page</a>.\n</p>\n</body>\n</html>\n'
    )
    return Response(page, status, mimetype="text/html")


def tomcat_error(status: int, reason: str, message: str = "") -> Response:
    """The error page Tomcat writes (XNAT's 401 for failed authentication, its 500s)."""
    title = f"HTTP Status {status} – {reason}"
    page = (
        f'<!doctype html><html lang="en"><head><title>{title}</title></head><body>'
        f'<h1>{title}</h1><hr class="line" /><p><b>Type</b> Status Report</p>'
        f'<p><b>Message</b> {html.escape(message or reason)}</p><hr class="line" /><h3>Apache Tomcat</h3></body></html>'
    )
    return Response(page, status, mimetype="text/html;charset=utf-8")


def unauthorized() -> Response:
    response = tomcat_error(401, "Unauthorized", "Unauthorized")
    response.headers["WWW-Authenticate"] = 'Basic realm="XNAT"'
    return response
