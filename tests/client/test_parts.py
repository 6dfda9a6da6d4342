"""The client's parts that need no server: config, uploads, links, rows, metrics, pickles."""

from __future__ import annotations

import email.parser
import io
import os
import stat
import tempfile

import numpy as np
import pytest
from attest_client import config, errors
from attest_client.artifacts import detect_pickle, predict_rows, skops_serialize
from attest_client.http import Client, Multipart
from attest_client.metrics import compute_metrics
from attest_client.progress import TextBar
from attest_client.reproducibility import environment_record, reference_rows

from ..artifacts import (
    FEATURES_SMALL,
    breast_cancer_frame,
    joblib_bytes,
    logistic_model,
    pickle_bytes,
    skops_bytes,
    training_csv,
)


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    for var in ("ATTEST_TOKEN", "ATTEST_URL"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "attest" / "config.json"
    monkeypatch.setenv("ATTEST_CONFIG", str(path))
    return path


def test_the_token_file_is_private_and_the_environment_wins(config_file, monkeypatch):
    config.save(config.Settings(url="https://a.example", token="att_x_y", username="jo"))
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600
    assert config.load().token == "att_x_y" and config.load().source == str(config_file)
    monkeypatch.setenv("ATTEST_TOKEN", "att_env_token")
    monkeypatch.setenv("ATTEST_URL", "https://b.example/")
    loaded = config.load()
    assert (loaded.token, loaded.url, loaded.source) == ("att_env_token", "https://b.example",
                                                         "environment")


def test_a_readable_config_file_is_warned_about(config_file, capsys):
    config.save(config.Settings(url="https://a.example", token="att_x_y"))
    os.chmod(config_file, 0o644)
    config.load()
    assert "readable by other users" in capsys.readouterr().err


def test_a_stored_token_is_never_sent_to_another_server(config_file):
    config.save(config.Settings(url="https://a.example", token="att_x_y"))
    assert Client().token == "att_x_y"
    other = Client(url="https://evil.example")
    assert other.token is None
    with pytest.raises(errors.AuthError, match="not logged in to https://evil.example"):
        other.request("GET", "/api/v1/models/")


def test_links_from_the_server_lead_back_to_it():
    client = Client(url="https://attest.example/prefix", token="t", settings=config.Settings())
    assert client.absolute("/api/v1/x/") == "https://attest.example/prefix/api/v1/x/"
    assert client.absolute("http://internal:8000/prefix/api/v1/batches/1/results/?a=1") == \
        "https://attest.example/prefix/api/v1/batches/1/results/?a=1"
    assert client.absolute("https://elsewhere.example/steal/") == \
        "https://attest.example/steal/"


def test_urls_must_be_http():
    with pytest.raises(errors.UsageError, match="not a server URL"):
        config.normalize_url("attest.example")


def test_a_multipart_body_streams_with_its_length_and_progress(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(training_csv())
    seen = []
    body = Multipart({"name": "cohort", "version": "ü1"}, {"file": ("train.csv", path, "text/csv")},
                     on_progress=seen.append)
    data = b"".join(iter(lambda: body.read(8192), b""))
    assert len(data) == len(body) == sum(seen)
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + data)
    parts = {p.get_param("name", header="content-disposition"): p for p in message.get_payload()}
    assert parts["version"].get_payload(decode=True).decode() == "ü1"
    assert parts["file"].get_payload(decode=True) == training_csv()
    assert parts["file"].get_filename() == "train.csv"


def test_the_text_bar_draws_and_finishes(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    bar = TextBar(2 * 1024 * 1024, "Uploading", "B")
    bar.update(1024 * 1024)
    bar.close()
    assert out.getvalue().endswith("\n") and "50%" in out.getvalue() and "/2.0 MB" in out.getvalue()


def test_reference_rows_are_synthetic_typed_and_repeatable():
    from profiling import profile_file

    frame = breast_cancer_frame().assign(smoker=lambda f: f.index % 3 == 0,
                                         count=lambda f: f.index % 7, site="north")
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        frame.to_csv(handle.name, index=False)
        profile = profile_file(handle.name).profile
    features = [*FEATURES_SMALL, "smoker", "count", "site"]
    rows = reference_rows(features, profile)
    assert rows == reference_rows(features, profile) and len(rows) == 8
    assert all(isinstance(r["mean radius"], float) and isinstance(r["count"], int)
               and isinstance(r["smoker"], bool) and r["site"] == "north" for r in rows)
    real = {tuple(row) for row in frame[FEATURES_SMALL].itertuples(index=False)}
    assert not any(tuple(r[f] for f in FEATURES_SMALL) in real for r in rows[1:])


def test_rows_are_scored_as_the_server_feeds_models():
    model = logistic_model()
    rows = breast_cancer_frame()[FEATURES_SMALL].iloc[:3].to_dict("records")
    expected = model.predict_proba(breast_cancer_frame()[FEATURES_SMALL].iloc[:3])
    assert np.allclose(predict_rows(model, rows, FEATURES_SMALL), expected)


def test_pickles_are_recognised_in_every_wrapping():
    assert detect_pickle(pickle_bytes(protocol=4)) == "a Python pickle"
    assert detect_pickle(pickle_bytes(protocol=0)) == "a Python pickle"
    assert "compressed pickle" in detect_pickle(joblib_bytes())
    assert detect_pickle(skops_bytes(logistic_model())) is None
    assert detect_pickle(b"\x08\x07onnx graph") is None


def test_skops_lists_the_types_it_needs():
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = breast_cancer_frame()
    model = HistGradientBoostingClassifier(max_iter=3).fit(frame[FEATURES_SMALL],
                                                           frame["diagnosis"])
    serialized = skops_serialize(model)
    assert serialized.trusted_types and all("." in t for t in serialized.trusted_types)
    assert skops_serialize(logistic_model()).trusted_types == []


def test_metrics_overall_and_per_subgroup():
    frame = breast_cancer_frame().assign(site=lambda f: np.where(f.index % 2, "a", "b"))
    metrics = compute_metrics(logistic_model(), frame[FEATURES_SMALL], frame["diagnosis"],
                              subgroups=frame[["site"]], positive_label="malignant")
    overall = metrics["overall"]
    assert overall["n"] == len(frame) and 0.8 < overall["auc"] <= 1
    assert {"sensitivity", "specificity", "ppv", "npv", "brier", "prevalence"} <= set(overall)
    assert [g["name"] for g in metrics["subgroups"]] == ["site=a", "site=b"]
    assert sum(g["n"] for g in metrics["subgroups"]) == len(frame)


def test_the_environment_record_names_python_and_packages():
    record = environment_record()
    assert record["python"].count(".") == 2
    assert record["packages"]["numpy"] == np.__version__


def test_dossier_get_follows_the_spec_paths_when_a_server_offers_them(tmp_path, monkeypatch,
                                                                      config_file):
    """The dossier endpoints do not exist on this server yet (SPEC: POST …/dossiers/, GET
    /api/v1/dossiers/{id}/): the client's half, against a server that answers as SPEC says."""
    import hashlib

    from attest_client import cli

    pdf = b"%PDF-1.7 dossier"
    calls = []
    states = iter([{"id": 7, "status": "running"},
                   {"id": 7, "status": "completed", "sha256": hashlib.sha256(pdf).hexdigest(),
                    "links": {"pdf": "http://internal/api/v1/dossiers/7/pdf/"}}])

    def fake_request(self, method, path, **kwargs):
        calls.append((method, self.absolute(path)))

        class Response:
            status_code, headers, content = 200, {"Content-Length": str(len(pdf))}, b"x"

            def json(self):
                if path == "/api/schema/":
                    return {"paths": {"/api/v1/models/{model}/versions/{version}/dossiers/": {}}}
                if method == "POST":
                    return {"id": 7, "status": "queued"}
                return next(states)

            def iter_content(self, size):
                yield pdf

            text = '{"paths": {"/api/v1/models/{model}/versions/{version}/dossiers/": {}}}'

        return Response()

    monkeypatch.setattr(Client, "request", fake_request)
    monkeypatch.setattr("time.sleep", lambda s: None)
    config.save(config.Settings(url="https://attest.example", token="att_x_y"))
    target = tmp_path / "d.pdf"
    assert cli.main(["dossier", "get", "m", "1", "-o", str(target)]) == 0
    assert target.read_bytes() == pdf
    assert ("POST", "https://attest.example/api/v1/models/m/versions/1/dossiers/") in calls
    assert ("GET", "https://attest.example/api/v1/dossiers/7/pdf/") in calls
