"""`pgmath check …` and the pytest plugin, run the way a user runs them."""

from __future__ import annotations

import textwrap

import pytest

from pgmath.cli import main

pytest_plugins = ["pytester"]

USER_MODULE = textwrap.dedent(
    """
    import pgmath, pgmath.llm
    from pgmath.testing.mutants import by_name

    def good_gae(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        return pgmath.gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)

    bad_sb3 = by_name("sb3_episode_starts_wrong_step").fn
    bad_k3 = by_name("kl_k3_sign_error").fn

    def good_k2(log_probs, ref_log_probs):
        return pgmath.kl_estimate(log_probs, ref_log_probs, "k2")

    def good_grpo(rewards):
        return pgmath.llm.group_advantages(rewards)

    def good_ppo(log_probs, old_log_probs, advantages, *, clip_eps, mask):
        return pgmath.ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=clip_eps, mask=mask)

    def good_returns(rewards, terminated, truncated, *, gamma):
        return pgmath.discounted_returns(rewards, terminated, truncated, gamma=gamma)
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_trainer.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_trainer"


def test_cli_pass_and_fail(user_module, capsys):
    assert main(["check", "gae", f"{user_module}:good_gae", "--max-examples", "20"]) == 0
    assert "agrees with pgmath.gae_reference" in capsys.readouterr().out
    assert main(["check", "gae", f"{user_module}:bad_sb3", "--convention", "sb3", "--max-examples", "30"]) == 1
    err = capsys.readouterr().err
    assert "disagrees with pgmath.gae_reference" in err and "t=" in err and "FAILED" in err
    assert main(["check", "kl", f"{user_module}:bad_k3", "--estimator", "k3", "--max-examples", "20"]) == 1
    assert "k3" in capsys.readouterr().err


def test_cli_every_kind_and_option(user_module, capsys):
    m = user_module
    assert main(["check", "kl", f"{m}:good_k2", "--estimator", "k2", "--max-examples", "10"]) == 0
    assert main(["check", "group-advantages", f"{m}:good_grpo", "--max-examples", "10"]) == 0
    assert main(["check", "ppo-loss", f"{m}:good_ppo", "--clip-eps", "0.2", "--max-examples", "10"]) == 0
    assert main(["check", "returns", f"{m}:good_returns", "--no-bootstrap", "--max-examples", "10"]) == 0
    assert main(["check", "gae", f"{m}:good_gae", "--dtype", "float32", "--max-examples", "10",
                 "--no-edge-cases"]) == 0
    capsys.readouterr()


def test_cli_bad_target_and_arguments(user_module, capsys):
    assert main(["check", "gae", "no_such_module:f"]) == 2
    assert main(["check", "gae", f"{user_module}:missing"]) == 2
    assert main(["check", "gae", "not-a-spec"]) == 2
    assert main(["check", "gae", f"{user_module}:good_gae", "--convention", "openai"]) == 2
    assert "cannot load" in capsys.readouterr().err


PLUGIN_TEST = textwrap.dedent(
    """
    import pgmath
    from pgmath.testing.mutants import by_name

    gae_no_truncation_bootstrap = by_name("gae_no_truncation_bootstrap").fn

    def test_mine(check_gae):
        report = check_gae(pgmath.gae)
        assert report.examples == 15

    def test_bug(check_gae):
        check_gae(gae_no_truncation_bootstrap)

    def test_fixtures(pgmath_checks, pgmath_mutants, check_returns, check_ppo_loss,
                      check_kl_estimator, check_group_advantages):
        assert len(pgmath_mutants) >= 20 and pgmath_checks.max_examples == 15
    """
)


def test_pytest_plugin_fixtures(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # works before and after registration
    pytester.makepyfile(test_user=PLUGIN_TEST)
    result = pytester.runpytest("-p", "pgmath.testing.plugin", "--pgmath-max-examples", "15", "-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*the episode was truncated*"])


def test_pytest_plugin_ini_setting(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\npgmath_max_examples = 15\npgmath_seed = 3\n")
    pytester.makepyfile(test_user=PLUGIN_TEST)
    result = pytester.runpytest("-p", "pgmath.testing.plugin", "-q")
    result.assert_outcomes(passed=2, failed=1)
