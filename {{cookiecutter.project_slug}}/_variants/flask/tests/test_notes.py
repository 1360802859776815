"""The notes API: every operation, and every kind of bad input gets a 4xx JSON error."""

import json

import pytest


def create(client, **fields):
    response = client.post("/api/notes", json={"title": "A note", **fields})
    assert response.status_code == 201, response.json
    return response.json


def assert_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert isinstance(response.json["error"], str)
    assert response.json["error"]
    assert isinstance(response.json["details"], dict)
    return response.json


def test_create_returns_the_note(client):
    note = create(client, title="Groceries", body="eggs and milk")
    assert note["title"] == "Groceries"
    assert note["body"] == "eggs and milk"
    assert isinstance(note["id"], int)
    assert note["word_count"] is None
    assert note["created_at"].endswith("+00:00")
    assert note["updated_at"]


def test_body_defaults_to_empty(client):
    assert create(client)["body"] == ""


def test_get_returns_what_was_created(client):
    note = create(client, body="hello")
    response = client.get(f"/api/notes/{note['id']}")
    assert response.status_code == 200
    assert response.json == note


def test_list_is_newest_first_and_paginated(client):
    ids = [create(client, title=f"note {n}")["id"] for n in range(5)]
    response = client.get("/api/notes?page=1&per_page=2")
    assert response.status_code == 200
    page = response.json
    assert page["total"] == 5
    assert (page["page"], page["per_page"]) == (1, 2)
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    last = client.get("/api/notes?page=3&per_page=2").json
    assert [item["id"] for item in last["items"]] == [ids[0]]
    assert client.get("/api/notes?page=9").json["items"] == []


def test_list_defaults(client):
    create(client)
    page = client.get("/api/notes").json
    assert (page["page"], page["per_page"], page["total"]) == (1, 20, 1)


def test_patch_changes_only_the_given_fields(client):
    note = create(client, title="Old", body="keep me")
    response = client.patch(f"/api/notes/{note['id']}", json={"title": "New"})
    assert response.status_code == 200
    assert response.json["title"] == "New"
    assert response.json["body"] == "keep me"
    assert client.get(f"/api/notes/{note['id']}").json["title"] == "New"


def test_put_replaces_the_note(client):
    note = create(client, title="Old", body="gone")
    response = client.put(f"/api/notes/{note['id']}", json={"title": "New"})
    assert response.status_code == 200
    assert (response.json["title"], response.json["body"]) == ("New", "")


def test_put_accepts_a_note_as_returned_by_get(client):
    note = create(client, body="round trip")
    response = client.put(f"/api/notes/{note['id']}", json={**note, "title": "B"})
    assert response.status_code == 200
    assert response.json["title"] == "B"


def test_delete_removes_the_note(client):
    note = create(client)
    response = client.delete(f"/api/notes/{note['id']}")
    assert response.status_code == 204
    assert response.data == b""
    assert_error(client.get(f"/api/notes/{note['id']}"), 404)


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
@pytest.mark.parametrize("note_id", ["999999", "99999999999999999999", "abc", "-1"])
def test_unknown_id_is_404(client, method, note_id):
    response = getattr(client, method)(f"/api/notes/{note_id}", json={"title": "x"})
    assert_error(response, 404)


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/api/notes")
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_malformed_json_is_400(client, method):
    note = create(client)
    url = "/api/notes" if method == "post" else f"/api/notes/{note['id']}"
    response = getattr(client, method)(
        url, data='{"title": "unterminated', content_type="application/json"
    )
    assert_error(response, 400)


def test_invalid_utf8_is_400(client):
    response = client.post(
        "/api/notes", data=b'{"title": "\xff"}', content_type="application/json"
    )
    assert_error(response, 400)


@pytest.mark.parametrize("body", ["[]", '"a string"', "3", "null"])
def test_json_that_is_not_an_object_is_400(client, body):
    response = client.post("/api/notes", data=body, content_type="application/json")
    assert_error(response, 400)


def test_not_json_is_415(client):
    response = client.post("/api/notes", data="title=x", content_type="text/plain")
    assert_error(response, 415)
    assert_error(client.post("/api/notes", data="title=x"), 415)


def test_body_over_64_kib_is_413(client):
    payload = json.dumps({"title": "big", "body": "x" * (64 * 1024)})
    response = client.post("/api/notes", data=payload, content_type="application/json")
    assert_error(response, 413)
    assert client.get("/api/notes").json["total"] == 0


BAD_NOTES = {
    "missing-title": ({"body": "no title"}, "title"),
    "empty-title": ({"title": ""}, "title"),
    "blank-title": ({"title": "   "}, "title"),
    "long-title": ({"title": "x" * 201}, "title"),
    "title-number": ({"title": 5}, "title"),
    "title-null": ({"title": None}, "title"),
    "title-list": ({"title": ["a"]}, "title"),
    "title-bool": ({"title": True}, "title"),
    "body-number": ({"title": "ok", "body": 1}, "body"),
    "body-null": ({"title": "ok", "body": None}, "body"),
    "long-body": ({"title": "ok", "body": "x" * 10_001}, "body"),
    "nul-character": ({"title": "a\x00b"}, "title"),
    "unknown-field": ({"title": "ok", "colour": "red"}, "colour"),
}


@pytest.mark.parametrize(("payload", "field"), BAD_NOTES.values(), ids=BAD_NOTES)
def test_invalid_note_is_422_naming_the_field(client, payload, field):
    error = assert_error(client.post("/api/notes", json=payload), 422)
    assert field in error["details"]
    assert client.get("/api/notes").json["total"] == 0


@pytest.mark.parametrize(("payload", "field"), BAD_NOTES.values(), ids=BAD_NOTES)
def test_invalid_update_is_422_and_changes_nothing(client, payload, field):
    note = create(client, title="Keep", body="keep")
    for method in (client.put, client.patch):
        if method == client.patch and field == "title" and "title" not in payload:
            continue  # PATCH may leave the title out
        error = assert_error(method(f"/api/notes/{note['id']}", json=payload), 422)
        assert field in error["details"]
    assert client.get(f"/api/notes/{note['id']}").json == note


def test_longest_values_are_accepted(client):
    note = create(client, title="t" * 200, body="b" * 10_000)
    assert len(note["title"]) == 200


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=",
        "page=99999999999999999999",
        "per_page=0",
        "per_page=101",
        "per_page=x",
        "page=%C2%B2",
    ],
)
def test_bad_page_params_are_422(client, query):
    assert_error(client.get(f"/api/notes?{query}"), 422)
