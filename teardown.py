#!/usr/bin/env python3
"""Remove exactly what provision.py created for this stack, in reverse order.

    python teardown.py [--config FILE] [--target local|aws] [--yes] [--delete-data] [--backup] [--keep-running]

A table that still holds items is kept unless --delete-data or --backup is given.
"""
import sys

from crudstack.cli import teardown_main

if __name__ == "__main__":
    sys.exit(teardown_main())
