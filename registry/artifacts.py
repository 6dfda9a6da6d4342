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

from core.errors import ErrorItem, ValidationFailed

from .models import ArtifactFormat

CONVERT_HELP = (
    "Pickle and joblib files can run arbitrary code when loaded, so Attest refuses them. "
    "Convert the fitted estimator instead: with skops — `import skops.io as sio; "
    "sio.dump(model, 'model.skops')` — or to ONNX with skl2onnx — `from skl2onnx import "
    "to_onnx; open('model.onnx','wb').write(to_onnx(model, X[:1].astype('float32'))"
    ".SerializeToString())` — and upload that file."
)

# Modules whose objects have no business in a model file: refused even when the
# uploader lists them as trusted.
FORBIDDEN_MODULE_ROOTS = frozenset({
    "builtins", "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "pickle",
    "marshal", "importlib", "runpy", "code", "codeop", "ctypes", "types", "io", "pathlib",
    "tempfile", "webbrowser", "http", "urllib", "requests", "shelve", "dill", "cloudpickle",
    "joblib", "operator", "functools", "inspect", "pty", "signal", "multiprocessing",
})

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


def inspect_artifact(data: bytes, *, artifact_format: str, trusted_types: list[str]) -> ArtifactInfo:
    """Check an upload is what it claims and safe to load; raise ValidationFailed otherwise.

    1. Empty files and pickle/joblib content are refused first, by content.
    2. skops: the zip must be intact and hold skops' schema.json; every type
       skops does not trust by default must be listed in ``trusted_types``
       and come from an allowed module.
    3. onnx: the bytes must parse as an ONNX graph.
    """
    if not data:
        raise _refuse("The artifact file is empty.", "empty_file")
    pickled = detect_pickle(data)
    if pickled:
        raise _refuse(f"The artifact is {pickled}. {CONVERT_HELP}", "pickle_refused")
    if artifact_format == ArtifactFormat.SKOPS:
        return _inspect_skops(data, trusted_types)
    if artifact_format == ArtifactFormat.ONNX:
        return _inspect_onnx(data)
    raise ValidationFailed(f"Unknown artifact format {artifact_format!r}; use 'skops' or 'onnx'.",
                           code="unsupported_format", field="metadata.format")


def _inspect_skops(data: bytes, trusted_types: list[str]) -> ArtifactInfo:
    import skops.io as sio

    if data[:4] != b"PK\x03\x04":
        raise _refuse("The artifact is not a skops file (a skops file is a zip archive). "
                      "Save the model with skops.io.dump(model, 'model.skops').", "not_skops")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
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
    forbidden = [t for t in untrusted if t.split(".", 1)[0] in FORBIDDEN_MODULE_ROOTS]
    if forbidden:
        raise _refuse("The skops file refers to types that no model needs and that can run code: "
                      + ", ".join(forbidden) + ". It is refused.", "forbidden_types")
    unknown = [t for t in untrusted if t not in set(trusted_types)]
    if unknown:
        raise ValidationFailed(
            items=[ErrorItem(
                code="untrusted_types",
                field="metadata.trusted_types",
                message=("The skops file contains types that are not trusted by default: "
                         + ", ".join(unknown) + ". If you recognise them as parts of your "
                         "model, list them in metadata.trusted_types, e.g. \"trusted_types\": "
                         + "[" + ", ".join(f'"{t}"' for t in unknown) + "]."),
            )],
            extra={"untrusted_types": unknown},
        )
    return ArtifactInfo(ArtifactFormat.SKOPS, untrusted_types=untrusted)


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
