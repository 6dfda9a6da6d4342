"""The model card in the dossier: read by its headings into the Mitchell et al. sections and
the CHAI clinical fields, answered from the card or a record, a gap said plainly."""

from __future__ import annotations

import io
import re

import pytest
from django.utils import timezone

from dossier import render
from dossier.card import FIELD_KEYS, card_sections, model_card_fields, recognised
from dossier.evidence import evidence_snapshot, json_ready
from registry.models import DatasetVersion, ModelVersion

from ..registry.helpers import register_dataset, register_version
from .helpers import pdf_text

pytestmark = pytest.mark.django_db

MITCHELL_KEYS = ["model_details", "intended_use", "factors", "metrics", "evaluation_data",
                 "training_data", "quantitative_analyses", "ethical_considerations",
                 "caveats_recommendations"]
CHAI_KEYS = ["intended_use_workflow", "target_population", "out_of_scope",
             "known_risks_biases", "key_metrics"]
SECTIONS = {  # heading -> text, one per field
    "Model details": "Logistic regression on four nuclear features.",
    "Intended use": "Second reader for cytology review.",
    "Factors": "Tumour size; texture.",
    "Metrics": "AUC and sensitivity at 0.5.",
    "Evaluation data": "A held-out 25% split, stratified.",
    "Training data": "The sepsis-cohort 2024.1 extract.",
    "Quantitative analyses": "AUC 0.91 overall, 0.88 at age ≥ 65.",
    "Ethical considerations": "No direct identifiers; consented cohort.",
    "Caveats and recommendations": "Re-validate before use at another site.",
    "Intended use and workflow": "Shown to the pathologist beside the slide.",
    "Target population": "Adults with a palpable breast mass referred for FNA.",
    "Out-of-scope settings": "Screening populations; children.",
    "Known risks and biases": "No demographic variables were recorded.",
    "Key metrics": "AUC with its 95% interval.",
}
METRICS = {"overall": {"auc": 0.91, "sensitivity": 0.83},
           "subgroups": [{"name": "age ≥ 65", "n": 120, "metrics": {"auc": 0.88}}]}


def _card(sections: dict) -> str:
    return "# Sepsis risk\n\n" + "".join(f"## {h}\n{t}\n\n" for h, t in sections.items())


def _version(personas, *, card: str, metrics: dict | None = None) -> ModelVersion:
    dataset = (DatasetVersion.objects.filter(name="sepsis-cohort").first()
               or register_dataset(personas.owner))
    version = register_version(personas.owner, personas.model, dataset, model_card=card,
                               **({"metrics": metrics} if metrics is not None else {}))
    return ModelVersion.objects.select_related("model", "dataset").get(pk=version.pk)


def _fields(version) -> dict[str, dict]:
    return {f["key"]: f for f in model_card_fields(version)}


def _squashed(text: str) -> str:
    return "".join(text.split()).lower()


def test_a_card_with_every_section_answers_every_field_with_its_text(personas):
    version = _version(personas, card=_card(SECTIONS), metrics=METRICS)
    fields = model_card_fields(version)
    assert [f["key"] for f in fields] == MITCHELL_KEYS + CHAI_KEYS == list(FIELD_KEYS)
    assert {f["framework"] for f in fields if f["key"] in MITCHELL_KEYS} == {
        "Mitchell et al. 2019"}
    assert {f["framework"] for f in fields if f["key"] in CHAI_KEYS} == {
        "CHAI applied model card"}
    by_key = {f["key"]: f for f in fields}
    assert all(f["status"] == "answered" for f in fields), [
        (f["key"], f["why"]) for f in fields if f["status"] != "answered"]
    card_only = [k for k in FIELD_KEYS if k not in (
        "model_details", "training_data", "metrics", "quantitative_analyses", "key_metrics")]
    for key, (heading, text) in zip(MITCHELL_KEYS + CHAI_KEYS, SECTIONS.items(), strict=True):
        if key in card_only:  # the section's text, exactly
            assert by_key[key]["text"] == text and by_key[key]["record"] == [], key
            assert by_key[key]["source"] == f"model card § {heading}", key
        else:
            assert text in by_key[key]["text"], key
            assert f"model card § {heading}" in by_key[key]["source"], key
    # records answer beside the card and say so
    assert by_key["model_details"]["source"] == "model card § Model details; version record"
    assert ["Content hash", version.content_hash] in by_key["model_details"]["record"]
    assert ["Dataset", "sepsis-cohort@2024.1"] in by_key["training_data"]["record"]
    assert by_key["training_data"]["source"] == "model card § Training data; dataset record"
    # the key metrics carry the test data the card describes
    assert SECTIONS["Evaluation data"] in by_key["key_metrics"]["text"]
    assert "§ Evaluation data" in by_key["key_metrics"]["why"]


def test_a_card_without_a_target_population_is_a_gap_there_and_the_pdf_says_so(personas):
    sections = {h: t for h, t in SECTIONS.items() if h != "Target population"}
    version = _version(personas, card=_card(sections), metrics=METRICS)
    snapshot = json_ready(evidence_snapshot(version=version, at=timezone.now()))
    fields = {f["key"]: f for f in snapshot["model_card_fields"]}
    target = fields["target_population"]
    assert target["status"] == "gap" and target["text"] == "" and target["source"] == "none"
    assert target["why"].startswith("The model card has no section on the target population")
    assert "Target population" in target["why"]  # the headings it would read
    assert [k for k, f in fields.items() if f["status"] == "gap"] == ["target_population"]
    text = _squashed(pdf_text(render.dossier_pdf(snapshot)))
    assert _squashed("Target population gap Source: none. The model card has no section on "
                     "the target population") in text
    assert _squashed(SECTIONS["Out-of-scope settings"]) in text
    assert _squashed("The model card as written") in text


def test_headings_are_read_by_their_aliases():
    card = ("Model card\n==========\n\nIntro.\n\n"
            "## 3.1 Out-of-scope use:\nNot for children.\n\n"
            "## Training Cohort\nAdults, 2020–2023.\n### Exclusions\nPrior surgery.\n\n"
            "## Caveats & Recommendations\nRe-validate.\n\n"
            "```\n## Target population\n```\n\n"
            "Limitations\n-----------\nOne site only.\n\n"
            "## Notes\nUnrelated.\n")
    sections = {s.heading: s for s in card_sections(card)}
    assert recognised("3.1 Out-of-scope use:") == ["out_of_scope"]
    assert recognised("Training Cohort") == ["training_data"]
    assert recognised("Caveats & Recommendations") == ["caveats_recommendations"]
    assert recognised("Limitations") == ["caveats_recommendations", "known_risks_biases"]
    assert recognised("Notes") == [] and recognised("Model card") == []
    # a sub-heading stays in its section; a heading in a code block is text
    assert sections["Training Cohort"].text == "Adults, 2020–2023.\n### Exclusions\nPrior surgery."
    assert "## Target population" in sections["Caveats & Recommendations"].text
    assert "Target population" not in sections
    # setext headings, as the portal's renderer reads them
    assert sections["Limitations"].text == "One site only." and sections["Model card"].level == 1
    assert sections["Notes"].text == "Unrelated."


def test_a_field_takes_its_own_heading_before_an_alias():
    card = ("## Intended use\nSecond reader.\n### Primary users\nPathologists.\n"
            "### Out-of-scope use\nChildren.\n\n"
            "## Intended use and workflow\nBeside the slide.\n\n"
            "## Training data\nAdults.\n### Dataset\nsepsis-cohort 2024.1.\n")
    sections = {s.heading: s for s in card_sections(card)}
    assert sections["Intended use"].text == "Second reader.\n### Primary users\nPathologists."
    assert sections["Out-of-scope use"].text == "Children."
    assert sections["Training data"].text == "Adults.\n### Dataset\nsepsis-cohort 2024.1."
    assert "Dataset" not in sections


def test_each_field_reads_its_own_section_and_an_alias_when_alone(personas):
    both = _fields(_version(personas, card="## Intended use\nSecond reader.\n\n"
                                           "## Intended use and workflow\nBeside the slide.\n"))
    assert both["intended_use"]["text"] == "Second reader."
    assert both["intended_use_workflow"]["text"] == "Beside the slide."
    alone = _fields(_version(personas, card="## Intended use\nSecond reader.\n"))
    assert alone["intended_use_workflow"]["text"] == "Second reader."
    assert alone["intended_use_workflow"]["source"] == "model card § Intended use"
    repeated = _fields(_version(personas, card="## Limitations\nOne site.\n\n"
                                               "## Limitations\nSmall.\n"))
    assert repeated["known_risks_biases"]["text"] == (
        "**Limitations**\n\nOne site.\n\n**Limitations**\n\nSmall.")


def test_aliases_answer_their_fields(personas):
    card = ("## Training cohort\nAdults admitted via the ED.\n\n"
            "## Limitations\nOne site only.\n\n"
            "## Out-of-scope use\nChildren.\n\n"
            "## Population\nAdults in the ED.\n")
    fields = _fields(_version(personas, card=card))
    assert fields["training_data"]["text"] == "Adults admitted via the ED."
    assert fields["training_data"]["source"] == "model card § Training cohort; dataset record"
    for key in ("caveats_recommendations", "known_risks_biases"):
        assert fields[key]["status"] == "answered" and fields[key]["text"] == "One site only."
        assert fields[key]["source"] == "model card § Limitations"
    assert fields["out_of_scope"]["text"] == "Children."
    assert fields["target_population"]["text"] == "Adults in the ED."
    assert fields["ethical_considerations"]["status"] == "gap"


def test_an_empty_section_is_a_gap(personas):
    card = ("## Intended use\n\n<!-- describe the intended use -->\n\n"
            "## Target population\nTBD\n\n"
            "## Factors\n### Groups\n\n"
            "## Training data\nAdults.\n")
    fields = _fields(_version(personas, card=card))
    for key, heading in (("intended_use", "Intended use"),
                         ("intended_use_workflow", "Intended use"),
                         ("target_population", "Target population"), ("factors", "Factors")):
        assert fields[key]["status"] == "gap", key
        assert fields[key]["why"] == f"The model card's section “{heading}” has no text."
        assert fields[key]["text"] == ""
    assert fields["training_data"]["status"] == "answered"


def test_the_checklist_reads_the_training_data_section_as_the_card_fields_do(personas):
    def item(card):
        snapshot = evidence_snapshot(version=_version(personas, card=card), at=timezone.now())
        return next(i for i in snapshot["checklist"]
                    if i["item"] == "Model card describes training cohort")

    answered = item("## Training cohort\nAdults admitted via the ED.\n")
    assert answered["status"] == "answered" and "(“Training cohort”)" in answered["why"]
    assert item("## Training data\n\n")["status"] == "gap"  # a heading without text
    assert item("## Evaluation dataset\nA held-out split.\n")["status"] == "gap"


def test_the_metrics_fields_read_the_recorded_metrics(personas):
    version = _version(personas, card="## Intended use\nTriage.\n", metrics=METRICS)
    fields = _fields(version)
    metrics = fields["metrics"]
    assert metrics["status"] == "answered" and metrics["source"] == "recorded metrics"
    assert ["Measures recorded", "auc, sensitivity"] in metrics["record"]
    assert ["Overall", "auc 0.91, sensitivity 0.83"] in metrics["record"]
    assert "Overall: auc 0.91, sensitivity 0.83" in metrics["text"]
    quantitative = fields["quantitative_analyses"]
    assert quantitative["status"] == "answered"
    assert ["Subgroup age ≥ 65 (n = 120)", "auc 0.88"] in quantitative["record"]
    # the metrics do not say what data they were measured on: the card must
    key = fields["key_metrics"]
    assert key["status"] == "gap" and key["record"] == quantitative["record"]
    assert "the recorded metrics do not name the data they were measured on" in key["why"]
    assert "no section on the evaluation data" in key["why"]
    assert fields["evaluation_data"]["status"] == "gap"

    described = _version(personas, card="## Test data\nA held-out split of 143 FNA samples.\n",
                         metrics=METRICS)
    key = _fields(described)["key_metrics"]
    assert key["status"] == "answered"
    assert key["source"] == "recorded metrics; model card § Test data"
    assert key["text"] == "A held-out split of 143 FNA samples."


def test_without_recorded_metrics_the_metrics_fields_are_gaps(personas):
    fields = _fields(_version(personas, card="## Intended use\nTriage.\n", metrics={}))
    for key in ("metrics", "quantitative_analyses", "key_metrics"):
        assert fields[key]["status"] == "gap", key
        assert fields[key]["why"].startswith("No metrics are recorded for the version"), key
    overall_only = _fields(_version(personas, card="", metrics={"overall": {"auc": 0.9}}))
    assert overall_only["metrics"]["status"] == "answered"
    assert overall_only["quantitative_analyses"]["status"] == "gap"
    assert overall_only["quantitative_analyses"]["why"].startswith(
        "The recorded metrics have overall figures only, no subgroup results; the version has "
        "no model card")


def test_a_version_without_a_card_is_answered_only_by_its_records(personas):
    fields = _fields(_version(personas, card="", metrics=METRICS))
    answered = sorted(k for k, f in fields.items() if f["status"] == "answered")
    assert answered == ["metrics", "model_details", "quantitative_analyses", "training_data"]
    assert fields["target_population"]["why"] == "The version has no model card."
    assert fields["model_details"]["text"].startswith("Model: ")


def test_the_demo_card_answers_every_field():
    from registry.demo import MODEL_CARD, MODEL_NAME, run_demo

    run_demo(stdout=io.StringIO())
    version = ModelVersion.objects.select_related("model", "dataset").get(
        model__name=MODEL_NAME, number=1)
    assert version.model_card == MODEL_CARD
    fields = model_card_fields(version)
    assert [(f["key"], f["status"]) for f in fields] == [(k, "answered") for k in FIELD_KEYS], [
        (f["key"], f["why"]) for f in fields if f["status"] != "answered"]
    # every field but those a record answers alone is the card's own text
    assert all("model card §" in f["source"] for f in fields)


def test_the_headings_owners_are_told_are_read():
    from registry.api.serializers import VersionCreateSerializer, VersionPatchSerializer
    from registry.forms import VersionEditForm, VersionRegisterForm

    help_texts = (str(VersionRegisterForm.base_fields["model_card"].help_text),
                  str(VersionEditForm.base_fields["model_card"].help_text),
                  str(VersionCreateSerializer().fields["metadata"].help_text),
                  str(VersionPatchSerializer().fields["model_card"].help_text))
    for text in help_texts:
        named = re.search(r"reads these headings[^:]*: (.*?)\. ", text)
        assert named, text
        headings = [h.strip() for h in named.group(1).split(",")]
        assert len(headings) >= 12
        assert all(recognised(h) for h in headings), headings
