"""``python -m helpers <stage>``: the course's command line (helpers.core.cli)."""
import sys

from helpers.core.cli import main

sys.exit(main())
