"""Functional forms of every loss. Importing this package registers them."""

from . import distribution, region  # noqa: F401  (registration side effects)
from .distribution import *  # noqa: F401,F403
from .region import *  # noqa: F401,F403
