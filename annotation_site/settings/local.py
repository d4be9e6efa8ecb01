"""Developer and demo settings: `make run`."""

from .base import *  # noqa: F403
from .base import SECRET_KEY, env_bool

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = SECRET_KEY or "prefloop-local-development-key-not-for-production"
