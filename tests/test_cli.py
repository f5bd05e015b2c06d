"""Tests for dataformat/cli.py: the conventions every command shares."""

import pytest

from dataformat import cli


def test_bad_arguments_are_one_line_and_exit_2(capsys):
  parser = cli.ArgumentParser(prog="cmd")
  parser.add_argument("--num_shards", type=cli.positive_int, required=True)
  with pytest.raises(SystemExit) as exit_info:
    parser.parse_args(["--num_shards", "0"])
  assert exit_info.value.code == cli.USAGE == 2
  assert capsys.readouterr().err == (
      "error: argument --num_shards: must be a positive integer, got '0'\n")


def test_flags_are_not_abbreviated(capsys):
  parser = cli.ArgumentParser(prog="cmd")
  parser.add_argument("--num_shards", type=int)
  with pytest.raises(SystemExit):
    parser.parse_args(["--num_sh", "3"])
  assert capsys.readouterr().err == (
      "error: unrecognized arguments: --num_sh 3\n")


def test_fail_prints_the_first_line_and_returns_1(capsys):
  assert cli.fail(ValueError("no such file: x\ndetails")) == cli.FAILURE == 1
  assert capsys.readouterr().err == "error: no such file: x\n"
  assert cli.fail(KeyError()) == 1
  assert capsys.readouterr().err == "error: KeyError\n"


@pytest.mark.parametrize("value, expected", [("3", 3), ("1", 1)])
def test_positive_int(value, expected):
  assert cli.positive_int(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "x", "1.5"])
def test_positive_int_refuses(value):
  with pytest.raises(Exception, match=f"must be a positive integer, got '{value}'"):
    cli.positive_int(value)


@pytest.mark.parametrize("value, expected", [("0", 0.0), ("0.25", 0.25),
                                             ("1", 1.0)])
def test_fraction(value, expected):
  assert cli.fraction(value) == expected


@pytest.mark.parametrize("value, message", [("1.5", "must be in [0, 1], got 1.5"),
                                            ("x", "not a number: 'x'")])
def test_fraction_refuses(value, message):
  with pytest.raises(Exception, match=message.replace("[", r"\[").replace("]", r"\]")):
    cli.fraction(value)
