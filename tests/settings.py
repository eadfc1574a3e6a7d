"""Settings for the test suite: the site's own settings in development mode (no secrets needed).

pytest-django still turns DEBUG off for the requests tests make, so error pages are the ones
visitors see. Tests that need production behaviour override settings explicitly.
"""

import os

os.environ.setdefault("DEBUG", "true")

from portraitsite.settings import *  # noqa: E402,F403

# Cookie leaks raise instead of only being logged (portraitsite.middleware).
TESTING = True

# Hermetic: a developer's .env must not send test photos to a real provider. Tests that want a
# provider start its fake (tests/fakes/), which sets the key and URL; everything else runs on the
# embedded engines.
REMOVEBG_API_KEY = ""
DASHSCOPE_API_KEY = ""
BACKGROUND_ENGINE = "auto"
CROWD_ENGINE = "auto"
# Abuse limits are off unless a test turns one on to test it: test clients upload far faster
# than any visitor.
UPLOADS_PER_MINUTE = 0
PAID_UPLOADS_PER_MINUTE = 0
UNLOCK_FAILURES_PER_MINUTE = 0
CLIENT_LIVE_JOBS = 0
CLIENT_STORE_PERCENT = 0
BACKGROUND_DOWNLOADS_PER_MINUTE = 0
# /healthz details need this token (tests/flow.py's `health_details` sends it).
HEALTHZ_TOKEN = "test-healthz-token"
