"""python manage.py issue_codes --count N [--uses U] [--days D | --expires YYYY-MM-DD] [--label TEXT] [--csv]

Prints the new codes on stdout, one per line (or as CSV), and nothing else there, so the output
can be piped straight into a file or a mail merge. The codes are not kept anywhere.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from unlock.forms import GenerateCodesForm
from unlock.issuing import issue


class Command(BaseCommand):
    help = "Generate unlock codes and print them once (the database keeps only digests and hints)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="how many codes (1–1000)")
        parser.add_argument("--uses", type=int, default=1, help="downloads each code unlocks (default 1)")
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument("--days", type=int, help="the codes expire this many days from now")
        expiry.add_argument("--expires", metavar="YYYY-MM-DD", help="the last day the codes work")
        parser.add_argument("--label", default="", help="what the codes are for")
        parser.add_argument("--csv", action="store_true", help="print CSV: code,uses,expires,label")

    def handle(self, *args, **options) -> None:
        # The same form as the admin's "Generate codes" page, so both apply the same rules.
        form = GenerateCodesForm(
            data={
                "count": options["count"],
                "max_uses": options["uses"],
                "expires_in_days": "" if options["days"] is None else options["days"],
                "expires_on": options["expires"] or "",
                "label": options["label"],
            }
        )
        if not form.is_valid():
            problems = [
                f"{'--' + _OPTION.get(field, field) + ': ' if field != '__all__' else ''}{message}"
                for field, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError("\n".join(problems))
        data = form.cleaned_data
        batch = issue(data["count"], data["max_uses"], form.expires_at(), data["label"])
        if options["csv"]:
            self.stdout.write(batch.as_csv(), ending="")
        else:
            for code in batch.displayed:
                self.stdout.write(code)
        self.stderr.write(f"{len(batch.codes)} codes issued; they are not stored and cannot be shown again.")


_OPTION = {"count": "count", "max_uses": "uses", "expires_in_days": "days", "expires_on": "expires", "label": "label"}
