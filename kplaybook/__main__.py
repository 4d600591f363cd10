"""`python -m kplaybook` runs the `kplaybook` command."""

import sys

from kplaybook.cli import main

sys.exit(main())
