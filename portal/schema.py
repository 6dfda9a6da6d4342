"""The OpenAPI schema: its view, and the description of the personal-token authentication."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView

from core.errors import ValidationFailed


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "att_<prefix>_<secret>",
                "description": "Personal API token from POST /api/v1/auth/tokens/."}


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema at /api/schema/: YAML by default (or by Accept), JSON with
    ``?format=json``. DRF's own ``?format=`` is turned off project-wide (the audit export
    uses the name for csv/json), so drf-spectacular's documented switch answered YAML."""

    FORMATS = {"json": "application/json", "yaml": "application/vnd.oai.openapi"}

    def perform_content_negotiation(self, request, force=False):
        wanted = request.query_params.get("format")
        if wanted is None:
            return super().perform_content_negotiation(request, force)
        media_type = self.FORMATS.get(wanted)
        if media_type is None:
            if force:  # rendering the error itself: as JSON
                media_type = self.FORMATS["json"]
            else:
                raise ValidationFailed("format must be json or yaml.", field="format")
        renderer = next(r for r in self.get_renderers() if r.media_type == media_type)
        return renderer, renderer.media_type
