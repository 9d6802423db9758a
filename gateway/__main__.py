"""`python -m gateway` is the `edgeq` command."""

import sys

from gateway.cli import main

sys.exit(main())
