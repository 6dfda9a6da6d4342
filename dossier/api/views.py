"""The dossier API: request a version's dossier, list them, follow one, download its PDF,
and the IRB's signature of it."""

from __future__ import annotations

import hashlib

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.parsers import StrictJSONParser
from registry.selectors import version_get_for_user

from .. import selectors, services
from ..present import dossier_as_dict, dossier_signoffs_as_dict
from .serializers import DossierSignoffSerializer

DOSSIER = OpenApiResponse(description="the dossier: id, status, progress {done, total, step}, "
                                      "sha256, size, evidence_at, chain_head {seq, hash}, "
                                      "gaps (question numbers), error, links {self, pdf, evidence, "
                                      "signoffs}")


def _attachment(data: bytes, dossier, what: str, content_type: str, ext: str) -> HttpResponse:
    """A download named after the model, version and dossier, with the sha256 of the bytes
    sent (``X-Content-SHA256``) so the client checks what it saved."""
    response = HttpResponse(data, content_type=content_type)
    version = dossier.version
    response["Content-Disposition"] = (
        f'attachment; filename="{version.model.name}-v{version.number}-{what}-'
        f'{dossier.sha256[:12]}.{ext}"')
    response["X-Content-SHA256"] = hashlib.sha256(data).hexdigest()
    return response


class VersionDossiersView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="the version's dossiers, "
                                                   "newest first"),
                              **error_responses(401, 403, 404)},
                   summary="A version's compliance dossiers (view_audit or generate_dossier)")
    def get(self, request, model, version):
        obj = version_get_for_user(user=request.user, model_name=model, number=version)
        rows = selectors.dossiers_for_version(user=request.user, version=obj)
        return Response({"results": [dossier_as_dict(d) for d in rows]})

    @extend_schema(request=None,
                   responses={202: DOSSIER, **error_responses(401, 403, 404)},
                   summary="Generate a compliance dossier (background; generate_dossier)")
    def post(self, request, model, version):
        obj = version_get_for_user(user=request.user, model_name=model, number=version)
        dossier = services.dossier_request(user=request.user, version=obj)
        body = dossier_as_dict(dossier)
        return Response(body, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": body["links"]["self"]})


class DossierView(AttestAPIView):
    @extend_schema(responses={200: DOSSIER, **error_responses(401, 404)},
                   summary="A compliance dossier's status, progress and sha256")
    def get(self, request, dossier_id):
        dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
        return Response(dossier_as_dict(dossier))


class DossierPdfView(AttestAPIView):
    @extend_schema(responses={(200, "application/pdf"): OpenApiResponse(
                                  description="the PDF, its sha256 verified before it is sent"),
                              **error_responses(401, 404, 409)},
                   summary="Download a completed dossier (an audit event)")
    def get(self, request, dossier_id):
        dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
        data = services.dossier_download(user=request.user, dossier=dossier)
        return _attachment(data, dossier, "dossier", "application/pdf", "pdf")


class DossierEvidenceView(AttestAPIView):
    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(
                                  description="the evidence package: the PDF, model card, "
                                              "runbook, sign-off manifest, the version's audit "
                                              "export up to the chain head, and manifest.json "
                                              "(sha256 and size of every file); check it "
                                              "offline with `attest dossier verify`"),
                              **error_responses(401, 404, 409)},
                   summary="Download a completed dossier's evidence package (an audit event)")
    def get(self, request, dossier_id):
        dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
        data = services.dossier_evidence_download(user=request.user, dossier=dossier)
        return _attachment(data, dossier, "evidence", "application/zip", "zip")


SIGNOFFS = OpenApiResponse(description="the dossier's id, sha256, the version's content hash "
                                       "and the signatures covering the dossier (meaning, "
                                       "status, signer, printed_name, role, signed_at, "
                                       "content_hash, document {type, ref, sha256, url})")


class DossierSignoffView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(responses={200: SIGNOFFS, **error_responses(401, 404)},
                   summary="The signatures covering a compliance dossier")
    def get(self, request, dossier_id):
        dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
        return Response(dossier_signoffs_as_dict(dossier))

    @extend_schema(request=DossierSignoffSerializer,
                   responses={201: SIGNOFFS, **error_responses(400, 401, 403, 404, 409, 429)},
                   summary="The IRB signs a completed dossier (irb_dossier_review); re-enter "
                           "your password. It does not approve the release.")
    def post(self, request, dossier_id):
        dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
        body = DossierSignoffSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.dossier_review_sign(user=request.user, dossier=dossier, **body.validated_data)
        return Response(dossier_signoffs_as_dict(dossier), status=status.HTTP_201_CREATED)
