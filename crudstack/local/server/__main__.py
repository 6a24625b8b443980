"""python -m crudstack.local.server --port 4566 --state-dir .local-aws"""

import sys

from crudstack.local.server.serve import main

sys.exit(main())
