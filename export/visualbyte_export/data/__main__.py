"""``python -m visualbyte_export.data ARGS``: the same as ``python -m visualbyte_export data``."""

import sys

from .cli import main

sys.exit(main())
