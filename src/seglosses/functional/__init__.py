"""Functional forms of every loss, one file per category. Importing this package registers them.

* :mod:`~seglosses.functional.distribution`: cross entropy and its variants (``ce``, ``wce``,
  ``balanced_ce``, ``weighted_bce``, ``topk``, ``topk_threshold``, ``focal``, ``dpce``, ``cmss``);
* :mod:`~seglosses.functional.region`: overlap losses (``dice``, ``iou``, ``tversky``, ...);
* :mod:`~seglosses.functional.boundary`: distance-map losses (``boundary``, ``hausdorff``,
  ``shape_aware``);
* :mod:`~seglosses.functional.lovasz`: the Lovász hinge / softmax loss (a region loss with its
  own sorting machinery);
* :mod:`~seglosses.functional.compound`: every compound formula (``combo``, ``ell`` and the
  named weighted sums ``dice_ce``, ``dice_focal``, ``dice_topk``, ``dice_bd``, ``dice_hd``).

Private helpers: :mod:`~seglosses.functional._maps` (distance-map inputs),
:mod:`~seglosses.functional.structural` (the window machinery of ``cmss``).
"""

from . import distribution, region  # noqa: F401  (registration side effects)
from .distribution import *  # noqa: F401,F403
from .region import *  # noqa: F401,F403
from . import boundary, lovasz  # noqa: F401,E402  (registration side effects)
from .boundary import *  # noqa: F401,F403,E402
from .lovasz import *  # noqa: F401,F403,E402
from . import topology  # noqa: F401,E402  (registration side effects)
from .topology import *  # noqa: F401,F403,E402
from . import compound  # noqa: F401,E402  (registers combo, ell and the named compounds: after their terms)
from .compound import *  # noqa: F401,F403,E402
from . import structural  # noqa: F401,E402  (old import path of the cmss machinery)
