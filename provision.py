#!/usr/bin/env python3
"""Build the serverless CRUD API of the AWS console tutorial, step by step, with boto3.

    python provision.py [--config FILE] [--target local|aws] [--json]

Idempotent and resumable: run it again at any time; it changes only what differs.
"""
import sys

from crudstack.cli import provision_main

if __name__ == "__main__":
    sys.exit(provision_main())
