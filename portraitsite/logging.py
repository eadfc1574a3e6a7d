"""Log hygiene: job tokens never reach a log line, whatever logged them."""

import logging
import re

# Job URLs carry the token as their only secret; anything after /jobs/ up to the next slash goes.
TOKEN_IN_PATH = re.compile(r"(/jobs/)[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    return TOKEN_IN_PATH.sub(r"\1…", text)


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
