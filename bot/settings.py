"""Settings from ``PAPERBOT_*`` environment variables (and an optional ``.env`` file).

Everything is validated at start; every problem is reported at once in one ConfigError (exit 2).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from email.headerregistry import Address
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

ENV_FILE = Path(".env")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
MAX_BASE_URL = 500
"""Longest PAPERBOT_BASE_URL: unsubscribe links carry it in a header line of at most 998."""
DAY, WEEK, YEAR_HOURS = 86_400, 7 * 86_400, 365 * 24
"""Upper bounds of durations: beyond them a setting is a typo, and datetime arithmetic overflows."""
_HOST_AND_PORT = re.compile(r"(?P<host>[^:\s]+|\[[^\]\s]+\]):(?P<port>\d+)")
"""A host name or address followed by a port (an IPv6 address written in brackets)."""
NO_UNSUBSCRIBE = (
    "emails carry no unsubscribe link: set PAPERBOT_BASE_URL and PAPERBOT_SECRET_KEY, "
    "or PAPERBOT_UNSUBSCRIBE_MAILTO"
)
PLAIN_HTTP = (
    "PAPERBOT_BASE_URL is http://, not https://: mail providers such as Gmail offer one-click "
    "unsubscribe (RFC 8058) only for https links"
)
DEFAULT_FROM = "paperbot <paperbot@example.org>"
UNSET_FROM = (
    "PAPERBOT_FROM is not set: emails come from paperbot@example.org, an address of no real "
    'domain that mail servers refuse or file as spam: set PAPERBOT_FROM="Name <address>" with '
    "an address of your own domain"
)

TLS_PORT = (
    "PAPERBOT_SMTP_PORT is 465, where servers expect TLS from the first byte, but "
    "PAPERBOT_SMTP_SECURITY is {security}: set PAPERBOT_SMTP_SECURITY=tls, unless this server "
    "speaks plain SMTP on port 465"
)


def _checked_address(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid address: {exc}") from None


class Settings(BaseSettings):
    """Every knob an operator can turn. Secrets live here, never in the profiles YAML."""

    model_config = SettingsConfigDict(
        env_prefix="PAPERBOT_", env_file=ENV_FILE, extra="ignore", populate_by_name=True
    )

    database_url: str = "sqlite:///paperbot.db"
    profiles: Path = Path("config/profiles.yaml")
    sources: str = "hf"
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = Field(None, validate_default=True)
    smtp_timeout: float = Field(30.0, gt=0, le=3600)
    smtp_connections: int = Field(4, ge=1, le=64)
    smtp_rate_per_second: float | None = Field(None, gt=0, le=100_000)
    smtp_rate_per_hour: int | None = Field(None, ge=1, le=100_000_000)
    # connections not opened / lost in a row: stop
    smtp_max_failures: int = Field(8, ge=1, le=1000)
    retry_first_seconds: int = Field(300, ge=1, le=WEEK)
    retry_max_seconds: int = Field(6 * 3600, ge=1, le=WEEK, validate_default=True)
    retry_give_up_hours: float = Field(72, gt=0, le=YEAR_HOURS)
    send_lease_seconds: int = Field(300, ge=1, le=DAY)  # a `sending` row older than this was lost
    from_: str = Field(DEFAULT_FROM, alias="PAPERBOT_FROM")
    outbox: Path = Path("outbox")
    secret_key: SecretStr | None = None
    secret_key_previous: SecretStr | None = None  # comma-separated; they still check old links
    base_url: str | None = None
    unsubscribe_mailto: str | None = None
    admin_email: str | None = None
    postal_address: str | None = None
    sweep_seconds: int = Field(60, ge=1, le=DAY)
    alert_failed_share: float = Field(0.2, gt=0, le=1)
    log_format: Literal["text", "json"] = "text"
    arxiv_include_replacements: bool = False

    @field_validator("smtp_security", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("sources")
    @classmethod
    def _source_list(cls, value: str) -> str:
        from bot.sources import parse_spec  # the sources import the HTTP client: only when asked

        try:
            parse_spec(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("from_")
    @classmethod
    def _from_address(cls, value: str) -> str:
        if any(c in value for c in "\r\n"):
            raise ValueError("must be a single line")
        name, addr = parseaddr(value)
        if not addr:
            raise ValueError(f"{value!r} is not 'Name <address>'")
        return str(Address(display_name=name, addr_spec=_checked_address(addr)))

    @field_validator("unsubscribe_mailto", "admin_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if not value else _checked_address(value.removeprefix("mailto:"))

    @field_validator("database_url")
    @classmethod
    def _kept_database(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme.startswith("sqlite") and rest.split("?")[0] in ("", "/", "/:memory:"):
            raise ValueError(
                f"{value!r} is a database in memory, which forgets the ledger when the program "
                "ends: name a file, such as sqlite:///paperbot.db"
            )
        if scheme == "postgres" or scheme.startswith("postgres+"):  # as Heroku writes it
            return "postgresql" + value.removeprefix("postgres")
        return value

    @field_validator("smtp_host")
    @classmethod
    def _host_alone(cls, value: str | None) -> str | None:
        found = _HOST_AND_PORT.fullmatch(value.strip()) if value else None
        if found:
            host, port = found["host"].strip("[]"), found["port"]
            raise ValueError(
                f"{value!r} includes a port: set PAPERBOT_SMTP_HOST={host} and "
                f"PAPERBOT_SMTP_PORT={port}"
            )
        return value

    # Checks that involve two settings are made on the second one, with the first from
    # ``info.data`` (validated fields, in order): so they are listed with every other problem.

    @field_validator("smtp_password")
    @classmethod
    def _with_username(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if bool(info.data.get("smtp_username")) != bool(value and value.get_secret_value()):
            raise ValueError(
                "set both PAPERBOT_SMTP_USERNAME and PAPERBOT_SMTP_PASSWORD, or neither"
            )
        return value

    @field_validator("retry_max_seconds")
    @classmethod
    def _not_below_first(cls, value: int, info: ValidationInfo) -> int:
        first = info.data.get("retry_first_seconds")
        if first is not None and value < first:
            raise ValueError("must not be less than PAPERBOT_RETRY_FIRST_SECONDS")
        return value

    @field_validator("base_url")
    @classmethod
    def _https_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        secret = info.data.get("secret_key")
        if "secret_key" in info.data and not (secret and secret.get_secret_value()):
            raise ValueError("needs PAPERBOT_SECRET_KEY to sign unsubscribe links")
        if not value.startswith(("https://", "http://")) or any(c in value for c in " \r\n"):
            raise ValueError(f"{value!r} is not an http(s) URL")
        if len(value) > MAX_BASE_URL:
            raise ValueError(f"is longer than {MAX_BASE_URL} characters")
        if "?" in value or "#" in value:
            raise ValueError(
                f"{value!r} has a query or fragment: links are made by adding "
                "/unsubscribe?token=... to it, so give the site's address alone"
            )
        return value.rstrip("/")

    @property
    def sender(self) -> Address:
        """The From address, parsed (once: every message asks for it)."""
        return _parse_sender(self.from_)

    @property
    def previous_secrets(self) -> tuple[str, ...]:
        """The earlier secret keys (PAPERBOT_SECRET_KEY_PREVIOUS): the unsubscribe links signed
        with them, in emails sent before PAPERBOT_SECRET_KEY changed, still work."""
        keys = self.secret_key_previous.get_secret_value() if self.secret_key_previous else ""
        return tuple(key.strip() for key in keys.split(",") if key.strip())

    @property
    def unsubscribe_warning(self) -> str | None:
        """What to tell the operator when no way to unsubscribe is set (a List-Unsubscribe header
        and the footer's link need one), or None."""
        if self.base_url and self.base_url.startswith("http://"):
            return PLAIN_HTTP
        return None if self.base_url or self.unsubscribe_mailto else NO_UNSUBSCRIBE

    @property
    def warnings(self) -> list[str]:
        """What to tell the operator before sending: settings that are valid but most likely
        wrong (plain SMTP on the TLS port) or that leave something out (a way to unsubscribe, a
        sender of one's own when mail goes to an SMTP server)."""
        found = []
        if self.smtp_host and self.smtp_port == 465 and self.smtp_security != "tls":
            found.append(TLS_PORT.format(security=self.smtp_security))
        if self.smtp_host and "from_" not in self.model_fields_set:
            found.append(UNSET_FROM)
        if self.unsubscribe_warning:
            found.append(self.unsubscribe_warning)
        return found

    @property
    def port(self) -> int:
        """The SMTP port, defaulting by security mode."""
        return self.smtp_port or DEFAULT_PORTS[self.smtp_security]

    @property
    def smtp_fingerprint(self) -> str:
        """A digest of the SMTP settings (server, port, security, login): it tells whether they
        changed since something was recorded, without keeping the password."""
        password = self.smtp_password.get_secret_value() if self.smtp_password else ""
        fields = (self.smtp_host, self.port, self.smtp_security, self.smtp_username, password)
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


@lru_cache(maxsize=16)
def _parse_sender(value: str) -> Address:
    name, addr = parseaddr(value)
    return Address(display_name=name, addr_spec=addr)


def unknown_names(names: Iterable[str]) -> list[str]:
    """A warning for each ``PAPERBOT_*`` name no setting has (a typo is otherwise silently
    ignored), with the closest known name when there is one."""
    known = {
        (field.alias or f"PAPERBOT_{name}").upper() for name, field in Settings.model_fields.items()
    }
    warnings = []
    for name in sorted({n.upper() for n in names if n.upper().startswith("PAPERBOT_")} - known):
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{name} is not a paperbot setting and is ignored{hint}")
    return warnings


def names_in_env_file(env_file: Path = ENV_FILE) -> list[str]:
    """The names set in ``env_file`` (none when there is no such file or it cannot be read:
    loading the settings says why)."""
    try:
        return [n for n in dotenv_values(env_file) if n] if env_file.is_file() else []
    except (OSError, UnicodeDecodeError):
        return []


def load_settings(env_file: Path | None = ENV_FILE, **overrides: object) -> Settings:
    """Read and validate the settings; raise ConfigError listing every problem."""
    try:
        factory: Any = Settings
        return factory(_env_file=env_file, **overrides)  # type: ignore[no-any-return]
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"invalid settings: {env_file} is not UTF-8 text ({exc.reason})"
        ) from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper().rstrip("_")
            name = name if name.startswith("PAPERBOT_") else f"PAPERBOT_{name}"
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}: {message}" if err["loc"] else f"  {message}")
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from None
