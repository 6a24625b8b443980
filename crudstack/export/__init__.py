"""Tutorial step 8, "Infrastructure as Code": the stack config.yaml describes, written as a template to deploy
with other tools, instead of built with boto3. No AWS call is made.

    python provision.py --export sam DIR         DIR/template.yaml + DIR/build/<Function>.zip   (crudstack/export/sam.py)
    python provision.py --export terraform DIR   DIR/main.tf, variables.tf, outputs.tf + build/  (crudstack/export/terraform.py)

Both are drawn from one model (crudstack/export/model.py), itself drawn from config.yaml through the steps'
desired-state functions: a template cannot drift from what provision.py builds.
"""

from __future__ import annotations

from pathlib import Path

from crudstack.config import Config
from crudstack.errors import ExportError
from crudstack.export import sam, terraform
from crudstack.export.model import build_model, write_packages

FORMATS = {"sam": sam.write, "terraform": terraform.write}


def deploy_commands(kind: str, folder: str) -> list[str]:
    """What a user runs next; the export itself never deploys."""
    if kind == "sam":
        return [f"cd {folder} && sam deploy --guided --capabilities CAPABILITY_NAMED_IAM",
                "(or: aws cloudformation package --template-file template.yaml --s3-bucket BUCKET --output-template-file "
                "packaged.yaml && aws cloudformation deploy --template-file packaged.yaml --stack-name STACK "
                "--capabilities CAPABILITY_NAMED_IAM)"]
    return [f"cd {folder} && terraform init && terraform validate && terraform apply"]


def export(config: Config, kind: str, folder: Path, *, force: bool = False) -> list[Path]:
    """Write the export into folder; refuse a folder that holds anything unless force. Returns the files written."""
    if kind not in FORMATS:
        raise ExportError(f"--export {kind}: unknown format; use one of: {', '.join(FORMATS)}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"--export {kind} {folder}: this is a file, not a folder; name a new or empty folder")
    if folder.is_dir() and not force:
        present = sorted(p.name for p in folder.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
            raise ExportError(f"--export {kind} {folder}: the folder is not empty (it holds {shown}); nothing was written. "
                              f"Name a new or empty folder, or add --force to overwrite the files the export writes "
                              f"(other files there are left as they are)")
    model = build_model(config)  # before anything is written: a problem leaves the folder untouched
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return FORMATS[kind](model, folder) + write_packages(model, folder)
    except OSError as exc:
        raise ExportError(f"--export {kind} {folder}: cannot write there ({exc.strerror or exc}); "
                          f"name a folder you may write to") from None
