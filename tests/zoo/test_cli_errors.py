"""The ``dgm`` command line's errors (issue 16, cases 7 and 8): every option checked as it is
read, and every error one ``error:`` line plus a ``hint:`` line with exit status 2 — never a
traceback (unless ``--debug``). A hypothesis test feeds random argument strings to the
``dgm eval`` / ``dgm train`` parsers."""
from __future__ import annotations

import argparse
import contextlib
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.cli import build_parser, main

PARSER = build_parser()


def _subparser(name: str) -> argparse.ArgumentParser:
    action = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


FLAGS = {name: [s for a in _subparser(name)._actions for s in a.option_strings
                if s not in ("-h", "--help")] for name in ("eval", "train")}
VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "8", "0.5", "nan", "inf", "-inf", "1e400", "-0",
                     "1e-300", "", ",", "0,nan", "0,0.1", "first,bogus", "e2e-sum,bpda", "last",
                     "avg", "bogus", "fashion-mnist", "cifar10", "x=y", "a:b=c", "--", "-"]),
    st.text(max_size=12), st.integers(-10 ** 20, 10 ** 20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr))


def _tokens(command: str):
    flag = st.sampled_from(FLAGS[command])
    return st.lists(st.one_of(flag, VALUES, st.tuples(flag, VALUES).map(list)), max_size=8)


def _flatten(items) -> list[str]:
    out = []
    for item in items:
        out += item if isinstance(item, list) else [item]
    return out


@pytest.mark.parametrize("command", ["eval", "train"])
@settings(max_examples=300)
@given(data=st.data())
def test_random_arguments_never_raise_a_traceback(command, data):
    """Parsing either succeeds, or exits with argparse's status 2 and its one-line error."""
    argv = [command] + _flatten(data.draw(_tokens(command)))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = PARSER.parse_args(argv)
    except SystemExit as exit:
        assert exit.code == 2, argv
        err = stderr.getvalue()
        assert "Traceback" not in err and re.search(r"^dgm( \w+)?: error: \S", err, re.M), \
            (argv, err)
        return
    for name, value in vars(args).items():   # what got through is in range
        if isinstance(value, float):
            assert value == value, (argv, name)                       # never NaN
            assert value != float("inf") or name == "tau2", (argv, name)


@pytest.mark.parametrize("argv, match", [
    (["eval", "--out", "o", "--eps", "8"], "--eps.*in \\[0, 1\\]"),
    (["eval", "--out", "o", "--eps", "inf"], "--eps"),
    (["eval", "--out", "o", "--eps", "nan"], "--eps"),
    (["eval", "--out", "o", "--cascade", "bogus"], "--cascade: unknown 'bogus'"),
    (["eval", "--out", "o", "--readouts", "bogus"], "--readouts: unknown"),
    (["eval", "--out", "o", "--threads", "0"], "--threads"),
    (["eval", "--out", "o", "--strip-n", "0"], "--strip-n"),
    (["eval", "--out", "o", "--resume", "--overwrite"], "not allowed with"),
    (["train", "fashion-mnist", "--epochs", "0"], "--epochs"),
    (["train", "fashion-mnist", "--limit-train", "-1"], "--limit-train"),
    (["train", "fashion-mnist", "--lr", "nan"], "--lr"),
    (["train", "fashion-mnist", "--val-size", "0"], "--val-size"),
    (["train", "fashion-mnist", "--allow-change", "bogus"], "--allow-change: unknown"),
])
def test_bad_values_are_refused_when_read(argv, match, capsys):
    """case 7: these ran (help says [0, 1]; --cascade bogus, --threads 0 were ignored; --epochs
    0 ran a step; --limit-train -1 meant "all but one")."""
    with pytest.raises(SystemExit) as exit:
        PARSER.parse_args(argv)
    assert exit.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def _run(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_errors_are_one_line_with_a_hint_and_status_2(tmp_path, capsys):
    """case 8 (and 1, 2): wrong paths were tracebacks or silent substitutions (exit 0); the
    same line and hint from every subcommand."""
    out = str(tmp_path / "out")
    cases = [
        (["eval", "--data-dir", str(tmp_path / "no" / "such"), "--out", out, "--untrained",
          "--n-examples", "2"], "data directory .*no/such.* does not exist"),
        (["eval", "--models", "mine:fashion_cnnf=my_runs/fashion_cnnf.safetensors", "--out",
          out], "weights file 'my_runs/fashion_cnnf.safetensors' does not exist"),
        (["eval", "--out", str(tmp_path / "file" / "out")], "--out .* not a writable"),
        (["eval", "--out", out, "--models", "a:fashion_cnn,a:fashion_cnnf"], "given twice"),
        (["eval", "--out", out, "--models", "fashion_dgm@x"], "@CYCLES must be an integer"),
        # diagnose, zoo card and eval --corruptions printed their own line without the hint
        (["diagnose", "fashion_cnn", "--data-dir", str(tmp_path / "no" / "such"),
          "--n-images", "2", "--out", out], "data directory .*no/such.* does not exist"),
        (["zoo", "card", "no_such_model"], "unknown model 'no_such_model'"),
        (["zoo", "card", "cnnf_wrn_40_2"], "'cnnf_wrn_40_2.safetensors' not found"),
        (["eval", "fashion-mnist", "--corruptions", "fog", "--data-dir",
          str(tmp_path / "no" / "such"), "--untrained", "--n-examples", "2", "--out", out],
         "data directory .*no/such.* does not exist"),
    ]
    (tmp_path / "file").write_text("x")
    for argv, match in cases:
        code, err = _run(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and "Traceback" not in err, (argv, err)
        assert lines[0].startswith("error: ") and lines[-1].startswith("hint: "), err
        assert len(lines) == 2 and re.search(match, lines[0]), err


def test_debug_shows_the_traceback(tmp_path):
    from backends import DataError
    for argv in (["--debug", "eval"], ["eval", "--debug"]):
        with pytest.raises(DataError):
            main(argv + ["--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                         "--untrained", "--n-examples", "2"])


def test_models_at_cycles_runs_the_weights_with_that_many_cycles():
    from zoo.cli._args import load_models
    models = load_models(["fashion_dgm", "fashion_dgm@3", "f:fashion_cnn@0"])
    assert list(models) == ["fashion_dgm", "fashion_dgm@3", "f"]
    assert [m.cycles for m in models.values()] == [0, 3, 0]
    a, b = models["fashion_dgm"].params(), models["fashion_dgm@3"].params()
    assert all(a[k].equal(b[k]) for k in a)   # the same bundled weights
