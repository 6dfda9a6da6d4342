from __future__ import annotations

from django.core.management import call_command


def test_the_openapi_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/models/{model}/versions/", "/api/v1/datasets/", "/api/v1/auth/tokens/",
                 "/api/v1/audit/events/", "/api/v1/audit/verify/", "/api/v1/audit/export/"):
        assert path in text
    assert "apiToken" in text


def test_the_served_schema_answers_json_when_asked(personas):
    import json

    import yaml
    from django.test import Client

    client = Client()
    client.force_login(personas.clinician)
    as_json = client.get("/api/schema/?format=json")
    assert as_json.status_code == 200 and as_json["Content-Type"].startswith("application/json")
    document = json.loads(as_json.content)
    assert "/api/v1/reviews/{item_id}/" in document["paths"]
    decision = document["paths"]["/api/v1/reviews/{item_id}/decision/"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "409"} <= set(decision)
    as_yaml = client.get("/api/schema/")
    assert as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(as_yaml.content)["paths"].keys() == document["paths"].keys()
    assert client.get("/api/schema/?format=yaml")["Content-Type"].startswith(
        "application/vnd.oai.openapi")
    bad = client.get("/api/schema/?format=xml")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "format"
