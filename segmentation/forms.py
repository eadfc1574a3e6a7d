from django import forms
from django.utils.translation import gettext_lazy as _

from segmentation.engines import CROWD, CUTOUT, IDPHOTO
from segmentation.idphoto.specs import DEFAULT_SPEC, SPECS


class UploadForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[(CUTOUT, _("Remove background")), (CROWD, _("Remove passers-by")), (IDPHOTO, _("ID photo"))],
        initial=CUTOUT,
        widget=forms.RadioSelect,
        error_messages={"required": _("Please choose a tool."), "invalid_choice": _("Please choose a tool.")},
    )
    # Only read for ID photos; the other tools ignore it (the home page sends it with every tool).
    spec = forms.ChoiceField(
        choices=[(spec.key, spec.name) for spec in SPECS.values()],
        initial=DEFAULT_SPEC,
        required=False,
        error_messages={"invalid_choice": _("Please choose an ID photo size from the list.")},
    )
    image = forms.FileField(
        error_messages={
            "required": _("Please choose a photo to upload."),
            "empty": _("The file is empty. Please choose a photo."),
        },
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("mode") == IDPHOTO and not cleaned.get("spec"):
            cleaned["spec"] = DEFAULT_SPEC
        if cleaned.get("mode") != IDPHOTO:
            cleaned["spec"] = ""
        return cleaned


class PeopleForm(forms.Form):
    """Who stays: the ids of the people kept, at least one, among those the job offers."""

    keep = forms.TypedMultipleChoiceField(
        coerce=int,
        error_messages={
            "required": _("Please keep at least one person."),
            "invalid_choice": _("That person is not in this photo. Please reload the page and choose again."),
        },
    )

    def __init__(self, data, people: list[dict]):
        super().__init__(data)
        self.fields["keep"].choices = [(str(person["id"]), str(person["id"] + 1)) for person in people]
