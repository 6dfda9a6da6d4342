"""Personal API tokens. The secret is shown once; only its sha256 is stored."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The public part of "att_<prefix>_<secret>", used to find the row quickly.
    prefix = models.CharField(max_length=12, unique=True)
    # sha256 of the whole token: the token carries 256 random bits, so a fast hash
    # is enough (no dictionary to attack), and lookups stay cheap per request.
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (att_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
