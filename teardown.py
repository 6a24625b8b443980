#!/usr/bin/env python3
"""Remove exactly what provision.py created for this stack, in reverse order.

    python teardown.py [--config FILE] [--target local|aws] [--yes] [--delete-data] [--backup] [--keep-running]

A table that still holds items is kept unless --delete-data or --backup is given.
"""
import sys

try:
    from crudstack.cli import exit_now, teardown_main
except KeyboardInterrupt:  # Ctrl-C while Python loads boto3: nothing has been done yet
    print("Interrupted before anything was done.", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    exit_now(teardown_main())
