"""Every error the tool means to show a user, and only those.

    CrudStackError              anything expected; printed as one clear message, no traceback
    ├── ConfigError             config.yaml is wrong; raised before any AWS call (exit 2)
    ├── LocalAwsError           the embedded local AWS could not be started or reached
    ├── ExportError             --export cannot write its files (a folder not empty, not writable) (exit 2)
    ├── AwsCallFailed           a foreign error from an AWS call (botocore's, a wait that timed out), with the
    │                           call, attempts and seconds: the run makes it a DeploymentError
    ├── DeploymentError         an AWS call failed for good; names step, resource, cause and fix
    │   └── OwnershipError      a resource has our name but not our tag: never touched
    ├── NoCredentials           --target aws found no AWS credentials anywhere botocore looks (exit 1, as AWS errors)
    ├── StackBusy               another provision or teardown kept the stack's lock past the wait (exit 5)
    ├── AdoptionError           --adopt found a console-made resource that does not fit, or several REST APIs
    │                           that could be the tutorial's: nothing was written
    └── InterruptedRun          Ctrl-C: the calls in flight answered, nothing new started; a re-run resumes (exit 130)

Foreign exceptions become these in two hops, each in one place: in the thread that made the call,
`Aws.foreign_errors` (crudstack/aws.py) turns botocore's exceptions into AwsCallFailed (the call it
was about, how many attempts over how long); where the run knows the step and the resource,
`crudstack.runner` (`translate`, `_stop`) turns that, and a worker's KeyboardInterrupt, into the rest.
"""

from __future__ import annotations


class CrudStackError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class ConfigError(CrudStackError):
    exit_code = 2

    def __init__(self, problems: list[str], source: str = "config.yaml"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not valid ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{lines}")


class LocalAwsError(CrudStackError):
    exit_code = 3


class ExportError(CrudStackError):
    exit_code = 2


class AwsCallFailed(CrudStackError):
    """`error` is the foreign exception; `operation`, `service` and `target` the thread's last call
    (None when it made none); `attempts` and `seconds` how long the AWS door kept retrying it."""

    def __init__(self, error: BaseException, *, operation: str | None = None, service: str | None = None,
                 target: str | None = None, attempts: int = 1, seconds: float = 0.0):
        self.error, self.operation, self.service, self.target = error, operation, service, target
        self.attempts, self.seconds = attempts, seconds
        super().__init__(f"{type(error).__name__}: {error}")


class DeploymentError(CrudStackError):
    def __init__(self, *, step: str, resource: str, cause: str, fix: str, code: str | None = None):
        self.step, self.resource, self.cause, self.fix, self.code = step, resource, cause, fix, code
        super().__init__(f"{step}: {resource}: {cause}\n  What to do: {fix}")


class OwnershipError(DeploymentError):
    pass


class NoCredentials(CrudStackError):
    """botocore's credential chain found nothing: no keys in the environment, no profile (AWS_PROFILE or the default
    one in ~/.aws/credentials or ~/.aws/config), no instance or container role
    (https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html). Not a bug: said in plain words."""

    FIX = ("run aws configure (or aws configure sso, then aws sso login), or set AWS_PROFILE to a profile of ~/.aws/config, "
           "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys); "
           "or use --target local, which needs no AWS account")

    def __init__(self):
        super().__init__("--target aws found no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID), no profile "
                         "(AWS_PROFILE, ~/.aws/credentials, ~/.aws/config) and no instance or container role.\n"
                         f"  What to do: {self.FIX}")


class StackBusy(CrudStackError):
    """Another provision or teardown of the stack (or of the local AWS) held its lock for all of the wait
    (crudstack/runlock.py); raised before any AWS call."""

    exit_code = 5


class AdoptionError(CrudStackError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"--adopt stopped before changing anything ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n"
                         f"{lines}")


class InterruptedRun(CrudStackError):
    exit_code = 130
