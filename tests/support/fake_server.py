"""`python -m tests.support.fake_server ARGS`: the real crudstack.local.server with tests.support.fakes.FakeRuntime
in place of the Lambda runtime. Takes the server's own arguments."""

import os
import sys

from crudstack.local.server import serve as server
from crudstack.local.state import durable
from tests.support.fakes import FakeRuntime, fake_invoke_api_app


def main(argv: list[str] | None = None) -> int:
    options = server.parse_args(argv)
    if os.environ.get("FAKE_SERVER_SNAPSHOT_ONLY_AT_STOP"):
        # A test of the journal's replay: no snapshot from the replay budget (measured in wall time, so a
        # loaded machine reaches it after a few writes) or a quiet spell, only at a clean stop.
        durable.DurableState.__init__.__kwdefaults__.update(replay_budget_s=float("inf"), idle_s=float("inf"))

    def make_runtime(endpoint_url, max_concurrency, log, telemetry=None):
        runtime = FakeRuntime(endpoint_url=endpoint_url, max_concurrency=max_concurrency, log=log,
                              state_dir=options.state_dir)
        return runtime, fake_invoke_api_app(runtime)

    return server.serve(options, make_runtime=make_runtime)


if __name__ == "__main__":
    sys.exit(main())
