#!/usr/bin/env python3
"""Build the serverless CRUD API of the AWS console tutorial, step by step, with boto3.

    python provision.py [--config FILE] [--target local|aws] [--json]

Idempotent and resumable: run it again at any time; it changes only what differs.
"""
import sys

try:
    from crudstack.cli import exit_now, provision_main
except KeyboardInterrupt:  # Ctrl-C while Python loads boto3: nothing has been done yet
    print("Interrupted before anything was done.", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    exit_now(provision_main())
