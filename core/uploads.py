"""Refuse oversized uploads while they stream, before they reach a temp file."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class UploadTooLarge(StopUpload):
    pass


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts bytes of every file in the request and stops past ATTEST_MAX_UPLOAD_BYTES.

    Django's own limits cover form fields, not files. Raising here aborts the
    parse; the handler marks the request so views answer 413 with a clear
    message, and Django deletes the partial temp file.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.total = 0
        self.limit = settings.ATTEST_MAX_UPLOAD_BYTES

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + 1024 * 1024 and self.request is not None:
            self.request.upload_too_large = True
        return None

    def receive_data_chunk(self, raw_data, start):
        self.total += len(raw_data)
        if self.total > self.limit:
            if self.request is not None:
                self.request.upload_too_large = True
            raise UploadTooLarge(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


def body_limit_message() -> str:
    """Why a request body past DATA_UPLOAD_MAX_MEMORY_SIZE is refused (a multipart
    upload's files count against ATTEST_MAX_UPLOAD_BYTES instead, its fields against it)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    mb, rest = divmod(limit, 1024 * 1024)
    size = f"{mb} MB" if mb and not rest else f"{limit} bytes"
    return f"The request body is larger than this server's limit of {size}."


def upload_limit_message() -> str:
    mb = settings.ATTEST_MAX_UPLOAD_BYTES // (1024 * 1024)
    return f"The upload is larger than this server's limit of {mb} MB (ATTEST_MAX_UPLOAD_MB)."
