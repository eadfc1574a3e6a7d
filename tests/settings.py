"""Settings for the test suite: the site's own settings in development mode (no secrets needed).

pytest-django still turns DEBUG off for the requests tests make, so error pages are the ones
visitors see. Tests that need production behaviour override settings explicitly.
"""

import os

os.environ.setdefault("DEBUG", "true")

from portraitsite.settings import *  # noqa: E402,F403

# Cookie leaks raise instead of only being logged (portraitsite.middleware).
TESTING = True
