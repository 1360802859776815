"""The app as bin/web serves it: behind a proxy, under concurrent writes."""

from concurrent.futures import ThreadPoolExecutor

import httpx2

PROXY_HEADERS = {
    "Host": "localhost",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9",
}


def test_the_app_sees_https_behind_the_proxy(server):
    response = httpx2.post(
        f"{server}/api/notes", json={"title": "proxied"}, headers=PROXY_HEADERS
    )
    assert response.status_code == 201
    assert response.headers["location"].startswith("https://localhost/api/notes/")


def test_concurrent_writers_all_succeed(server):
    writers, inserts = 8, 25

    def write(writer: int) -> list[int]:
        with httpx2.Client(base_url=server, timeout=30) as client:
            statuses = []
            for n in range(inserts):
                response = client.post(
                    "/api/notes", json={"title": f"writer {writer} note {n}"}
                )
                statuses.append(response.status_code)
            return statuses

    with ThreadPoolExecutor(writers) as pool:
        statuses = [s for result in pool.map(write, range(writers)) for s in result]
    assert statuses == [201] * writers * inserts
    titles = set()
    page = 1
    while True:
        body = httpx2.get(
            f"{server}/api/notes", params={"page": page, "per_page": 100}
        ).json()
        titles |= {item["title"] for item in body["items"]}
        if not body["items"]:
            break
        page += 1
    expected = {f"writer {w} note {n}" for w in range(writers) for n in range(inserts)}
    assert expected <= titles
