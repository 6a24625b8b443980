"""What a function is, read from moto's Lambda backend, and what one invocation gave."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crudstack.local import moto_backends
from crudstack.local.awslambda.exceptions import FunctionNotFound

LambdaClientError = moto_backends.lambda_client_error()
lambda_backends = moto_backends.backends("awslambda")
DEFAULT_ACCOUNT_ID = moto_backends.DEFAULT_ACCOUNT_ID

# AWS's limits for a synchronous invocation's request and response.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_SYNC_RESPONSE = 6 * 1024 * 1024 + 100
# The init phase may take 10 s on AWS (or the function's timeout, when that is longer).
INIT_TIMEOUT_SECONDS = 10.0
_FUNCTION_ARN = re.compile(r"^arn:[^:]+:lambda:(?P<region>[^:]+):(?P<account>\d{12}):function:")


@dataclass
class InvokeResult:
    payload: bytes
    function_error: str | None
    timed_out: bool
    throttled: bool
    duration_ms: float
    request_id: str
    log: str = ""                      # this invocation's log, START..REPORT, for LogType=Tail
    executed_version: str = "$LATEST"  # X-Amz-Executed-Version
    init_duration_ms: float | None = None  # set on a cold start
    throttle_reason: str | None = None     # TooManyRequestsException's Reason
    waited_out: bool = False               # throttled because no worker became free before the deadline


@dataclass(frozen=True)
class FunctionSpec:
    account_id: str
    region: str
    function_arn: str       # unqualified: concurrency is counted per function
    name: str
    version: str            # "$LATEST" or a published version number
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: tuple[tuple[str, str], ...]
    code_sha: str
    package_type: str
    reserved_concurrency: int | None = field(compare=False)
    role: str = ""          # the execution role: its session is the worker's credentials

    @classmethod
    def from_moto(cls, fn, account_id: str, region: str) -> "FunctionSpec":
        version = str(fn.version)
        arn = fn.function_arn if version == "$LATEST" else fn.function_arn.rsplit(":", 1)[0]
        reserved = fn.reserved_concurrency
        return cls(
            account_id=account_id, region=region, function_arn=arn, name=fn.function_name, version=version,
            handler=fn.handler or "", runtime=fn.run_time or "", timeout=int(fn.timeout or 3),
            memory_size=int(fn.memory_size or 128),
            environment=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
            code_sha=fn.code_sha_256 or "", package_type=fn.package_type or "Zip",
            reserved_concurrency=None if reserved in (None, "") else int(reserved),
            role=str(getattr(fn, "role", "") or ""),
        )

    @property
    def key(self) -> tuple:
        """Workers are interchangeable only within one key: any change starts new ones."""
        return (self.function_arn, self.version, self.code_sha, self.handler, self.runtime,
                self.timeout, self.memory_size, self.environment, self.role)

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


def find_function(name_or_arn: str, region: str, account_id: str, qualifier: str | None):
    """The function in moto's Lambda backend, or FunctionNotFound naming the ARN AWS would name."""
    arn_match = _FUNCTION_ARN.match(name_or_arn)
    if arn_match:  # an ARN names its own region and account
        region, account_id = arn_match["region"], arn_match["account"]
    try:
        return lambda_backends[account_id][region].get_function(name_or_arn, qualifier)
    except (LambdaClientError, KeyError, ValueError):
        pass
    if name_or_arn.startswith("arn:"):
        arn = name_or_arn
    else:
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        arn = f"arn:{partition}:lambda:{region}:{account_id}:function:{name_or_arn}"
    if qualifier and not arn.endswith(f":{qualifier}"):
        arn = f"{arn}:{qualifier}"
    raise FunctionNotFound(arn)
