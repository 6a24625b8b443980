"""python -m crudstack.local.server --port 4566 --state-dir .local-aws"""

import os
import sys

from crudstack.local.server.serve import main

code = main()
# serve() has closed everything and saved the state; what is left is the interpreter tearing down moto's
# backends object by object, seconds on a loaded machine, while `teardown.py` waits for this process to go.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
