"""`python -m gateway` is the `callgate` command."""

import sys

from gateway.cli.main import main

sys.exit(main())
