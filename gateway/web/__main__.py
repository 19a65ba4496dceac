"""`python -m gateway.web`: serve the agent dashboard on its own."""

import sys

from gateway.web.server import main

sys.exit(main(sys.argv[1:]))
