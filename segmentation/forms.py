from django import forms
from django.utils.translation import gettext_lazy as _

from segmentation.engines import CROWD, CUTOUT


class UploadForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[(CUTOUT, _("Remove background")), (CROWD, _("Remove passers-by"))],
        initial=CUTOUT,
        widget=forms.RadioSelect,
        error_messages={"required": _("Please choose a tool."), "invalid_choice": _("Please choose a tool.")},
    )
    image = forms.FileField(
        error_messages={
            "required": _("Please choose a photo to upload."),
            "empty": _("The file is empty. Please choose a photo."),
        },
    )
