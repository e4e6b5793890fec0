"""Loading and validating ``syncd.toml``.

Every error names the file, the line where it can be found, the key and what is
expected, so that a user can fix the config without reading our code.
"""

from __future__ import annotations

import inspect
import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matchers.contact_policy import POLICIES
from matchers.domains import org_domain_problem
from matchers.exclusions import Blocklist, BlocklistError, PrivacySettings
from matchers.linking import Thresholds
from syncd.providers import PROVIDERS, source_class

DEFAULT_STORE_URL = "sqlite:///syncd.db"
UNKNOWN_PARTICIPANT_POLICIES = ("skip", "log")


class ConfigError(Exception):
    """A config problem, with the file, line and key it concerns."""


@dataclass(frozen=True)
class AccountConfig:
    name: str
    provider: str
    owner: str
    aliases: tuple[str, ...]
    options: dict[str, Any]  # the provider's own keys, already type-checked
    blocklist: Blocklist = field(default_factory=Blocklist)  # merged with the organization's
    privacy: PrivacySettings = field(default_factory=PrivacySettings)  # merged with [policy]

    def make_source(self) -> Any:
        return source_class(self.provider)(**self.options)


@dataclass(frozen=True)
class PolicyConfig:
    log_internal: bool = False  # mail with no external participant
    unknown_participants: str = "skip"  # skip | log
    create_contacts: str = "none"  # none | sent | sent_and_received
    create_contacts_free_mail: bool = False


@dataclass(frozen=True)
class Config:
    path: Path | None
    store_url: str
    org_name: str
    org_domains: tuple[str, ...]
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    blocklist: Blocklist = field(default_factory=Blocklist)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    plus_addressing_domains: tuple[str, ...] | None = None  # None: all of org_domains
    thresholds: Thresholds = field(default_factory=Thresholds)
    parse_workers: int | None = None  # None: one per core beyond the first (syncd.parse_pool)
    accounts: tuple[AccountConfig, ...] = ()

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts) or "none"
        raise ConfigError(f"{self.path}: no account named {name!r} (accounts: {known})")


class _Reader:
    """Walks the parsed TOML, remembering the file text to point at lines."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str, key: str | None, index: int = 0) -> int | None:
        """1-based line of ``key`` inside the ``index``-th ``[table]``/``[[table]]`` (best effort)."""
        if not table and key:  # a top-level name: a [section] header or a bare key
            top = re.compile(rf"^\s*(\[\[?\s*{re.escape(key)}\s*\]|\"?{re.escape(key)}\"?\s*=)")
            return next((i + 1 for i, line in enumerate(self.lines) if top.match(line)), None)
        header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$") if table else None
        start, seen = 0, -1
        if header is not None:
            for i, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if seen == index:
                        start = i
                        break
            else:
                return None
            if key is None:
                return start + 1
        pattern = re.compile(rf"^\s*\"?{re.escape(key or '')}\"?\s*=")
        for i in range(start + (1 if header else 0), len(self.lines)):
            line = self.lines[i]
            if i > start and header is not None and re.match(r"^\s*\[", line):
                break
            if pattern.match(line):
                return i + 1
        return start + 1 if header is not None else None

    def error(self, table: str, key: str | None, message: str, index: int = 0) -> ConfigError:
        line = self.line_of(table, key, index)
        where = f"{self.path}, line {line}" if line else str(self.path)
        what = f"[{table}] {key}" if table and key else (f"[{table}]" if table else key or "")
        return ConfigError(f"{where}: {what}: {message}")


def _describe(hint: Any) -> str:
    if hint is Path:
        return "a path (string)"
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is list:
        (inner,) = typing.get_args(hint) or (Any,)
        return f"a list of {_describe(inner)}s" if inner is not Any else "a list"
    return {int: "an integer", str: "a string", bool: "true or false", float: "a number"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _coerce(value: Any, hint: Any, base: Path) -> Any:
    """Check ``value`` against a constructor annotation; raise TypeError with what is expected."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        errors = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, base)
            except TypeError as exc:
                errors.append(str(exc))
        raise TypeError(f"expected {_describe(hint)}")
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise TypeError("expected a path (string)")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    if origin is list:
        (inner,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            raise TypeError(f"expected {_describe(hint)}")
        return [_coerce(v, inner, base) for v in value]
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an integer")
        return value
    if hint in (str, float) and isinstance(value, hint if hint is str else (int, float)):
        return value
    raise TypeError(f"expected {_describe(hint)}")


def _provider_options(reader: _Reader, index: int, provider: str, raw: dict[str, Any], base: Path) -> dict:
    cls = source_class(provider)
    hints = typing.get_type_hints(cls.__init__)
    # Keyword-only parameters are for programmatic use (a token provider object, say), not config.
    params = {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.KEYWORD_ONLY
    }
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in params:
            allowed = ", ".join(sorted([*params, *ACCOUNT_KEYS]))
            raise reader.error(
                "accounts", key, f"unknown key for provider {provider!r} (allowed: {allowed})", index
            )
        try:
            options[key] = _coerce(value, hints.get(key, Any), base)
        except TypeError as exc:
            raise reader.error("accounts", key, f"{exc}, got {value!r}", index) from None
    for name, param in params.items():
        if param.default is inspect.Parameter.empty and name not in options:
            raise reader.error("accounts", None, f"account needs {name!r} for provider {provider!r}", index)
    try:  # a source's constructor checks what types cannot say (and does no I/O)
        cls(**options)
    except ValueError as exc:
        raise reader.error("accounts", None, str(exc), index) from None
    return options


ACCOUNT_KEYS = {
    "name",
    "provider",
    "owner",
    "aliases",
    "blocklist",
    "private_folders",
    "private_labels",
    "private_flags",
}
PRIVACY_KEYS = ("private_folders", "private_labels", "private_flags")
TOP_KEYS = {"store", "organization", "policy", "matching", "sync", "accounts"}
POLICY_KEYS = ("log_internal", "unknown_participants", "create_contacts", "create_contacts_free_mail")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _is_domains(value: Any) -> bool:
    return _is_names(value) and all("." in v for v in value)


def _blocklist(
    reader: _Reader, section: str, table: dict[str, Any], plus_domains: list[str], index: int = 0
) -> Blocklist:
    entries = table.get("blocklist", [])
    if not _is_names(entries):
        raise reader.error(
            section,
            "blocklist",
            f'expected a list such as ["@lawfirm.com", "a@b.com"], got {entries!r}',
            index,
        )
    try:
        return Blocklist.parse(entries, plus_addressing_domains=plus_domains)
    except BlocklistError as exc:
        raise reader.error(section, "blocklist", str(exc), index) from None


def _privacy(reader: _Reader, section: str, table: dict[str, Any], index: int = 0) -> PrivacySettings:
    values: dict[str, list[str] | None] = {}
    for key in PRIVACY_KEYS:
        value = table.get(key)
        if value is not None and not _is_names(value):
            raise reader.error(section, key, f"expected a list of names, got {value!r}", index)
        values[key] = value
    flags = values["private_flags"]
    return PrivacySettings.build(
        labels=values["private_labels"] or (), folders=values["private_folders"] or (), flags=flags
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _get(
    reader: _Reader,
    section: str,
    table: dict[str, Any],
    key: str,
    default: Any,
    ok: Callable[[Any], bool],
    expected: str,
) -> Any:
    value = table.get(key, default)
    if not ok(value):
        raise reader.error(section, key, f"expected {expected}, got {value!r}")
    return value


def _email(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None


def load_config(path: Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path, text)


def parse_config(data: dict[str, Any], path: Path, text: str = "") -> Config:
    reader = _Reader(path, text)
    base = path.resolve().parent
    for key in data:
        if key not in TOP_KEYS:
            raise reader.error("", key, f"unknown section (expected one of: {', '.join(sorted(TOP_KEYS))})")

    store = _table(reader, data, "store", {"url"})
    url = store.get("url", DEFAULT_STORE_URL)
    if not isinstance(url, str) or "://" not in url:
        raise reader.error(
            "store", "url", f"expected a database URL such as {DEFAULT_STORE_URL!r}, got {url!r}"
        )
    url = _resolve_sqlite(url, base)

    org = _table(reader, data, "organization", {"name", "domains", "plus_addressing_domains", "blocklist"})
    domains = _get(
        reader, "organization", org, "domains", [], _is_domains, 'a list of domains such as ["example.com"]'
    )
    for domain in domains:
        problem = org_domain_problem(domain)
        if problem:
            raise reader.error("organization", "domains", problem)
    org_name = _get(reader, "organization", org, "name", "", _is_str, "a string")
    plus = org.get("plus_addressing_domains")
    if plus is not None and not _is_domains(plus):
        raise reader.error(
            "organization",
            "plus_addressing_domains",
            f"expected a list of domains (or [] for none), got {plus!r}",
        )
    blocklist = _blocklist(reader, "organization", org, plus or domains)

    pol = _table(reader, data, "policy", set(POLICY_KEYS) | set(PRIVACY_KEYS))
    privacy = _privacy(reader, "policy", pol)
    policy = PolicyConfig(
        log_internal=_get(reader, "policy", pol, "log_internal", False, _is_bool, "true or false"),
        unknown_participants=_get(
            reader,
            "policy",
            pol,
            "unknown_participants",
            "skip",
            UNKNOWN_PARTICIPANT_POLICIES.__contains__,
            f"one of {', '.join(map(repr, UNKNOWN_PARTICIPANT_POLICIES))}",
        ),
        create_contacts=_get(
            reader,
            "policy",
            pol,
            "create_contacts",
            "none",
            POLICIES.__contains__,
            f"one of {', '.join(map(repr, POLICIES))}",
        ),
        create_contacts_free_mail=_get(
            reader, "policy", pol, "create_contacts_free_mail", False, _is_bool, "true or false"
        ),
    )
    matching = _table(reader, data, "matching", {"link_threshold", "review_threshold"})
    thresholds = Thresholds(
        link=_get(reader, "matching", matching, "link_threshold", 0.5, _is_fraction, "a number from 0 to 1"),
        review=_get(
            reader, "matching", matching, "review_threshold", 0.2, _is_fraction, "a number from 0 to 1"
        ),
    )
    if thresholds.review > thresholds.link:
        raise reader.error("matching", "review_threshold", "must not be above link_threshold")
    sync = _table(reader, data, "sync", {"parse_workers"})
    parse_workers = _get(
        reader,
        "sync",
        sync,
        "parse_workers",
        None,
        lambda v: v is None or _is_count(v),
        "a number of processes, 0 or more",
    )

    raw_accounts = data.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise reader.error("accounts", None, "expected [[accounts]] tables")
    accounts: list[AccountConfig] = []
    for index, raw in enumerate(raw_accounts):
        accounts.append(_account(reader, index, raw, base, {a.name for a in accounts}, plus or domains))

    return Config(
        path=path,
        store_url=url,
        org_name=org_name,
        org_domains=tuple(d.lower().strip(".") for d in domains),
        policy=policy,
        blocklist=blocklist,
        privacy=privacy,
        plus_addressing_domains=tuple(plus) if plus is not None else None,
        thresholds=thresholds,
        parse_workers=parse_workers,
        accounts=tuple(accounts),
    )


def _table(reader: _Reader, data: dict[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise reader.error("", name, f"expected a [{name}] table")
    for key in table:
        if key not in keys:
            raise reader.error(name, key, f"unknown key (allowed: {', '.join(sorted(keys))})")
    return table


def _account(
    reader: _Reader, index: int, raw: Any, base: Path, names: set[str], plus_domains: list[str]
) -> AccountConfig:
    if not isinstance(raw, dict):
        raise reader.error("accounts", None, "expected a table", index)
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]*", name):
        raise reader.error(
            "accounts", "name", f"expected a name of letters, digits, . _ @ -, got {name!r}", index
        )
    if name in names:
        raise reader.error("accounts", "name", f"duplicate account name {name!r}", index)
    provider = raw.get("provider")
    if provider not in PROVIDERS:
        raise reader.error(
            "accounts", "provider", f"expected one of {', '.join(sorted(PROVIDERS))}, got {provider!r}", index
        )
    owner = raw.get("owner")
    if not _email(owner):
        raise reader.error(
            "accounts", "owner", f"expected the mailbox owner's email address, got {owner!r}", index
        )
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(_email(a) for a in aliases):
        raise reader.error(
            "accounts", "aliases", f"expected a list of email addresses, got {aliases!r}", index
        )
    rest = {k: v for k, v in raw.items() if k not in ACCOUNT_KEYS}
    options = _provider_options(reader, index, provider, rest, base)
    return AccountConfig(
        name=name,
        provider=provider,
        owner=owner.lower(),
        aliases=tuple(a.lower() for a in aliases),
        blocklist=_blocklist(reader, "accounts", raw, plus_domains, index),
        privacy=_privacy(reader, "accounts", raw, index),
        options=options,
    )


def _resolve_sqlite(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the config file, not to the working directory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    rest = url[len(prefix) :]
    if rest.startswith("/"):
        return url
    return prefix + str((base / Path(rest).expanduser()).resolve())
