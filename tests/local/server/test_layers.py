"""The local AWS's layers: listed once, in order, in the composition root (server/serve.py)."""

import os
import subprocess
import sys

from crudstack.local.apigateway.models import DeploymentSnapshots
from crudstack.local.apigateway.recorder import DeploymentRecorder
from crudstack.local.dynamodb.atomicity import DynamoDBItemAtomicity
from crudstack.local.dynamodb.fastpath import DirectDynamoDB
from crudstack.local.server.serve import compose, replay_layers


def _chain(app):
    found = []
    while hasattr(app, "app"):
        found.append(type(app))
        app = app.app
    return found


def test_no_dynamodb_call_passes_through_the_deployment_recorder():
    def moto(environ, start_response):
        return [b""]

    # The DynamoDB fast path answers DynamoDB calls itself: the recorder, under it, sees only the rest.
    assert _chain(compose(moto, replay_layers(DeploymentSnapshots()))) == [DynamoDBItemAtomicity, DirectDynamoDB,
                                                                            DeploymentRecorder]


def _layers_with(env_value):
    code = ("from crudstack.local.apigateway.models import DeploymentSnapshots\n"
            "from crudstack.local.server.serve import compose, replay_layers\n"
            "app = compose(lambda e, s: [b''], replay_layers(DeploymentSnapshots()))\n"
            "names = []\n"
            "while hasattr(app, 'app'):\n"
            "    names.append(type(app).__name__); app = app.app\n"
            "print(','.join(names))\n")
    env = {**os.environ, "LOCALAWS_SPEEDUPS_OFF": env_value}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_the_dynamodb_fast_path_has_a_switch():
    result = _layers_with("dynamodb_fastpath")
    assert result.stdout.strip() == "DynamoDBItemAtomicity,DeploymentRecorder", result.stderr


def test_an_unknown_switch_name_is_refused_naming_the_switches():
    result = _layers_with("dynamo_fastpath")
    assert result.returncode != 0
    assert "moto_caches, dynamodb_fastpath, read_caches" in result.stderr
