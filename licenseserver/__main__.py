"""`python -m licenseserver`: start the development license server."""

import sys

from licenseserver.cli import main

sys.exit(main())
