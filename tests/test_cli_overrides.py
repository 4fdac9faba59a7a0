"""The early checks every command runs on its command line before any work: which
overrides a sweep composes, Hydra's flags told apart from overrides, where configs are
looked up, and a user error as one line with exit status 2 (composition and validation
themselves: tests/test_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ssgan.cli
from ssgan.cli import (
    CONFIG_DIR,
    SearchPath,
    check_overrides,
    multirun_overrides,
    overrides_only,
    refuse_control_characters,
    search_path,
    sweep_expansions,
    user_errors,
)
from ssgan.errors import ConfigError, UserError

pytestmark = pytest.mark.unit


def test_a_sweep_is_checked_one_value_at_a_time_beside_the_others_first_values() -> None:
    assert list(sweep_expansions(["a=1,2", "b=x,y,z", "c=0"])) == [
        (["a=1", "b=x", "c=0"], None),
        (["a=2", "b=x", "c=0"], "a=2"),
        (["a=1", "b=y", "c=0"], "b=y"),
        (["a=1", "b=z", "c=0"], "b=z"),
    ]
    ranged = list(sweep_expansions(["seed=range(1,3)"]))
    assert ranged == [(["seed=1"], None), (["seed=2"], "seed=2")]


def test_hydra_flags_and_their_values_are_not_overrides() -> None:
    argv = ["-m", "--config-dir", "mine", "a=1", "--cfg", "job", "--config-name=other", "b=2",
            "-cd", "x", "--package", "model", "c=3"]  # fmt: skip
    assert overrides_only(argv) == ["a=1", "b=2", "c=3"]


def test_configs_are_looked_up_where_hydra_main_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    assert search_path(["a=1"], "config") == (SearchPath(CONFIG_DIR), "config")
    assert search_path(["-cd", "mine", "--config-name=other"], "config") == (
        SearchPath(CONFIG_DIR, (str(tmp_path / "mine"),)), "other"
    )  # fmt: skip
    # A relative --config-path is read from the entry point's folder, as hydra.main does.
    (found, _) = search_path(["--config-path=conf2"], "config")
    assert found.primary == str(Path(ssgan.cli.__file__).resolve().parent / "conf2")
    with pytest.raises(ConfigError) as refused:
        search_path(["--config-dir=nowhere"], "config")
    assert str(refused.value).startswith(
        f"--config-dir nowhere: there is no folder {tmp_path / 'nowhere'} (give the folder"
    )


def test_a_sweep_written_in_a_preset_is_expanded_and_checked_like_one_on_the_command_line(
    tmp_path: Path,
) -> None:
    """Issue 33 item 4: ``hydra.sweeper.params`` in a preset (Hydra's documented way to
    write a sweep in a config file) is swept as the basic sweeper sweeps it, and its
    values are checked before any job, as the command line's are."""
    from ssgan.config_checks import validate_train_config

    presets = tmp_path / "experiment"
    presets.mkdir()
    for name, values in (("swept", "8,16"), ("bad", "8,-3")):
        sweep = f"hydra:\n  sweeper:\n    params:\n      model.z_size: {values}\n"
        (presets / f"{name}.yaml").write_text("# @package _global_\n" + sweep)
    (presets / "seeds.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      train.seed: 1,2\n"
    )
    search = SearchPath(CONFIG_DIR, (str(tmp_path),))
    # The config's params first; a command-line line of the same key replaces it in place.
    assert multirun_overrides("config", ["experiment=swept", "train.lr=0.1,0.2"], search) == [
        "model.z_size=8,16", "experiment=swept", "train.lr=0.1,0.2"
    ]  # fmt: skip
    assert multirun_overrides("config", ["experiment=swept", "model.z_size=4"], search) == [
        "model.z_size=4", "experiment=swept"
    ]  # fmt: skip
    # A swept preset is not composed when the sweeper's params are read (Hydra leaves the
    # sweep overrides out of a multirun's config too).
    assert multirun_overrides("config", ["experiment=seeds,swept"], search) == [
        "experiment=seeds,swept"
    ]
    argv = ["-m", "--config-dir", str(tmp_path)]
    check_overrides("config", [*argv, "experiment=swept"], validate_train_config)
    with pytest.raises(ConfigError) as refused:
        check_overrides("config", [*argv, "experiment=bad"], validate_train_config)
    assert str(refused.value) == (
        "model.z_size=-3 is out of range: allowed >= 1 and <= 4096 "
        "(in sweep value 'model.z_size=-3')"
    )


@pytest.mark.parametrize("override", ["tracking.run_name=a\tb", "x=\x7f", "y=line\nline"])
def test_a_control_character_in_an_override_is_refused_by_name(override: str) -> None:
    with pytest.raises(ConfigError, match="contains a control character") as refused:
        refuse_control_characters(["a=b c", override])
    assert str(refused.value).startswith(f"override {override!r} contains")
    refuse_control_characters(["tracking.run_name=a b", "data.root=/data/é"])


def test_help_is_never_blocked_by_a_bad_override() -> None:
    def must_not_validate(cfg: object) -> None:
        raise AssertionError("help composed and validated a config")

    for flag in ("--help", "-h", "--hydra-help", "--info", "--shell-completion"):
        check_overrides("config", [flag, "model.z_sise=3", "x=\n"], must_not_validate)


def test_a_user_error_is_one_line_on_stderr_and_exit_status_2(capsys) -> None:
    with pytest.raises(SystemExit) as stopped, user_errors():
        raise UserError("data.root=/nowhere:\n   cannot create   it")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: data.root=/nowhere: cannot create it\n"


def test_an_error_line_also_goes_to_the_jobs_log_file(tmp_path: Path, capsys) -> None:
    """Hydra's job logging has a file handler (train.log): the ``error:`` line the user
    sees is written there too, and only once on the terminal."""
    import logging

    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(SystemExit) as stopped, user_errors():
            raise UserError("data.root=/nowhere cannot be created")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: data.root=/nowhere cannot be created\n"
    log = (tmp_path / "train.log").read_text()
    assert log == "error: data.root=/nowhere cannot be created\n"
