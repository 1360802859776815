"""The notes API: every operation, and every bad input gets a 4xx JSON error."""

import pytest

from {{ cookiecutter.project_slug }}.models import Note

pytestmark = pytest.mark.django_db


def make(api, **fields):
    response = api.post("/api/notes", {"title": "A note", **fields})
    assert response.status_code == 201, response.content
    return response.json()


def assert_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str)
    assert isinstance(body["details"], dict)
    return body


def test_create_returns_the_note(api):
    note = make(api, body="three small words")
    assert note["title"] == "A note"
    assert note["body"] == "three small words"
    assert note["word_count"] is None
    assert set(note) == {
        "id",
        "title",
        "body",
        "word_count",
        "created_at",
        "updated_at",
    }
    assert Note.objects.get(pk=note["id"]).body == "three small words"


def test_body_defaults_to_empty(api):
    assert make(api)["body"] == ""


def test_get_one(api):
    note = make(api)
    response = api.get(f"/api/notes/{note['id']}")
    assert response.status_code == 200
    assert response.json() == note


def test_list_is_paginated_newest_first(api):
    ids = [make(api, title=f"note {n}")["id"] for n in range(5)]
    response = api.get("/api/notes?page=1&per_page=2")
    assert response.status_code == 200
    body = response.json()
    assert [n["id"] for n in body["items"]] == ids[::-1][:2]
    assert (body["page"], body["per_page"], body["total"]) == (1, 2, 5)
    last = api.get("/api/notes?page=3&per_page=2").json()
    assert [n["id"] for n in last["items"]] == [ids[0]]


def test_list_defaults(api):
    body = api.get("/api/notes").json()
    assert body == {"items": [], "page": 1, "per_page": 20, "total": 0}


def test_page_past_the_end_is_empty(api):
    make(api)
    body = api.get(f"/api/notes?page={10**30}").json()
    assert body["items"] == []
    assert body["total"] == 1


def test_patch_changes_only_the_given_fields(api):
    note = make(api, body="old body")
    response = api.patch(f"/api/notes/{note['id']}", {"title": "New"})
    assert response.status_code == 200
    assert response.json()["title"] == "New"
    assert response.json()["body"] == "old body"


def test_put_replaces_the_note(api):
    note = make(api, body="old body")
    response = api.put(f"/api/notes/{note['id']}", {"title": "Replaced"})
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["body"]) == ("Replaced", "")


def test_delete(api):
    note = make(api)
    response = api.delete(f"/api/notes/{note['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Note.objects.filter(pk=note["id"]).exists()
    assert_error(api.get(f"/api/notes/{note['id']}"), 404)


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
@pytest.mark.parametrize("note_id", ["12345", str(2**63), str(10**40)])
def test_unknown_id_is_404(api, method, note_id):
    assert_error(
        api.request(method.upper(), f"/api/notes/{note_id}", {"title": "x"}), 404
    )


@pytest.mark.parametrize("path", ["/nowhere", "/api/notes/abc", "/api/notes/1/extra"])
def test_unknown_path_is_404(api, path):
    assert_error(api.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/notes"), ("PUT", "/api/notes"), ("POST", "/api/notes/1")],
)
def test_wrong_method_is_405(api, method, path):
    make(api)
    response = api.request(method, path, {"title": "x"})
    assert_error(response, 405)
    assert response["Allow"]


@pytest.mark.parametrize("body", ["{", "not json", '{"title": "x",}', "\xff"])
def test_malformed_json_is_400(api, body):
    assert_error(api.post("/api/notes", body), 400)


@pytest.mark.parametrize("body", ["[]", '"title"', "42", "null"])
def test_json_that_is_not_an_object_is_400(api, body):
    assert_error(api.post("/api/notes", body), 400)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded"]
)
def test_body_that_is_not_json_is_415(api, content_type):
    assert_error(api.post("/api/notes", "title=x", content_type=content_type), 415)


def test_body_over_64_kib_is_413(api):
    response = api.post("/api/notes", {"title": "big", "body": "x" * 70000})
    assert_error(response, 413)
    assert not Note.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"title": None}, "title"),
        ({"title": ["a"]}, "title"),
        ({"title": "ok", "body": "x" * 10001}, "body"),
        ({"title": "ok", "body": 7}, "body"),
        ({"title": "ok", "body": None}, "body"),
    ],
)
def test_invalid_note_is_422(api, fields, field):
    body = assert_error(api.post("/api/notes", fields), 422)
    assert field in body["details"]
    assert not Note.objects.exists()


def test_invalid_update_is_422_and_changes_nothing(api):
    note = make(api, body="kept")
    assert_error(api.patch(f"/api/notes/{note['id']}", {"title": ""}), 422)
    assert_error(api.put(f"/api/notes/{note['id']}", {"body": "no title"}), 422)
    assert Note.objects.get(pk=note["id"]).body == "kept"


def test_longest_fields_are_accepted(api):
    note = make(api, title="t" * 200, body="b" * 10000)
    assert len(note["body"]) == 10000


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=x",
        "per_page=0",
        "per_page=101",
        "per_page=",
        "page=1.5",
    ],
)
def test_bad_page_parameters_are_422(api, query):
    assert_error(api.get(f"/api/notes?{query}"), 422)
