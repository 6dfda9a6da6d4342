"""The body of the IRB's sign-off of a dossier (documented in the OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers


class DossierSignoffSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"],
                                       help_text="approve or reject (reject needs a comment)")
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False,
                                     help_text="Your own password (the second signature component)")
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    sha256 = serializers.CharField(required=False, min_length=64, max_length=64,
                                   help_text="The dossier sha256 you reviewed; refused if it is "
                                             "not the dossier's")
    content_hash = serializers.CharField(required=False, min_length=64, max_length=64,
                                         help_text="The version content hash you reviewed; "
                                                   "refused if it is not the version's")
