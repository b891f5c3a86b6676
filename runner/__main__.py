"""`python -m runner`: what `scripts/run` starts after setting up the virtual environment."""

import sys

from runner.supervisor import main

sys.exit(main())
