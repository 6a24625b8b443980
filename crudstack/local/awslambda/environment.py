"""The environment a worker process and the function in it see: AWS's Lambda variables, the
function's own, the credentials of its execution role's session (crudstack/local/iam/sessions.py)
and the local AWS's endpoint. Nothing else of the server's environment leaks in, as on AWS."""

from __future__ import annotations

import os

from crudstack.local.awslambda.models import FunctionSpec


def function_environment(spec: FunctionSpec, log_stream: str, endpoint_url: str,
                         credentials: dict[str, str] | None = None) -> dict[str, str]:
    """credentials: the role session's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN."""
    env = dict(spec.environment)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "_HANDLER": spec.handler,
    })
    env.update(forced_environment(endpoint_url))
    if credentials:
        env.update(credentials)
    return env


def forced_environment(endpoint_url: str) -> dict[str, str]:
    # The local endpoint and credentials the local AWS issued (these fake ones until the function's
    # role session replaces them) win over anything the function sets: a function run locally must
    # never reach (or sign for) real AWS. The fake ones are no key the local AWS knows: a call signed
    # with them is refused (crudstack/local/iam/models.py), so they grant nothing.
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def worker_base_environment(endpoint_url: str) -> dict[str, str]:
    """What every worker starts with; the function's own variables are added by the
    init frame. Nothing else of the server's environment leaks in, as on AWS."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC"}
    if "LD_LIBRARY_PATH" in os.environ:
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    env.update(forced_environment(endpoint_url))
    return env

