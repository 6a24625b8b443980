"""Lambda in the local AWS: functions run in worker processes (runtime.py says how, and what each module does)."""
