"""Config loading: a good file gives typed settings; a bad one names file, line, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import ConfigError, load_config

GOOD = """\
[store]
url = "sqlite:///data/syncd.db"

[organization]
name = "Lumenfold"
domains = ["lumenfold.io", "Lumenfold.com"]

[[accounts]]
name = "maya-mail"
provider = "maildir"
owner = "Maya.Chen@lumenfold.io"
aliases = ["maya@lumenfold.com"]
path = "mail/maya"
batch_size = 50

[[accounts]]
name = "enron"
provider = "eml"
owner = "rep@lumenfold.io"
path = "/srv/enron"
pattern = ["*.txt", "*.eml"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.store_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'syncd.db'}"
    assert config.org_domains == ("lumenfold.io", "lumenfold.com")
    maya, enron = config.accounts
    assert maya.owner == "maya.chen@lumenfold.io"
    assert maya.options == {"path": tmp_path.resolve() / "mail" / "maya", "batch_size": 50}
    assert enron.options["pattern"] == ["*.txt", "*.eml"]
    assert enron.options["path"] == Path("/srv/enron")
    assert config.policy.unknown_participants == "skip"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "batch_size = 50",
            'batch_size = "fifty"',
            r"syncd.toml, line 14: \[accounts\] batch_size: expected an integer",
        ),
        (
            "batch_size = 50",
            "batchsize = 50",
            r"line 14: \[accounts\] batchsize: unknown key for provider 'maildir'",
        ),
        (
            'provider = "eml"',
            'provider = "exchange"',
            r"line 18: \[accounts\] provider: expected one of .*maildir",
        ),
        (
            'owner = "rep@lumenfold.io"',
            'owner = "rep"',
            r"line 19: \[accounts\] owner: expected the mailbox owner",
        ),
        (
            'domains = ["lumenfold.io", "Lumenfold.com"]',
            "domains = 'lumenfold.io'",
            r"line 6: \[organization\] domains: expected a list of domains",
        ),
        (
            'url = "sqlite:///data/syncd.db"',
            'url = "syncd.db"',
            r"line 2: \[store\] url: expected a database URL",
        ),
        ("[store]", "[storage]", r"line 1: storage: unknown section"),
        ('name = "enron"', 'name = "maya-mail"', r"line 17: \[accounts\] name: duplicate account name"),
        ('path = "/srv/enron"\n', "", r"line 16: \[accounts\]: account needs 'path' for provider 'eml'"),
    ],
)
def test_bad_config_names_file_line_key_and_fix(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, GOOD.replace(old, new, 1)))


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"syncd.toml: not valid TOML: .*line 2"):
        load_config(_write(tmp_path, "[store]\nurl = \n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.toml")


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "syncd.example.toml"
    config = load_config(example)
    assert config.accounts[0].provider == "maildir"
