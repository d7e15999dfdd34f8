"""How the api names control changes and what it keeps of a presented credential."""

from __future__ import annotations

import base64

import orjson
from aiohttp import web

from hub.audit.api import _created, action_name
from hub.audit.events import claimed_party


def test_action_names() -> None:
    assert action_name("POST", "/v1/subscriptions/{id}/revoke") == "subscription.revoke"
    assert action_name("PUT", "/v1/parties/{id}/roles") == "party.roles-set"
    assert action_name("POST", "/v1/parties/{id}/data-keys/delete") == "key.delete"
    assert action_name("POST", "/registry/subjects/{subject}/versions") == (
        "registry.subjects.subject.versions.post"
    )


def test_created_object_is_read_from_the_answer() -> None:
    answer = web.Response(body=orjson.dumps({"id": "sub-1", "resource": "dibao", "x": [1]}))
    assert _created(answer) == {"id": "sub-1", "resource": "dibao"}
    assert _created(web.Response(body=b"not json")) == {}
    assert _created(web.Response(text="[1, 2]")) == {}


def test_claimed_party_never_keeps_the_secret() -> None:
    assert claimed_party("Bearer ghp_rsj.very-secret") == "rsj"
    assert claimed_party("Bearer opaque-token") is None
    basic = base64.b64encode(b"jianwai:pw").decode()
    assert claimed_party(f"Basic {basic}") == "jianwai"
    assert claimed_party("Basic !!!") is None
    assert claimed_party(None) is None
