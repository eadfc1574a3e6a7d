from django.core.management.base import BaseCommand

from portraitsite import usage


class Command(BaseCommand):
    help = f"Delete the daily usage totals older than {usage.RETENTION_DAYS} days. Run it once a day."

    def handle(self, *args, **options) -> None:
        deleted = usage.purge()
        self.stdout.write(f"Deleted {deleted} usage totals older than {usage.RETENTION_DAYS} days.")
