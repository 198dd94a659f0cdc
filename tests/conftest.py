"""Shared test set-up: the hypothesis profile (repeatable "ci" under CI, else "dev")."""

import os

from hypothesis import settings

import tinyprune.testing  # noqa: F401  (registers the "ci" and "dev" profiles)

settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
