"""XNAT specs stored before a password equal to ``user`` was kept secret: hidden once, at start.

Since then every XNAT spec says ``user_is_pwd`` (see ``tasks/xnat.py``); a spec without it was stored
by an earlier version, which kept ``user`` in clear even when it was the password (the seed's own
example is admin/admin) and answered it. Each such row is looked at once: its password is decrypted
and compared, ``user`` becomes ``MASK`` if they are equal, and the row is marked either way so later
starts find nothing to do. Only ``spec`` is written (not the row's version: nothing else changes).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from scheduler_server.pipelines.models import Pipeline
from scheduler_server.pipelines.secrets import MASK, SecretBox, SecretError

log = logging.getLogger(__name__)


def hide_users_equal_to_passwords(store, secrets: SecretBox) -> int:
    """Mark every unmarked XNAT spec; return how many had their user hidden."""
    unmarked = (
        Pipeline.type == "xnat",
        Pipeline.secret.is_not(None),
        Pipeline.spec["user_is_pwd"].as_boolean().is_(None),
    )
    with store.read() as session:
        rows = session.execute(select(Pipeline.id, Pipeline.spec, Pipeline.secret).where(*unmarked)).all()
    if not rows:
        return 0
    hidden = 0
    with store.write() as session:
        for pipeline_id, spec, token in rows:
            try:
                same = "user" in spec and secrets.decrypt(token) == spec["user"]
            except SecretError:
                continue  # cannot tell (the key changed): left for a start with the right key
            marked = {**spec, "user": MASK, "user_is_pwd": True} if same else {**spec, "user_is_pwd": False}
            session.execute(update(Pipeline).where(Pipeline.id == pipeline_id).values(spec=marked))
            hidden += same
    if hidden:
        log.info("%d stored pipeline(s) had the password as their user name in clear: now kept as %s", hidden, MASK)
    return hidden
