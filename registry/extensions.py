"""Extension points the layers above the registry register at start-up.

The registry knows nothing of the apps above it (import-linter's layers), yet two
things of theirs belong to its flows and pages:

* work that must start when a version is submitted (``explain`` computes a
  version's global importance and explanation reliability), and
* sections of the version page and of the PI review page (their charts), and
* the page of a document a signature covers (a compliance dossier the IRB signed).

So those apps register a callable here from their ``AppConfig.ready`` (as the
registry registers its model directory with ``audits``), and the registry calls
whatever is registered: a downward dependency only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# fn(version, user): called inside model_version_submit's transaction, with the version
# row locked and already in review, so what it writes commits (or rolls back) with the
# submission; background work is enqueued with transaction.on_commit.
SubmitHook = Callable[[Any, Any], None]
# fn(request, version, page) -> {"template": name, "context": {...}} or None, where page
# is "version" (the version page) or "review" (the PI/IRB review page).
VersionSection = Callable[[Any, Any, str], dict | None]

# fn(document_ref) -> the document's page (a path), or None: the link of a document
# sign-off's document (registry.models.DOCUMENT_TYPES names the type).
DocumentLink = Callable[[str], str | None]

_submit_hooks: dict[str, SubmitHook] = {}
_version_sections: dict[str, VersionSection] = {}
_document_links: dict[str, DocumentLink] = {}


def register_submit_hook(name: str, hook: SubmitHook) -> None:
    """Register (or replace, by name: ready() may run twice in tests) a submit hook."""
    _submit_hooks[name] = hook


def register_version_section(name: str, section: VersionSection) -> None:
    _version_sections[name] = section


def version_submitted(*, version, user) -> None:
    for hook in list(_submit_hooks.values()):
        hook(version, user)


def version_sections(*, request, version, page: str) -> list[dict]:
    """The registered sections for this page, in registration order (None ones left out)."""
    sections = []
    for section in list(_version_sections.values()):
        made = section(request, version, page)
        if made:
            sections.append(made)
    return sections


def register_document_link(document_type: str, link: DocumentLink) -> None:
    _document_links[document_type] = link


def document_link(*, document_type: str, document_ref: str) -> str | None:
    """The page of a signed document, when the app holding it registered one."""
    link = _document_links.get(document_type)
    return link(document_ref) if link and document_ref else None
