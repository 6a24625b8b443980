"""Lambda in the local AWS: functions run in worker processes, as AWS Lambda runs them.

    runtime.py       LambdaRuntime: picks the worker for an invocation (warm pools per function version
                     and configuration, timeouts, crashes, cold starts)
    concurrency.py   how many run at once: the warm pool's size, reserved concurrency, the queue
    models.py        FunctionSpec (what a function is, read from moto), InvokeResult, find_function
    process.py       one worker process and the pipes to it, seen from here
    protocol.py      the frames on those pipes
    worker.py        the worker process itself (`python -m crudstack.local.awslambda.worker`)
    environment.py   what a worker and its function see in os.environ
    logs.py          /aws/lambda/<name> log streams, START/END/REPORT, and the telemetry queue
    responses.py     the Lambda Invoke API over HTTP
    permissions.py   a function's resource-based policy, as API Gateway's call meets it
    exceptions.py    the package's exception tree

Each worker runs with its function role's STS session (crudstack/local/iam/sessions.py).
"""
