"""``/data/services/tokens/{issue|show|validate|invalidate}``, as xnat-web's AliasTokenRestlet answers them.

- ``issue`` (GET): a new token for the authenticated user (``issue/user/{name}``: admins only), serialised as the
  ``AliasToken`` entity (alias, secret, xdatUserId, estimatedExpirationTime in epoch ms, ...). There is no renewal
  in place: a caller wanting more time issues a new token (any authenticated request may, a token's own included,
  as the restlet checks only who is asking), and the old one lives out its own lifetime.
- ``validate/{alias}/{secret}``: ``{"valid": "<user>"}``, or ``{"valid": null}`` for a wrong secret; an alias that
  is unknown, expired or invalidated is a 404 ("Can't find an alias token ...").
- ``invalidate/{alias}[/{secret}]``: disables the token and answers ``{"result": "OK"}``; as in XNAT the secret is
  not checked, only that the token is the caller's own (or the caller an admin).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g, request

from .app_alias import is_alias
from .errors import SimError, only_params

bp = Blueprint("xnat_tokens", __name__)


def _json(body) -> Response:
    return Response(json.dumps(body), 200, mimetype="application/json")


def _state():
    return current_app.config["SIM"].state


@bp.route("/data/services/tokens/<operation>", methods=["GET"])
@bp.route("/data/services/tokens/<operation>/user/<username>", methods=["GET"])
def own(operation: str, username: str | None = None):
    only_params(set(), request.args)
    name = username or g.user.name
    if name != g.user.name and not g.user.admin:
        raise SimError(403, "Non-admin users can only request operations on alias tokens for their own account")
    state = _state()
    if operation == "issue":
        if name not in current_app.config["SIM"].site.users:
            raise SimError(400, f"An error occurred retrieving the user: {name}")
        return _json(state.issue_token(name).as_json(state.lifetime()))
    if operation == "show":
        return _json(
            [t.as_json(state.lifetime()) for t in state.tokens.values() if t.user == name and state.live_token(t.alias)]
        )
    if operation in ("validate", "invalidate"):
        raise SimError(401, "You must specify both token and secret to validate a token.")
    raise SimError(400, f"Unknown operation: {operation}")


@bp.route("/data/services/tokens/<operation>/<alias>", methods=["GET"])
@bp.route("/data/services/tokens/<operation>/<alias>/<secret>", methods=["GET"])
def by_alias(operation: str, alias: str, secret: str | None = None):
    only_params(set(), request.args)
    state = _state()
    token = state.live_token(alias) if is_alias(alias) else None
    if token is None:
        kind = "alias" if is_alias(alias) else "ID"
        raise SimError(404, f"Can't find an alias token with the {kind} {alias}")
    if token.user != g.user.name and not g.user.admin:
        raise SimError(403, "Non-admin users can only request operations on alias tokens for their own account")
    if operation == "validate":
        if not secret:
            raise SimError(401, "You must specify both token and secret to validate a token.")
        return _json({"valid": token.user if secret == token.secret else None})
    if operation == "invalidate":
        state.invalidate(token)
        return Response('{"result": "OK"}', 200, mimetype="application/json")
    raise SimError(400, f"Unknown operation: {operation}")
