"""The IRB's sign form on a dossier's page."""

from __future__ import annotations

from django import forms


class DossierReviewForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve: I reviewed this dossier and accept it as the record"),
                 ("reject", "Reject: the dossier does not support this version (say why)")],
        widget=forms.RadioSelect)
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="Required when you reject.")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), strip=False,
        label="Your password",
        help_text="Re-entering your password signs this dossier electronically, bound to its "
                  "sha256 and the version's content hash above.")
    # What the signer read: the service refuses a dossier or version that has changed since.
    sha256 = forms.CharField(widget=forms.HiddenInput)
    content_hash = forms.CharField(widget=forms.HiddenInput)
