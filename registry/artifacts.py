"""Inspecting uploaded artifacts before anything is stored.

Attest never unpickles. An upload is accepted only as a skops archive (loaded
later with exactly the trusted types recorded here) or an ONNX graph. Pickle
and joblib content is recognised by its bytes, whatever the file is called,
and refused with instructions to convert.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from itertools import islice

from django.conf import settings

from core.errors import ErrorItem, ValidationFailed

from .models import ArtifactFormat
from .trust import HOW_TO_ASK, forbidden_reason, untrusted_refusal

CONVERT_HELP = (
    "Pickle and joblib files can run arbitrary code when loaded, so Attest refuses them. "
    "Convert the fitted estimator instead: with skops — `import skops.io as sio; "
    "sio.dump(model, 'model.skops')` — or to ONNX with skl2onnx — `from skl2onnx import "
    "to_onnx; open('model.onnx','wb').write(to_onnx(model, X[:1].astype('float32'))"
    ".SerializeToString())` — and upload that file."
)

_PICKLE_FIRST_OPS = {"PROTO", "FRAME", "MARK", "GLOBAL", "STACK_GLOBAL", "EMPTY_DICT",
                     "EMPTY_LIST", "EMPTY_TUPLE", "INST", "OBJ", "SHORT_BINUNICODE"}


def _looks_like_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    # Protocol 0/1 pickles have no magic number: parse a few opcodes without
    # executing anything (pickletools only decodes) and see if they make sense.
    try:
        with warnings.catch_warnings():  # decoding junk as string opcodes warns; irrelevant
            warnings.simplefilter("ignore")
            ops = [op.name for op, _arg, _pos in islice(pickletools.genops(io.BytesIO(head)), 6)]
    except Exception:  # noqa: BLE001 - any decoding failure means "not a pickle"
        return False
    return len(ops) >= 3 and ops[0] in _PICKLE_FIRST_OPS


def _decompress_head(data: bytes) -> tuple[str, bytes] | None:
    """The first bytes inside a compressed container (joblib compresses pickles)."""
    try:
        if data[:2] == b"\x1f\x8b":
            return "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], 512)
        if data[:3] == b"BZh":
            return "bz2", bz2.BZ2Decompressor().decompress(data[:65536])[:512]
        if data[:6] == b"\xfd7zXZ\x00":
            return "xz", lzma.LZMADecompressor().decompress(data[:65536], 512)
        if data[:2] in (b"x\x9c", b"x\x01", b"x\xda", b"x^"):
            return "zlib", zlib.decompressobj().decompress(data[:65536], 512)
        if data[:4] == b"ZF0x":  # joblib's own zlib framing
            return "joblib-zlib", zlib.decompressobj().decompress(data[16:65536], 512)
        if data[:4] == b"\x04\x22\x4d\x18":
            return "lz4", b""
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError):
        return None
    return None


def detect_pickle(data: bytes) -> str | None:
    """Describe pickle-like content, or None. Never loads anything."""
    head = data[:4096]
    if _looks_like_pickle(head):
        return "a Python pickle"
    inner = _decompress_head(data)
    if inner is not None:
        kind, content = inner
        if not content or _looks_like_pickle(content):
            return f"a {kind}-compressed pickle (as joblib writes)"
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    if name.endswith((".pkl", ".pickle", ".joblib")) or name.endswith("/data.pkl"):
                        return f"a zip archive holding a pickle ({name}), such as torch.save writes"
        except zipfile.BadZipFile:
            return None
    return None


@dataclass
class ArtifactInfo:
    artifact_format: str
    untrusted_types: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def _refuse(message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, field="artifact")


def inspect_artifact(data: bytes, *, artifact_format: str,
                     allowed: frozenset[str]) -> ArtifactInfo:
    """Check an upload is what it claims and safe to load; raise ValidationFailed otherwise.

    1. Empty files and pickle/joblib content are refused first, by content.
    2. skops: the zip's members are checked against size and ratio limits from
       their headers before anything is decompressed, then for integrity; the
       archive must hold skops' schema.json, and every type skops does not trust
       by default must be on the administrators' allowlist ``allowed``
       (``registry.trust.trusted_type_names()``).
    3. onnx: the bytes must parse as an ONNX graph.
    """
    if not data:
        raise _refuse("The artifact file is empty.", "empty_file")
    pickled = detect_pickle(data)
    if pickled:
        raise _refuse(f"The artifact is {pickled}. {CONVERT_HELP}", "pickle_refused")
    if artifact_format == ArtifactFormat.SKOPS:
        return _inspect_skops(data, allowed)
    if artifact_format == ArtifactFormat.ONNX:
        return _inspect_onnx(data)
    raise ValidationFailed(f"Unknown artifact format {artifact_format!r}; use 'skops' or 'onnx'.",
                           code="unsupported_format", field="metadata.format")


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f} MB"


def check_zip_limits(archive: zipfile.ZipFile) -> None:
    """Refuse a zip whose members would expand past the limits, from the headers alone.

    Python's zipfile never yields more than a member's declared size (and fails
    its CRC if the data say otherwise), so checking the declared sizes bounds
    what any later read decompresses.
    """
    member_limit = settings.ATTEST_SKOPS_MAX_MEMBER_BYTES
    total_limit = settings.ATTEST_SKOPS_MAX_EXPANDED_BYTES
    schema_limit = settings.ATTEST_SKOPS_MAX_SCHEMA_BYTES
    ratio_limit = settings.ATTEST_SKOPS_MAX_RATIO
    members = archive.infolist()
    if len(members) > settings.ATTEST_SKOPS_MAX_MEMBERS:
        raise _refuse(f"The skops archive has {len(members):,} members; at most "
                      f"{settings.ATTEST_SKOPS_MAX_MEMBERS:,} are accepted.", "archive_too_large")
    total = 0
    for info in members:
        total += info.file_size
        if info.filename == "schema.json" and info.file_size > schema_limit:
            raise _refuse(f"The skops archive's schema.json expands to {_mb(info.file_size)}; "
                          f"at most {_mb(schema_limit)} is accepted.", "archive_too_large")
        if info.file_size > member_limit:
            raise _refuse(f"The skops archive's member {info.filename[:100]} expands to "
                          f"{_mb(info.file_size)}; at most {_mb(member_limit)} per member is "
                          "accepted.", "archive_too_large")
        # Ratio: only past 1 MB, where a bomb starts to cost (small arrays of zeros compress
        # very well and harmlessly).
        if info.file_size > 1024 * 1024 and info.file_size > ratio_limit * max(info.compress_size, 1):
            raise _refuse(f"The skops archive's member {info.filename[:100]} expands "
                          f"{info.file_size / max(info.compress_size, 1):,.0f} times (to "
                          f"{_mb(info.file_size)}); more than {ratio_limit} times is refused as "
                          "a decompression bomb.", "archive_too_large")
    if total > total_limit:
        raise _refuse(f"The skops archive expands to {_mb(total)} in all; at most "
                      f"{_mb(total_limit)} is accepted.", "archive_too_large")


def _inspect_skops(data: bytes, allowed: frozenset[str]) -> ArtifactInfo:
    import skops.io as sio

    if data[:4] != b"PK\x03\x04":
        raise _refuse("The artifact is not a skops file (a skops file is a zip archive). "
                      "Save the model with skops.io.dump(model, 'model.skops').", "not_skops")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip_limits(archive)
            broken = archive.testzip()
            names = set(archive.namelist())
    except ValidationFailed:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise _refuse(f"The skops archive is corrupt ({exc}).", "corrupt_file") from exc
    except Exception as exc:  # noqa: BLE001 - zlib/CRC errors come in several classes
        raise _refuse(f"The skops archive is corrupt ({exc.__class__.__name__}).",
                      "corrupt_file") from exc
    if broken is not None:
        raise _refuse(f"The skops archive is corrupt: member {broken} fails its checksum.",
                      "corrupt_file")
    if "schema.json" not in names:
        raise _refuse("The zip archive is not a skops file (no schema.json inside).", "not_skops")
    try:
        untrusted = sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - malformed schema.json in many ways
        raise _refuse(f"The skops file cannot be read ({exc.__class__.__name__}: {exc}).",
                      "corrupt_file") from exc
    forbidden = [t for t in untrusted if forbidden_reason(t)]
    if forbidden:
        raise ValidationFailed(
            items=[_refuse_item("The skops file refers to types that no model needs and that "
                                "can run code: " + ", ".join(forbidden[:20])
                                + ". It is refused.", "forbidden_types")],
            extra={"untrusted_types": forbidden})
    refused = untrusted_refusal(untrusted, allowed)
    if refused:
        raise ValidationFailed(
            items=[_refuse_item("The skops file contains types that this server does not "
                                "trust: " + ", ".join(refused[:20])
                                + (f" and {len(refused) - 20} more" if len(refused) > 20 else "")
                                + ". " + HOW_TO_ASK, "untrusted_types")],
            extra={"untrusted_types": refused})
    return ArtifactInfo(ArtifactFormat.SKOPS, untrusted_types=untrusted)


def _refuse_item(message: str, code: str) -> ErrorItem:
    return ErrorItem(code=code, message=message, field="artifact")


def _inspect_onnx(data: bytes) -> ArtifactInfo:
    import onnx

    try:
        proto = onnx.load_model_from_string(data)
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - protobuf and checker raise many classes
        raise _refuse(f"The artifact is not a valid ONNX model ({exc.__class__.__name__}).",
                      "corrupt_file") from exc
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    return ArtifactInfo(ArtifactFormat.ONNX, details={
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ir_version": proto.ir_version,
        "opsets": opsets,
    })
