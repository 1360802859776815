"""Concurrent writers through the real app: no "database is locked", nothing lost."""

from concurrent.futures import ThreadPoolExecutor

WRITERS = 8
NOTES_EACH = 25


def test_concurrent_writers_all_succeed(app):
    def write(writer: int) -> list[int]:
        client = app.test_client()
        statuses = []
        for n in range(NOTES_EACH):
            response = client.post("/api/notes", json={"title": f"{writer}-{n}"})
            statuses.append(response.status_code)
            if n % 5 == 0:
                client.patch(
                    f"/api/notes/{response.json['id']}", json={"body": "edited"}
                )
        return statuses

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(write, range(WRITERS)))

    assert all(status == 201 for statuses in results for status in statuses)
    listing = app.test_client().get("/api/notes?per_page=1").json
    assert listing["total"] == WRITERS * NOTES_EACH
