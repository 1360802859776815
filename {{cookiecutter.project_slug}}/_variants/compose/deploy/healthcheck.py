"""The container health check: exit 0 when GET /healthz answers 200.

Docker runs it inside the web container (Dockerfile HEALTHCHECK). The request
carries the headers nginx sends, so the app's host and HTTPS checks pass.
"""

import os
import sys
import urllib.request


def main() -> int:
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",")]
    host = next((h.lstrip(".") for h in hosts if h and h != "*"), "localhost")
    request = urllib.request.Request(
        f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz",
        headers={"Host": host, "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 (http:// to loopback, built above)
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"healthz: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
