"""moto's configuration for the local AWS: AWS's managed policies in IAM, and never Docker.

moto leaves out AWS managed policies unless asked, so the tutorial's AmazonDynamoDBFullAccess and
CloudWatchFullAccess (role.tutorial_managed_policies) would not exist; loading them costs about
0.05 s when IAM is first used.

moto runs Lambda (and Batch) code in Docker containers; every such path goes through
DockerModel.docker_client. Here no container is ever wanted: functions run in the local Lambda
runtime (crudstack/local/awslambda/), which reads them from moto's default Lambda backend
(moto.awslambda.models.lambda_backends). moto's `lambda: {use_docker: False}` config would move
functions to another backend (moto.awslambda_simple) where the runtime would not see them, so
instead the Docker client itself is made unavailable: a path that would start a container fails at
once with an AttributeError, without contacting Docker. Attribute walkers such as
/moto-api/data.json skip the attribute instead of failing.

moto's server runs flask-cors over every answer (moto/moto_server/werkzeug_app.py, unless
MOTO_DISABLE_GLOBAL_CORS is set before it is imported), so any web page could read the AWS APIs'
answers; AWS's API endpoints send no CORS headers. It is switched off here, before any app is built
(crudstack/local/server/guard.py also strips what is left).
"""

from __future__ import annotations

from typing import Any

from crudstack.local.patches.core import MotoChanged, replace


def install() -> None:
    from moto import settings
    from moto.utilities.docker_utilities import DockerModel

    settings.default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True
    from moto.moto_server import werkzeug_app

    if not hasattr(werkzeug_app, "DISABLE_GLOBAL_CORS"):
        raise MotoChanged("moto.moto_server.werkzeug_app.DISABLE_GLOBAL_CORS is gone: check how moto adds CORS now")
    werkzeug_app.DISABLE_GLOBAL_CORS = True

    def no_docker(_model: Any) -> Any:
        raise AttributeError("the local AWS runs without Docker: Lambda functions run in crudstack.local.awslambda")

    replace(DockerModel, "docker_client", property(no_docker))
