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
