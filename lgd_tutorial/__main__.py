"""``python -m lgd_tutorial ...`` is the ``lgd`` command (``torchrun -m lgd_tutorial train --config ...``)."""

import sys

from .cli import main

sys.exit(main())
