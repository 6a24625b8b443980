"""provision --watch, one iteration at a time: what a save deploys, on moto (crudstack/watch.py)."""

from __future__ import annotations

import pytest
import yaml

from crudstack.config import Config
from crudstack.plan import Context
from crudstack.runner import Reporter, run
from crudstack.watch import FileWatch, Watch


def edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def watch_of(made, config_path, new_aws=None, provisions: list | None = None) -> Watch:
    def provision_again(config: Config) -> Context:
        ctx = Context(config=config, aws=new_aws(config), target="aws")
        run(ctx, Reporter())
        if provisions is not None:
            provisions.append(ctx)
        return ctx

    return Watch(made.ctx, config_path, provision_again, say=lambda line: None)


def test_a_handler_edit_updates_that_function_s_code_and_nothing_else(provision, config, code_dir, tmp_path, recorder):
    made = provision()
    watch = watch_of(made, tmp_path / "config-0.yaml")
    made.aws.register(*recorder.event)
    made.aws.stats.reset()
    edit(code_dir / "get_item.py", "ConsistentRead=True)", "ConsistentRead=True)  # edited")

    lines = watch.deploy({code_dir / "get_item.py"})

    assert made.mutating_calls == ["lambda.UpdateFunctionCode"]
    assert [p["FunctionName"] for p in recorder.params("UpdateFunctionCode")] == [config.function_name("GetItemFunction")]
    assert lines[0].startswith("GetItemFunction: code updated in ")
    assert lines[-1].startswith("saved lambdas/get_item.py -> 1 function updated in ")


def test_an_edit_in_common_updates_all_five_functions(provision, config, code_dir, tmp_path, recorder):
    made = provision()
    watch = watch_of(made, tmp_path / "config-0.yaml")
    made.aws.register(*recorder.event)
    made.aws.stats.reset()
    with (code_dir / "common" / "__init__.py").open("a", encoding="utf-8") as f:
        f.write("\n# edited\n")

    watch.deploy({code_dir / "common" / "__init__.py"})

    assert made.mutating_calls == ["lambda.UpdateFunctionCode"] * 5
    assert sorted(p["FunctionName"] for p in recorder.params("UpdateFunctionCode")) == sorted(
        config.function_name(base) for base in config.lambda_.functions)


def test_the_deployed_code_is_the_edited_code(provision, config, code_dir, tmp_path, aws_clients):
    made = provision()
    watch = watch_of(made, tmp_path / "config-0.yaml")
    edit(code_dir / "get_item.py", "ConsistentRead=True)", "ConsistentRead=True)  # edited")
    from crudstack.packaging import build_package

    watch.deploy({code_dir / "get_item.py"})

    found = aws_clients.awslambda.get_function(FunctionName=config.function_name("GetItemFunction"))
    assert found["Configuration"]["CodeSha256"] == build_package(code_dir, "get_item").sha256


def test_a_save_that_changes_no_package_deploys_nothing(provision, code_dir, tmp_path):
    made = provision()
    watch = watch_of(made, tmp_path / "config-0.yaml")
    (code_dir / "scratch.py").write_text("print('not part of any function')\n", encoding="utf-8")
    made.aws.stats.reset()

    lines = watch.deploy({code_dir / "scratch.py"})

    assert made.mutating_calls == []
    assert lines == ["saved lambdas/scratch.py -> no function's code changed"]


def test_a_config_save_provisions_again_and_a_bad_one_is_reported_and_kept_out(provision, settings, tmp_path, new_aws):
    made = provision()
    config_path = tmp_path / "config-0.yaml"
    provisions: list[Context] = []
    watch = watch_of(made, config_path, new_aws, provisions)

    config_path.write_text("stack: [unclosed\n", encoding="utf-8")
    bad = watch.deploy({config_path})
    assert bad[0].startswith("error: ") and "not valid" in bad[0]
    assert "still watching" in bad[-1] and provisions == [] and watch.ctx is made.ctx

    settings["lambda"]["memory_mb"] = 256
    config_path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    good = watch.deploy({config_path})
    assert good[-1].startswith("saved config-0.yaml -> provisioned again in ")
    assert watch.ctx is provisions[0]
    assert sorted(provisions[0].aws.stats.mutating_calls()) == ["lambda.UpdateFunctionConfiguration"] * 5


def test_a_link_out_of_code_dir_saved_during_a_watch_is_refused_and_nothing_is_deployed(provision, code_dir, tmp_path):
    made = provision()
    watch = watch_of(made, tmp_path / "config-0.yaml")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n", encoding="utf-8")
    (code_dir / "common" / "leak.txt").symlink_to(secret)
    made.aws.stats.reset()

    lines = watch.deploy({code_dir / "common" / "leak.txt"})

    assert made.mutating_calls == []
    assert lines[0].startswith("error: ") and f"common/leak.txt is a link to the file {secret}" in lines[0]
    assert lines[-1].endswith("nothing deployed (still watching)")


def test_a_code_update_during_a_watch_takes_the_run_lock_and_deploys_nothing_while_another_run_holds_it(
        provision, code_dir, tmp_path):
    from crudstack.runlock import acquire

    made = provision()
    watch = watch_of(made, tmp_path / "config-0.yaml")
    path = tmp_path / "state" / "local-aws.lock"
    watch.lock = lambda config: acquire(path, what="the local AWS", stack=config.stack, wait_s=0, say=lambda line: None)
    edit(code_dir / "get_item.py", "ConsistentRead=True)", "ConsistentRead=True)  # edited")
    held = acquire(path, what="the local AWS", stack="demo", wait_s=0)   # a teardown in flight, say
    made.aws.stats.reset()
    try:
        refused = watch.deploy({code_dir / "get_item.py"})
    finally:
        held.release()
    assert made.mutating_calls == []
    assert refused[0].startswith("error: ") and f"still holds {path} after 0 s" in refused[0]

    assert watch.deploy({code_dir / "get_item.py"})[-1].startswith("saved lambdas/get_item.py -> 1 function updated in ")
    assert made.mutating_calls == ["lambda.UpdateFunctionCode"]


def test_the_file_watch_reports_content_changes_once_quiet_and_ignores_a_touch(code_dir, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text("stack: demo\n", encoding="utf-8")
    ticks = iter(range(10_000))
    files = FileWatch(code_dir, config_path, sleep=lambda s: None, clock=lambda: next(ticks) * 0.05)
    assert files.poll() == set()

    handler = code_dir / "get_item.py"
    text = handler.read_text(encoding="utf-8")
    handler.write_text(text, encoding="utf-8")           # saved without an edit: a new mtime, the same bytes
    assert files.poll() == set()

    handler.write_text(text + "\n# edited\n", encoding="utf-8")
    (code_dir / "common" / "new_helper.py").write_text("X = 1\n", encoding="utf-8")
    assert files.poll() == {handler, code_dir / "common" / "new_helper.py"}
    assert files.poll() == set()


@pytest.mark.parametrize("flag", ["--plan", "--json", "--quiet"])
def test_watch_is_refused_with_flags_that_cannot_show_each_save(flag, capsys):
    from crudstack.cli import provision_main

    with pytest.raises(SystemExit) as exited:
        provision_main(["--watch", flag])

    assert exited.value.code == 2
    assert f"--watch keeps provisioning each save and reports it line by line: it cannot be combined with {flag}" \
        in capsys.readouterr().err


@pytest.mark.parametrize("modes", [["--watch", "--walkthrough"], ["--deployer-policy", "--export", "sam", "out"],
                                   ["--export", "sam", "out", "--walkthrough"], ["--deployer-policy", "--watch"]])
def test_two_modes_of_the_command_at_once_are_refused_naming_both(modes, capsys):
    from crudstack.cli import provision_main

    with pytest.raises(SystemExit) as exited:
        provision_main(modes)

    shown = [word for word in modes if word.startswith("--")]
    assert exited.value.code == 2
    assert f"argument {shown[1]}: not allowed with argument {shown[0]}" in capsys.readouterr().err
