"""python -m crudstack.local outbox | status | wipe | denials (see crudstack.local.commands)."""
import sys

from crudstack.local.commands import main

if __name__ == "__main__":
    sys.exit(main())
