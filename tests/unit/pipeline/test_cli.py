"""`genline pipeline compile|run` through click's runner."""

from __future__ import annotations

from click.testing import CliRunner

from genline.cli import cli


def test_compile_check_passes_on_the_committed_yaml():
    result = CliRunner().invoke(cli, ["pipeline", "compile", "--check"])
    assert result.exit_code == 0, result.output


def test_compile_check_fails_on_a_stale_yaml(tmp_path, monkeypatch):
    import pipelines.training_pipeline as tp

    stale = tmp_path / "stale.yaml"
    stale.write_text("# an old pipeline\n")
    monkeypatch.setattr(tp, "compiled_path", lambda target="cpu": stale)
    result = CliRunner().invoke(cli, ["pipeline", "compile", "--check"])
    assert result.exit_code != 0 and "out of date" in result.output


def test_run_refuses_bad_parameters_before_running(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    monkeypatch.delenv("KFP_HOST", raising=False)
    result = CliRunner().invoke(cli, ["pipeline", "run", "--world-size", "0"])
    assert result.exit_code == 1 and "world_size must be >= 1" in result.output
    assert not (tmp_path / "kfp").exists()
