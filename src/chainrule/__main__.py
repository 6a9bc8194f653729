"""`python -m chainrule ...` runs the same command line as the `chainrule` console script."""

import sys

from chainrule.cli import main

sys.exit(main())
