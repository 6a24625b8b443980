"""Fault injection, a dev option: make a share of AWS calls fail the way AWS fails, reproducibly.

    python provision.py --chaos 0.2 --chaos-seed 7          # 20% of calls fail, the same ones every time
    python provision.py --chaos 1 --chaos-faults access-denied --chaos-calls CreateRole
    CRUDSTACK_CHAOS=0.2 CRUDSTACK_CHAOS_SEED=7 python teardown.py --yes   # the same, from the environment

Each fault is shaped as botocore raises it for that service, so the code under test cannot tell
it from the real thing (see FAULTS). It is a botocore event hook on every client of one `Aws`:
`before-call` answers in AWS's place (the request never leaves), and for a lost answer
`after-call` raises once the request has gone through (AWS did the work, we never hear of it).

Whether a call fails is decided from (seed, operation, how many calls of that operation came
before), not from one shared random stream: the same seed fails the same calls of each kind even
when another kind's calls come in a different order (a retry, a different plan).
"""

from __future__ import annotations

import difflib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import botocore.exceptions
import botocore.session
from botocore.awsrequest import AWSResponse

from crudstack.errors import ConfigError

# The services crudstack calls: --chaos-calls names are checked against their operations.
SERVICES = ("dynamodb", "iam", "lambda", "apigateway", "logs", "sns", "cloudwatch", "sts")
INJECTED = " (injected by --chaos)"

# service -> (code, HTTP status, message), as each service answers.
THROTTLING = {
    "dynamodb": ("ThrottlingException", 400, "Rate of requests exceeds the allowed throughput."),
    "iam": ("Throttling", 400, "Rate exceeded"),
    "lambda": ("TooManyRequestsException", 429, "Rate exceeded"),
    "apigateway": ("TooManyRequestsException", 429, "Too Many Requests"),
    "logs": ("ThrottlingException", 400, "Rate exceeded"),
    "sns": ("Throttled", 429, "Rate exceeded"),   # botocore's sns model: ThrottledException, code Throttled
    "cloudwatch": ("Throttling", 400, "Rate exceeded"),
    "sts": ("Throttling", 400, "Rate exceeded"),
}
SERVER_ERROR = {
    "dynamodb": ("InternalServerError", 500, "Internal server error"),
    "iam": ("ServiceFailure", 500, "Request processing has failed due to some unknown error, exception or failure."),
    "lambda": ("ServiceException", 500, "The AWS Lambda service encountered an internal error."),
    "apigateway": ("ServiceUnavailableException", 503, "Service Unavailable"),
    "logs": ("ServiceUnavailableException", 500, "The service cannot complete the request."),
    "sns": ("InternalError", 500, "Internal Error"),
    "cloudwatch": ("InternalServiceError", 500, "Internal service error"),
    "sts": ("InternalFailure", 500, "An internal error occurred."),
}
UNAVAILABLE = ("ServiceUnavailable", 503, "Service Unavailable")  # what a load balancer in front answers
ACCESS_DENIED = {
    "dynamodb": ("AccessDeniedException", 400),
    "iam": ("AccessDenied", 403),
    "lambda": ("AccessDeniedException", 403),
    "apigateway": ("AccessDeniedException", 403),
    "logs": ("AccessDeniedException", 400),
    "sns": ("AuthorizationError", 403),
    "cloudwatch": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
}
ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
# Lambda calls that change a function, refused while an earlier update of it is still running.
CHANGES_A_FUNCTION = frozenset({"UpdateFunctionCode", "UpdateFunctionConfiguration", "AddPermission", "RemovePermission",
                                "PublishVersion", "PutFunctionConcurrency", "DeleteFunctionConcurrency"})
# Lambda calls that name a role, refused while IAM has not yet propagated it.
NAMES_A_ROLE = frozenset({"CreateFunction", "UpdateFunctionConfiguration"})


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    transient: bool = True
    applies: Callable[[str, str], bool] = lambda service, operation: True


FAULTS = {f.name: f for f in (
    Fault("throttling", "ThrottlingException / Throttling (400), TooManyRequestsException (429), as each service names it"),
    Fault("server-error", "the service's own 500 (InternalFailure, ServiceException, ...) or a 503 ServiceUnavailable"),
    Fault("connection-refused", "EndpointConnectionError: the request never left"),
    Fault("connection-reset", "ConnectionClosedError: half the time after AWS did the work (its answer is lost)"),
    Fault("read-timeout", "ReadTimeoutError after AWS did the work: the answer is lost"),
    Fault("update-in-progress", 'Lambda ResourceConflictException "An update is in progress" (calls that change a function)',
          applies=lambda service, operation: service == "lambda" and operation in CHANGES_A_FUNCTION),
    Fault("role-propagation", f'Lambda InvalidParameterValueException "{ROLE_NOT_ASSUMABLE}"',
          applies=lambda service, operation: service == "lambda" and operation in NAMES_A_ROLE),
    Fault("access-denied", "AccessDenied(Exception) / AuthorizationError (403): permanent, never retried", transient=False),
)}
DEFAULT_FAULTS = tuple(name for name, fault in FAULTS.items() if fault.transient)


@dataclass(frozen=True)
class ChaosSpec:
    rate: float
    seed: int
    faults: tuple[str, ...] = DEFAULT_FAULTS
    calls: frozenset[str] | None = None    # operation names (CreateRole); None: every call

    def describe(self) -> str:
        where = f" of {', '.join(sorted(self.calls))}" if self.calls else ""
        return f"{self.rate:.0%} of AWS calls{where} fail on purpose (seed {self.seed}; faults: {', '.join(self.faults)})"


def parse_spec(rate: str | None, seed: str | None = None, faults: str | None = None, calls: str | None = None,
               *, environ: Mapping[str, str] | None = None, new_seed: Callable[[], int] | None = None) -> ChaosSpec | None:
    """--chaos options (each falling back to its CRUDSTACK_CHAOS* variable) -> a spec, or None when off.

    Every problem is reported at once, naming the option, what was found and what is expected.
    """
    env = environ or {}
    rate = rate if rate is not None else env.get("CRUDSTACK_CHAOS")
    seed = seed if seed is not None else env.get("CRUDSTACK_CHAOS_SEED")
    faults = faults if faults is not None else env.get("CRUDSTACK_CHAOS_FAULTS")
    calls = calls if calls is not None else env.get("CRUDSTACK_CHAOS_CALLS")
    if rate in (None, ""):
        extras = [name for name, value in (("--chaos-seed", seed), ("--chaos-faults", faults), ("--chaos-calls", calls)) if value]
        if extras:
            raise ConfigError([f"{', '.join(extras)}: given without --chaos RATE; add e.g. --chaos 0.2"], "arguments")
        return None
    problems = []
    try:
        share = float(rate)
        if not 0 < share <= 1:
            raise ValueError
    except ValueError:
        problems.append(f"--chaos: found {rate!r}, expected the share of AWS calls to fail, a number above 0 and at most 1 (e.g. 0.2)")
        share = 0.0
    number = 0
    if seed not in (None, ""):
        try:
            number = int(seed)
        except ValueError:
            problems.append(f"--chaos-seed: found {seed!r}, expected a whole number (e.g. 7)")
    else:
        number = (new_seed or (lambda: random.SystemRandom().randrange(1, 1_000_000)))()
    chosen = DEFAULT_FAULTS
    if faults:
        chosen = tuple(dict.fromkeys(f.strip() for f in faults.split(",") if f.strip()))
        for name in chosen:
            if name not in FAULTS:
                hint = difflib.get_close_matches(name, FAULTS, n=1)
                problems.append(f"--chaos-faults: unknown fault {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                                + f"; expected some of: {', '.join(FAULTS)}")
    operations = None
    if calls:
        operations, unknown = _operations([c.strip() for c in calls.split(",") if c.strip()])
        for name, hint in unknown:
            problems.append(f"--chaos-calls: {name!r} is not an operation of {', '.join(SERVICES)}"
                            + (f"; did you mean {hint!r}?" if hint else "") + " (e.g. CreateRole or create_role)")
    if problems:
        raise ConfigError(problems, "arguments")
    return ChaosSpec(rate=share, seed=number, faults=chosen, calls=operations)


def _operations(names: list[str]) -> tuple[frozenset[str], list[tuple[str, str | None]]]:
    """Operation names as botocore's models spell them (CreateRole), from CreateRole or create_role."""
    session = botocore.session.get_session()
    known: dict[str, str] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            known[operation.lower()] = operation
            known[botocore.xform_name(operation)] = operation
    found, unknown = set(), []
    for name in names:
        operation = known.get(name) or known.get(name.lower())
        if operation:
            found.add(operation)
        else:
            hint = difflib.get_close_matches(name, [k for k in known if k[0].isupper() or "_" in k], n=1)
            unknown.append((name, known[hint[0]] if hint else None))
    return frozenset(found), unknown


@dataclass
class Injection:
    service: str
    operation: str
    nth: int              # which call of this operation (1-based)
    fault: str
    answer_lost: bool     # True: AWS did the work and the answer was dropped


@dataclass
class Chaos:
    """The hook: attach(aws) once; `injected` lists every fault made, in order."""

    spec: ChaosSpec
    injected: list[Injection] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)     # operation -> calls seen (the chosen ones only)

    def attach(self, aws) -> "Chaos":
        aws.register("before-parameter-build", self._remember_params)
        aws.register("before-call", self._before_call)
        aws.register("after-call", self._after_call)
        return self

    @property
    def by_fault(self) -> Counter:
        return Counter(i.fault for i in self.injected)

    def summary(self) -> dict[str, Any]:
        return {"rate": self.spec.rate, "seed": self.spec.seed, "faults": list(self.spec.faults),
                "calls": sum(self.calls.values()), "injected": len(self.injected), "by_fault": dict(sorted(self.by_fault.items())),
                "answers_lost": sum(1 for i in self.injected if i.answer_lost)}

    def summary_line(self) -> str:
        kinds = ", ".join(f"{n} {name}" for name, n in sorted(self.by_fault.items())) or "none"
        return (f"Chaos: {len(self.injected)} of {sum(self.calls.values())} AWS calls failed on purpose ({kinds}); "
                f"seed {self.spec.seed}: --chaos {self.spec.rate:g} --chaos-seed {self.spec.seed} repeats them.")

    # -- the decision ----------------------------------------------------------------------------
    def decide(self, service: str, operation: str) -> tuple[str, bool] | None:
        """(fault, answer_lost) for the next call of operation, or None; counts the call.

        A lost answer is made (and listed in `injected`) only if AWS accepted the call."""
        if self.spec.calls is not None and operation not in self.spec.calls:
            return None
        self.calls[operation] += 1
        nth = self.calls[operation]
        rng = random.Random(f"{self.spec.seed}:{operation}:{nth}")
        if rng.random() >= self.spec.rate:
            return None
        kinds = [name for name in self.spec.faults if FAULTS[name].applies(service, operation)]
        if not kinds:
            return None
        fault = rng.choice(kinds)
        answer_lost = fault == "read-timeout" or (fault == "connection-reset" and rng.random() < 0.5)
        return fault, answer_lost

    # -- botocore hooks --------------------------------------------------------------------------
    def _remember_params(self, params, context, **_):
        context["crudstack_params"] = dict(params)

    def _before_call(self, model, params, context, **_):
        service = model.service_model.service_name
        decided = self.decide(service, model.name)
        if decided is None:
            return None
        fault, answer_lost = decided
        url = params.get("url") or model.service_model.endpoint_prefix
        injection = Injection(service, model.name, self.calls[model.name], fault, answer_lost)
        if answer_lost:
            context["crudstack_chaos_lost"] = (injection, url)
            return None
        self.injected.append(injection)
        if fault == "connection-refused":
            raise botocore.exceptions.EndpointConnectionError(endpoint_url=url, error="[Errno 111] Connection refused" + INJECTED)
        if fault == "connection-reset":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=url)
        rng = random.Random(f"{self.spec.seed}:{model.name}:{self.calls[model.name]}:shape")
        return client_error(*self._shape(fault, service, model, context.get("crudstack_params") or {}, rng))

    def _after_call(self, http_response, context, **_):
        lost = context.pop("crudstack_chaos_lost", None)
        if lost is None or getattr(http_response, "status_code", 500) >= 300:
            return  # AWS itself refused the call: that answer stands
        injection, url = lost
        self.injected.append(injection)
        if injection.fault == "read-timeout":
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=url)
        raise botocore.exceptions.ConnectionClosedError(endpoint_url=url)

    def _shape(self, fault: str, service: str, model, params: dict, rng: random.Random) -> tuple[str, int, str]:
        if fault == "throttling":
            return THROTTLING.get(service, THROTTLING["sts"])
        if fault == "server-error":
            return UNAVAILABLE if rng.random() < 0.3 else SERVER_ERROR.get(service, SERVER_ERROR["sts"])
        if fault == "update-in-progress":
            function = params.get("FunctionName", "function")
            return ("ResourceConflictException", 409,
                    f"The operation cannot be performed at this time. An update is in progress for resource: {function}")
        if fault == "role-propagation":
            return "InvalidParameterValueException", 400, ROLE_NOT_ASSUMABLE
        code, status = ACCESS_DENIED.get(service, ("AccessDenied", 403))
        action = f"apigateway:{model.http.get('method', 'POST')}" if service == "apigateway" else f"{service}:{model.name}"
        return code, status, f"User: arn:aws:iam::000000000000:user/chaos is not authorized to perform: {action}"


def client_error(code: str, status: int, message: str):
    """A before-call answer: botocore raises it as the service's modelled ClientError (e.g. iam's EntityAlreadyExists)."""
    response = AWSResponse("https://chaos.invalid/", status, {}, None)
    parsed = {"Error": {"Code": code, "Message": message + INJECTED},
              "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
    return response, parsed
