"""The notes API: every operation, and a 4xx JSON error for every bad input."""

from datetime import datetime

import pytest


def create(client, **fields):
    response = client.post("/api/notes", json={"title": "A note", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["details"], dict)
    return body


def test_create_returns_the_note(client):
    response = client.post("/api/notes", json={"title": "Hello", "body": "one two"})
    assert response.status_code == 201
    note = response.json()
    assert note["title"] == "Hello"
    assert note["body"] == "one two"
    assert note["word_count"] is None
    assert datetime.fromisoformat(note["created_at"]).tzinfo is not None
    assert datetime.fromisoformat(note["updated_at"]).tzinfo is not None
    assert response.headers["location"].endswith(f"/api/notes/{note['id']}")


def test_body_defaults_to_empty(client):
    assert create(client)["body"] == ""


def test_read_returns_the_note(client):
    note = create(client, body="text")
    response = client.get(f"/api/notes/{note['id']}")
    assert response.status_code == 200
    assert response.json() == note


def test_put_replaces_the_note(client):
    note = create(client, body="old body")
    response = client.put(f"/api/notes/{note['id']}", json={"title": "New"})
    assert response.status_code == 200
    assert response.json()["title"] == "New"
    assert response.json()["body"] == ""
    assert client.get(f"/api/notes/{note['id']}").json()["title"] == "New"


def test_patch_changes_only_the_given_fields(client):
    note = create(client, body="kept")
    response = client.patch(f"/api/notes/{note['id']}", json={"title": "Renamed"})
    assert response.status_code == 200
    assert response.json()["title"] == "Renamed"
    assert response.json()["body"] == "kept"


def test_delete_removes_the_note(client):
    note = create(client)
    response = client.delete(f"/api/notes/{note['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(f"/api/notes/{note['id']}"), 404)


def test_list_is_paginated_newest_first(client):
    ids = [create(client, title=f"note {n}")["id"] for n in range(5)]
    first = client.get("/api/notes", params={"page": 1, "per_page": 2}).json()
    assert first["total"] == 5
    assert (first["page"], first["per_page"]) == (1, 2)
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    last = client.get("/api/notes", params={"page": 3, "per_page": 2}).json()
    assert [item["id"] for item in last["items"]] == ids[:1]
    beyond = client.get("/api/notes", params={"page": 9, "per_page": 2}).json()
    assert beyond["items"] == []


def test_list_defaults(client):
    body = client.get("/api/notes").json()
    assert (body["page"], body["per_page"], body["total"]) == (1, 20, 0)


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"page": "abc"},
        {"per_page": 0},
        {"per_page": 101},
        {"per_page": "x"},
    ],
)
def test_bad_page_parameters_are_422(client, params):
    assert_error(client.get("/api/notes", params=params), 422)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"title": None}, "title"),
        ({"title": ["a"]}, "title"),
        ({"title": "ok", "body": "x" * 10_001}, "body"),
        ({"title": "ok", "body": 3.5}, "body"),
    ],
    ids=["missing", "empty", "long", "int", "null", "list", "long-body", "float-body"],
)
def test_invalid_fields_are_422(client, payload, field):
    body = assert_error(client.post("/api/notes", json=payload), 422)
    assert any(field in key for key in body["details"])


def test_limits_are_inclusive(client):
    note = create(client, title="x" * 200, body="y" * 10_000)
    assert len(note["title"]) == 200


@pytest.mark.parametrize("method", ["put", "patch"])
def test_updates_are_validated(client, method):
    note = create(client)
    response = getattr(client, method)(f"/api/notes/{note['id']}", json={"title": ""})
    assert_error(response, 422)


def test_patch_refuses_null(client):
    note = create(client)
    response = client.patch(f"/api/notes/{note['id']}", json={"title": None})
    assert_error(response, 422)


@pytest.mark.parametrize("body", [b"{", b'{"title": "x",}', b"not json"])
def test_malformed_json_is_400(client, body):
    response = client.post(
        "/api/notes", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"a string"', b"42", b"null"])
def test_json_that_is_not_an_object_is_400(client, body):
    response = client.post(
        "/api/notes", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


def test_not_json_is_415(client):
    response = client.post(
        "/api/notes", content=b"title=x", headers={"Content-Type": "text/plain"}
    )
    assert_error(response, 415)


def test_form_data_is_415(client):
    assert_error(client.post("/api/notes", data={"title": "x"}), 415)


def test_oversized_body_is_413(client):
    payload = b'{"title": "big", "body": "' + b"x" * (64 * 1024) + b'"}'
    response = client.post(
        "/api/notes", content=payload, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413)
    assert client.get("/api/notes").json()["total"] == 0


def test_oversized_streamed_body_is_413(client):
    def chunks():
        yield b'{"title": "big", "body": "'
        for _ in range(65):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/api/notes", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413)
    assert client.get("/api/notes").json()["total"] == 0


@pytest.mark.parametrize("note_id", ["999999", "0", "-1", "abc", "1.5", "9" * 30])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_unknown_ids_are_404(client, method, note_id):
    kwargs = {"json": {"title": "x"}} if method in {"put", "patch"} else {}
    response = getattr(client, method)(f"/api/notes/{note_id}", **kwargs)
    assert_error(response, 404)


def test_unknown_path_is_404(client):
    assert_error(client.get("/api/nothing-here"), 404)


def test_wrong_method_is_405(client):
    assert_error(client.delete("/api/notes"), 405)
    note = create(client)
    assert_error(client.post(f"/api/notes/{note['id']}", json={"title": "x"}), 405)


def test_a_failed_request_changes_nothing(client):
    note = create(client, body="safe")
    client.put(f"/api/notes/{note['id']}", json={"title": "x" * 500})
    assert client.get(f"/api/notes/{note['id']}").json() == note
