"""Functional forms of every loss. Importing this package registers them."""

from . import distribution, region  # noqa: F401  (registration side effects)
from .distribution import *  # noqa: F401,F403
from .region import *  # noqa: F401,F403
from . import boundary, structural  # noqa: F401,E402  (registration side effects)
from .boundary import *  # noqa: F401,F403,E402
from .structural import *  # noqa: F401,F403,E402
from . import lovasz, compound_formulas  # noqa: F401,E402  (registration side effects)
from .lovasz import *  # noqa: F401,F403,E402
from .compound_formulas import *  # noqa: F401,F403,E402
from . import topology  # noqa: F401,E402  (registration side effects)
from .topology import *  # noqa: F401,F403,E402
