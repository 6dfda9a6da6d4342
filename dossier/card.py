"""The model card read into fields: the sections of Mitchell et al. 2019 ("Model Cards for
Model Reporting") and the clinical fields of the CHAI applied model card.

The card is the owner's Markdown (``ModelVersion.model_card``, in the content hash). It is
read by its headings, never by guessing at prose:

1. Split the text at its headings (ATX ``## …`` and setext underlines, as the portal's
   Markdown renderer reads them; nothing inside a fenced code block is a heading).
   A heading at the level of the current section or above starts a section; a deeper
   one starts a section only if it answers another field than the current section, so
   an owner's ``### Primary users`` under ``## Intended use`` stays part of it, and
   ``### Out-of-scope use`` under it is a section of its own.
2. Normalise each heading (case, punctuation, "&", leading numbering: "3.1 Out-of-scope
   use:" reads as "out of scope use") and look it up in each field's list of headings.
   One heading may answer several fields ("Limitations" answers both the caveats and
   the known risks). A field takes the sections under the first of its headings (in
   FIELDS' order) that the card uses with text, joined in card order if it repeats.
3. A section with no text (or only a placeholder such as "TBD") is a gap. Where a
   record answers (the version record, the dataset record, the recorded metrics) the
   field says so in ``source`` and carries the rows read in ``record``. Where neither
   the card nor a record answers, the field is a gap and ``why`` names what is missing.

Nothing here writes text about the model: every ``text`` is the owner's section or the
values of a record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from registry.models import ModelAccessGrant, ModelVersion
from registry.roles import ModelRole

ANSWERED = "answered"
GAP = "gap"
MITCHELL = "Mitchell et al. 2019"
CHAI = "CHAI applied model card"
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class CardField:
    key: str
    label: str
    framework: str
    topic: str  # "The model card has no section on {topic}."
    headings: tuple[str, ...]  # as owners are told them; matched normalised


FIELDS: tuple[CardField, ...] = (
    CardField("model_details", "Model details", MITCHELL, "the model's details",
              ("Model details", "Model description", "Model overview", "Overview",
               "About the model")),
    CardField("intended_use", "Intended use", MITCHELL, "the intended use",
              ("Intended use", "Intended uses", "Primary intended uses", "Intended purpose",
               "Intended use and users", "Intended use and workflow")),
    CardField("factors", "Factors", MITCHELL, "the relevant factors",
              ("Factors", "Relevant factors", "Evaluation factors")),
    CardField("metrics", "Metrics", MITCHELL, "the metrics",
              ("Metrics", "Performance metrics", "Performance measures",
               "Model performance measures", "Evaluation metrics", "Performance")),
    CardField("evaluation_data", "Evaluation data", MITCHELL, "the evaluation data",
              ("Evaluation data", "Evaluation dataset", "Evaluation cohort", "Test data",
               "Test set", "Test cohort", "Validation data", "Validation cohort",
               "Held-out data")),
    CardField("training_data", "Training data", MITCHELL, "the training data",
              ("Training data", "Training dataset", "Training set", "Training cohort",
               "Cohort", "Dataset", "Data")),
    CardField("quantitative_analyses", "Quantitative analyses", MITCHELL,
              "quantitative analyses",
              ("Quantitative analyses", "Quantitative analysis", "Results",
               "Subgroup performance", "Subgroup results", "Subgroup analyses",
               "Subgroup analysis", "Performance by subgroup", "Performance")),
    CardField("ethical_considerations", "Ethical considerations", MITCHELL,
              "ethical considerations",
              ("Ethical considerations", "Ethics", "Ethical considerations and risks")),
    CardField("caveats_recommendations", "Caveats and recommendations", MITCHELL,
              "caveats and recommendations",
              ("Caveats and recommendations", "Caveats", "Recommendations", "Limitations",
               "Known limitations", "Limitations and recommendations")),
    CardField("intended_use_workflow", "Intended use and workflow", CHAI,
              "the intended use and workflow",
              ("Intended use and workflow", "Workflow", "Clinical workflow",
               "Intended workflow", "Intended use", "Intended uses")),
    CardField("target_population", "Target population", CHAI, "the target population",
              ("Target population", "Intended population", "Patient population",
               "Population", "Target patients", "Intended patients")),
    CardField("out_of_scope", "Out-of-scope settings", CHAI, "out-of-scope settings",
              ("Out-of-scope settings", "Out-of-scope use", "Out-of-scope uses",
               "Out-of-scope use cases", "Out of scope", "Not intended for",
               "Contraindications")),
    CardField("known_risks_biases", "Known risks and biases", CHAI, "known risks and biases",
              ("Known risks and biases", "Risks and biases", "Known risks", "Risks",
               "Known biases", "Biases", "Bias", "Risks and limitations", "Limitations",
               "Known limitations")),
    CardField("key_metrics", "Key metrics with their test data", CHAI,
              "key metrics with their test data",
              ("Key metrics", "Key metrics and test data", "Key metrics with test data")),
)
FIELD_KEYS = tuple(f.key for f in FIELDS)

_NUMBERING = re.compile(r"^(?:\d+\s+)+")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:[-*+>|]|\d+[.)]\s|#|<)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
PLACEHOLDERS = frozenset({"tbd", "tba", "todo", "to do", "fixme", "xxx", "placeholder"})


def normalise_heading(text: str) -> str:
    """Lower case, "&" as "and", punctuation as spaces, leading numbering dropped."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("&", " and ")).strip()
    return _NUMBERING.sub("", words)


_BY_HEADING: dict[str, list[str]] = {}
for _f in FIELDS:
    for _h in _f.headings:
        _BY_HEADING.setdefault(normalise_heading(_h), []).append(_f.key)


def recognised(heading: str) -> list[str]:
    """The keys of the fields a heading answers (empty: not a heading this module reads)."""
    return list(_BY_HEADING.get(normalise_heading(heading), []))


@dataclass
class Section:
    heading: str  # as written, without the #s
    level: int  # 0: the text before the first heading
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines).strip("\n")

    @property
    def empty(self) -> bool:
        """No text: nothing but blank lines, sub-headings, HTML comments or a placeholder."""
        body = "\n".join(line for line in _COMMENT.sub("", self.text).splitlines()
                         if not _ATX.match(line))
        words = re.sub(r"[^a-z0-9]+", " ", body.lower()).strip()
        return not words or words in PLACEHOLDERS


def card_sections(text: str) -> list[Section]:
    """The card split at its headings (step 1 of the module's docstring); the first
    section (level 0) holds the text before any heading."""
    sections = [Section("", 0)]
    fence = ""
    starts_block = False  # the last line is a paragraph's first line (a setext candidate)
    previous_blank = True
    for line in (text or "").splitlines():
        current = sections[-1]
        if fence:
            current.lines.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = ""
            starts_block, previous_blank = False, False
            continue
        opening = _FENCE.match(line)
        atx = _ATX.match(line)
        setext = _SETEXT.match(line) if starts_block else None
        if opening:
            fence = opening.group(1)
            current.lines.append(line)
        elif atx:
            _heading(sections, (atx.group(2) or "").strip(), len(atx.group(1)), line)
        elif setext:
            title = current.lines.pop()
            _heading(sections, title.strip(), 1 if setext.group(1)[0] == "=" else 2,
                     f"{title}\n{line}")
        else:
            current.lines.append(line)
        blank = not line.strip()
        starts_block = (previous_blank and not blank and not opening and not atx
                        and not setext and not _NOT_PARAGRAPH.match(line))
        previous_blank = blank or bool(atx) or bool(setext)
    return sections


def _heading(sections: list[Section], title: str, level: int, raw: str) -> None:
    current = sections[-1]
    fields = recognised(title)
    deeper = current.level and level > current.level
    if deeper and (not fields or set(fields) & set(recognised(current.heading))):
        # a sub-heading: unrecognised, or of the same field ("### Dataset" under
        # "## Training data")
        current.lines.extend(raw.split("\n"))
    else:
        sections.append(Section(title, level))


def training_data_section(text: str) -> str | None:
    """The heading of the card's first training-data section with text, or None (the
    checklist's "Model card describes training cohort" reads the card through this)."""
    for section in card_sections(text):
        if section.level and "training_data" in recognised(section.heading) \
                and not section.empty:
            return section.heading
    return None


# -- the fields ---------------------------------------------------------------------------------

@dataclass
class _Found:
    """What the card says for one field: its sections with text and those without."""
    answered: list[Section]
    empty: list[Section]

    def text(self) -> str:
        if len(self.answered) == 1:
            return self.answered[0].text
        return "\n\n".join(f"**{s.heading}**\n\n{s.text}" for s in self.answered)

    def sources(self) -> list[str]:
        return [f"model card § {s.heading}" for s in self.answered]


def _find(sections: list[Section], spec: CardField) -> _Found:
    """The sections answering ``spec``: those with text under the best-placed of its
    headings that the card uses (a card with "Intended use" and "Intended use and
    workflow" answers each field with its own section; one with only "Intended use"
    answers both with it); the empty ones are kept to name in the gap."""
    ranks = [normalise_heading(h) for h in spec.headings]
    matched = [(ranks.index(normalise_heading(s.heading)), s) for s in sections
               if s.level and normalise_heading(s.heading) in ranks]
    with_text = [(rank, s) for rank, s in matched if not s.empty]
    best = min((rank for rank, _s in with_text), default=None)
    return _Found([s for rank, s in with_text if rank == best],
                  [s for _rank, s in matched if s.empty])


def _missing(card: str, spec: CardField, found: _Found) -> str:
    if not card.strip():
        return "The version has no model card."
    if found.empty:
        names = ", ".join(f"“{s.heading}”" for s in found.empty)
        return f"The model card's section {names} has no text."
    return (f"The model card has no section on {spec.topic} (headings read: "
            f"{', '.join(spec.headings)}).")


def _field(spec: CardField, *, status: str, text: str, sources: list[str], why: str,
           record: list[list[str]] | None = None) -> dict:
    return {"key": spec.key, "label": spec.label, "framework": spec.framework,
            "status": status, "text": text, "source": "; ".join(sources) or "none",
            "why": why, "record": record or []}


def _lines(record: list[list[str]]) -> str:
    return "\n".join(f"{label}: {value}" for label, value in record)


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else NOT_RECORDED


def _person(user) -> str:
    if user is None:
        return NOT_RECORDED
    name = user.get_full_name()
    return f"{name} ({user.get_username()})" if name else user.get_username()


def _number(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _values(metrics: dict) -> str:
    return ", ".join(f"{name} {_number(metrics[name])}" for name in sorted(metrics)) or "none"


def _version_record(version: ModelVersion) -> list[list[str]]:
    owners = (ModelAccessGrant.objects.filter(model_id=version.model_id, role=ModelRole.OWNER)
              .select_related("user").order_by("user__username"))
    framework = " ".join(x for x in (version.framework, version.framework_version) if x)
    return [
        ["Model", version.model.name + (f": {version.model.description}"
                                        if version.model.description else "")],
        ["Version", f"{version.label} ({version.get_state_display()})"
                    + (f": {version.description}" if version.description else "")],
        ["Estimator", version.estimator or NOT_RECORDED],
        ["Framework", framework or NOT_RECORDED],
        ["Artifact", f"{version.get_artifact_format_display()}, {version.artifact_size} bytes"],
        ["Artifact sha256", version.artifact_sha256],
        ["Content hash", version.content_hash],
        ["Owners", ", ".join(_person(g.user) for g in owners) or NOT_RECORDED],
        ["Registered", f"{_when(version.created_at)} by {_person(version.created_by)}"],
        ["Submitted", (f"{_when(version.submitted_at)} by {_person(version.submitted_by)}"
                       if version.submitted_at else "not submitted")],
        ["Code reference", version.code_reference or NOT_RECORDED],
    ]


def _dataset_record(version: ModelVersion) -> list[list[str]]:
    d = version.dataset
    period = (f"{d.date_start.isoformat() if d.date_start else '?'} – "
              f"{d.date_end.isoformat() if d.date_end else '?'}"
              if d.date_start or d.date_end else NOT_RECORDED)
    return [
        ["Dataset", f"{d.name}@{d.version}"], ["Dataset sha256", d.sha256], ["Rows", str(d.row_count)],
        ["Source", d.source or NOT_RECORDED],
        ["Description", d.description or NOT_RECORDED],
        ["Inclusion criteria", d.inclusion_criteria or NOT_RECORDED],
        ["Exclusion criteria", d.exclusion_criteria or NOT_RECORDED],
        ["Period", period], ["Protocol", d.protocol_number or NOT_RECORDED],
        ["De-identification", d.deidentification or NOT_RECORDED],
    ]


def _metrics_rows(metrics: dict, *, subgroups: bool, measures: bool = False,
                  calibration: bool = False) -> list[list[str]]:
    overall = metrics.get("overall") or {}
    groups = [g for g in metrics.get("subgroups") or [] if isinstance(g, dict)]
    rows = []
    if measures:
        names = sorted({*overall, *(k for g in groups for k in (g.get("metrics") or {}))})
        rows.append(["Measures recorded", ", ".join(names) or "none"])
    if overall:
        rows.append(["Overall", _values(overall)])
    if subgroups:
        for g in groups:
            n = f" (n = {g['n']})" if g.get("n") is not None else ""
            rows.append([f"Subgroup {g.get('name')}{n}", _values(g.get("metrics") or {})])
    bins = metrics.get("calibration") or []
    if calibration and bins:
        rows.append(["Calibration", f"{len(bins)} score bins, "
                                    f"{sum(b.get('n', 0) for b in bins)} scores in all"])
    return rows


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def model_card_fields(version: ModelVersion) -> list[dict]:
    """The fields of the version's model card (see the module docstring), in FIELDS' order:
    {key, label, framework, status, text, source, why, record}. ``record`` holds the
    [label, value] rows read from a record (empty where only the card answers)."""
    card = version.model_card or ""
    sections = card_sections(card)
    specs = {spec.key: spec for spec in FIELDS}
    found = {spec.key: _find(sections, spec) for spec in FIELDS}
    metrics = version.metrics or {}
    groups = [g for g in metrics.get("subgroups") or [] if isinstance(g, dict)]
    has_subgroups = any(g.get("metrics") for g in groups)
    has_metrics = bool(metrics.get("overall")) or has_subgroups
    measured = "recorded metrics"
    unnamed = "the recorded metrics do not name the data they were measured on"
    evaluation = found["evaluation_data"]
    out = []
    for spec in FIELDS:
        f = found[spec.key]
        text, sources = f.text(), f.sources()
        missing = _missing(card, spec, f)
        if spec.key == "model_details":
            record = _version_record(version)
            out.append(_field(
                spec, status=ANSWERED, text=text or _lines(record), record=record,
                sources=[*sources, "version record"],
                why="Estimator, artifact, content hash, owners, dates and code reference are "
                    "read from the version record." + ("" if text else f" {missing}")))
        elif spec.key == "training_data":
            dataset = version.dataset
            record = _dataset_record(version)
            out.append(_field(
                spec, status=ANSWERED if text or dataset.source else GAP,
                text=text or _lines(record), record=record,
                sources=[*sources, "dataset record"],
                why=f"The dataset record of {dataset.name}@{dataset.version} "
                    + ("states its provenance." if dataset.source else "records no source.")
                    + ("" if text else f" {missing}")))
        elif spec.key in ("metrics", "quantitative_analyses"):
            is_metrics = spec.key == "metrics"
            record = _metrics_rows(metrics, subgroups=not is_metrics, measures=is_metrics,
                                   calibration=is_metrics)
            if is_metrics and has_metrics:
                record.append(["Confidence threshold",
                               f"{_number(version.confidence_threshold)} (predictions with "
                               "a lower confidence are routed to human review)"])
            from_record = has_metrics if is_metrics else has_subgroups
            sources = [*sources, *([measured] if has_metrics else [])]
            if text or from_record:
                why = (("Read from the version's recorded metrics"
                        + (" and the model card." if text else "."))
                       if from_record else "Read from the model card.")
                out.append(_field(spec, status=ANSWERED, text=text or _lines(record),
                                  record=record, sources=sources, why=why))
            else:
                lack = ("The recorded metrics have overall figures only, no subgroup results"
                        if has_metrics else "No metrics are recorded for the version")
                out.append(_field(spec, status=GAP, text=_lines(record), record=record,
                                  sources=sources, why=f"{lack}; {_lower_first(missing)}"))
        elif spec.key == "key_metrics":
            record = _metrics_rows(metrics, subgroups=True, calibration=True)
            stated = [*f.answered, *([] if has_metrics or f.answered
                                     else found["metrics"].answered)]
            parts = _Found([*stated, *evaluation.answered], [])
            problems = []
            if not has_metrics and not stated:
                problems.append("No metrics are recorded for the version and the model card "
                                "has no section on the metrics.")
            if not evaluation.answered:
                problems.append(f"The test data are not described: {unnamed}, and "
                                + _lower_first(_missing(card, specs["evaluation_data"],
                                                        evaluation)))
            why = " ".join(problems) or (
                ("The version's recorded metrics" if has_metrics else "The model card's metrics")
                + ", with the test data described in the model card ("
                + "; ".join(f"§ {s.heading}" for s in evaluation.answered) + ").")
            out.append(_field(
                spec, status=GAP if problems else ANSWERED,
                text=parts.text() if parts.answered else _lines(record), record=record,
                sources=[*([measured] if has_metrics else []), *parts.sources()], why=why))
        elif text:
            out.append(_field(spec, status=ANSWERED, text=text, sources=sources,
                              why="Read from the model card."))
        else:
            if spec.key == "evaluation_data" and has_metrics:
                missing += f" Metrics are recorded, but {unnamed}."
            out.append(_field(spec, status=GAP, text="", sources=[], why=missing))
    return out
