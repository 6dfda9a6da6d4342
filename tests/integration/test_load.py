"""The predict endpoint under concurrent load, served the way production serves it.

gunicorn starts as the image starts it (``gunicorn -c deploy/gunicorn.conf.py``: 2
workers x 4 gthread threads), against this test's PostgreSQL database; 8 clients with keep-alive connections send 1,000
predictions each. Afterwards the log must hold exactly one row per 200 answer,
none lost and none twice, and both the audit chain and the prediction log (once
anchored) must verify. Speed is measured in bench/predict.py, not here; the
duration is printed only so a slow run is visible.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from audits.chain import verify_chain
from inference.log import anchor_predictions, verify_prediction_log
from inference.models import Prediction, ReviewItem
from portal.tokens import api_token_create

from ..inference.helpers import released_version, typical_input
from ..personas import make_personas

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8
REQUESTS_PER_CLIENT = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(tmp_path: Path) -> dict[str, str]:
    """The test process's settings for the server: this test database and artifact store."""
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
                           f"{db['NAME']}",
           "ATTEST_DATA_DIR": str(tmp_path / "data"), "ATTEST_ALLOWED_HOSTS": "127.0.0.1",
           "ATTEST_LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"}
    artifacts = settings.STORAGES["artifacts"]
    if artifacts["BACKEND"].endswith("S3Storage"):
        env["ATTEST_S3_PREFIX"] = artifacts["OPTIONS"]["location"]  # set per test (conftest)
    else:
        env["ATTEST_ARTIFACT_DIR"] = artifacts["OPTIONS"]["location"]
    return env


def _start_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with open(log_path, "wb") as log:  # access log: to a file, never a pipe that could fill
        server = subprocess.Popen(
            [gunicorn, "-c", str(ROOT / "deploy/gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
             "--worker-tmp-dir", str(log_path.parent)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, log_path.read_text(errors="replace")[-2000:]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/")
            conn.getresponse().read()
            conn.close()
            return server, port
        except OSError:
            time.sleep(0.2)
    server.terminate()
    pytest.fail("gunicorn did not answer within 60 s: "
                + log_path.read_text(errors="replace")[-2000:])


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _bodies(version) -> list[bytes]:
    """Typical rows with small variations; every 13th out of range (routed to review)."""
    base = typical_input(version)
    names = list(base)
    bodies = []
    for i in range(97):
        row = {name: value * (1 + ((i * 7 + j) % 11 - 5) / 200)
               for j, (name, value) in enumerate(base.items())}
        if i % 13 == 0:
            row[names[0]] = 1000.0
        bodies.append(json.dumps({"inputs": row}).encode())
    return bodies


def test_eight_clients_lose_and_duplicate_no_prediction(transactional_db, tmp_path):
    personas = make_personas()
    version = released_version(personas, ood_policy="review")
    _row, token = api_token_create(user=personas.clinician, name="load test")
    bodies = _bodies(version)
    path = f"/api/v1/models/{personas.model.name}/predict/"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers: list[list[tuple[int, dict | None]]] = [[] for _ in range(CLIENTS)]
    failures: list[BaseException] = []
    log_path = tmp_path / "gunicorn.log"
    server, port = _start_server(_server_env(tmp_path), log_path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", path, body=bodies[1], headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        refused = json.loads(response.read())
        assert response.status == 401, refused
        assert refused["errors"][0]["code"] == "not_authenticated"
        # ... and the connection stays usable after refusals
        conn.request("POST", path, body=bodies[1], headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        probe = (response.status, json.loads(response.read()))
        conn.close()
        barrier = threading.Barrier(CLIENTS)

        def client(index: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                barrier.wait()
                for i in range(REQUESTS_PER_CLIENT):
                    conn.request("POST", path, body=bodies[(index * 31 + i) % len(bodies)],
                                 headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    body = json.loads(data) if data.startswith(b"{") else None
                    answers[index].append((response.status, body))
                    if response.will_close:  # never expected; reconnect rather than fail
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
            finally:
                conn.close()

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    finally:
        _stop(server)
    assert not failures, failures
    flat = [a for per_client in answers for a in per_client]
    statuses = Counter(status for status, _body in flat)
    print(f"\ngunicorn: {len(flat)} requests from {CLIENTS} clients in {elapsed:.1f} s "
          f"({len(flat) / elapsed:.0f} req/s): {dict(statuses)}")
    assert len(flat) == CLIENTS * REQUESTS_PER_CLIENT
    assert not [s for s in statuses if s >= 500], log_path.read_text(errors="replace")[-3000:]
    assert statuses == {200: CLIENTS * REQUESTS_PER_CLIENT}, statuses
    flat.append(probe)  # the keep-alive check's prediction, logged like the others
    # one access line per request (gunicorn's own), each with the request id the app
    # answered with
    access = [line for line in log_path.read_text(errors="replace").splitlines()
              if f'"POST {path}' in line]
    assert len(access) == len(flat) + 1, access[:3]
    assert all(re.search(r" rid=[0-9a-f]{32} [0-9]+ms$", line) for line in access), [
        line for line in access if not re.search(r" rid=[0-9a-f]{32} ", line)][:3]
    ids = [body["id"] for _status, body in flat]
    assert len(set(ids)) == len(ids), "the same prediction id was answered twice"
    logged = set(map(str, Prediction.objects.values_list("public_id", flat=True)))
    assert Prediction.objects.count() == len(ids) and logged == set(ids)
    routed = sum(1 for _status, body in flat if body["routing"] == "review")
    assert routed > 0 and ReviewItem.objects.count() == routed
    assert set(Prediction.objects.values_list("requester_id", flat=True)) == {
        personas.clinician.pk}
    chain = verify_chain()
    assert chain.ok, chain
    anchor = anchor_predictions(settle=timedelta(0))
    assert anchor is not None and anchor.count == len(ids)
    verdict = verify_prediction_log()
    assert verdict.ok, verdict.first_problem
    assert verdict.checked == verdict.anchored == len(ids) and verdict.unanchored == 0
