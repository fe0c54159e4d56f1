"""Concurrent staff on a running demo: how many users the embedded SQLite serves (docs/reliability.md).

    python -m bench.demo_load --url http://127.0.0.1:5000 --users 18 --views 60

Each simulated member of staff signs in (the demo logins of the first practice, round robin) and
opens ``--views`` pages one after another — the dashboard, patients' pages with callrec's panel,
complaints, the calls list — all at once with the others. Every page with a panel writes audit
events, so the users contend for SQLite's single write lock. Prints the answers by status, the 5xx
count and the p50/p95 latency; exits non-zero if any request got a 5xx.
"""
import argparse
import http.cookiejar
import random
import re
import statistics
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

LOGINS = ["owner", "manager", "handler", "trainer", "reception", "dpo"]
PAGES = (["/"] + [f"/patients/pat-{n:04d}" for n in range(1, 35)] + [f"/complaints/cmp-{n:03d}" for n in range(1, 7)]
         + ["/complaints"])
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
RECORDING_LINK = re.compile(r'href="(/callrec/recordings/[A-Za-z0-9_-]{8,64})"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def user_session(base, username, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    page = opener.open(base + "/login", timeout=60).read().decode()
    token = CSRF.search(page).group(1)
    data = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token}).encode()
    try:
        opener.open(base + "/login", data=data, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code != 302:
            raise RuntimeError(f"{username} could not sign in: {error.code}") from None
    return opener


def recording_pages(opener, base):
    """Links to recording pages found on the patients' pages (each view is an audited decision)."""
    links = set()
    for path in PAGES:
        if path.startswith("/patients/"):
            try:
                links.update(RECORDING_LINK.findall(opener.open(base + path, timeout=60).read().decode()))
            except urllib.error.HTTPError:
                continue
    return sorted(links)


def run(base, users, views, password="demo", seed=1):
    statuses, latencies, lock = {}, [], threading.Lock()
    openers = [user_session(base, LOGINS[n % len(LOGINS)], password) for n in range(users)]
    pages = PAGES + recording_pages(openers[0], base)  # the owner sees every call's page
    start = threading.Barrier(users)

    def browse(opener, rng):
        start.wait()
        for _ in range(views):
            path = rng.choice(pages)
            began = time.perf_counter()
            try:
                with opener.open(base + path, timeout=120) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                error.read()
                status = error.code
            elapsed = time.perf_counter() - began
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(elapsed)

    threads = [threading.Thread(target=browse, args=(opener, random.Random(seed + n))) for n, opener in enumerate(openers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    latencies.sort()
    return {"users": users, "pages": len(pages), "requests": len(latencies), "statuses": dict(sorted(statuses.items())),
            "5xx": sum(count for status, count in statuses.items() if status >= 500),
            "p50_ms": round(1000 * statistics.median(latencies)),
            "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))]),
            "requests_per_s": round(len(latencies) / wall, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--users", type=int, nargs="+", default=[18])
    parser.add_argument("--views", type=int, default=60)
    options = parser.parse_args(argv)
    failed = False
    for users in options.users:
        result = run(options.url.rstrip("/"), users, options.views)
        print(result, flush=True)
        failed = failed or result["5xx"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
