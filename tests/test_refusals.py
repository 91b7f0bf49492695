"""When a row of refused mailboxes blames the server: the thresholds, one at a time."""

import pytest

from bot.refusals import FEW_DOMAINS_IN_ROW, MAILBOX_DOMAINS, REFUSALS_IN_ROW, blames_server


def one_domain(count: int, domain: str = "example.org") -> list[str]:
    return [f"user{n}@{domain}" for n in range(count)]


@pytest.mark.parametrize(
    ("refused", "listed", "whole", "blamed"),
    [
        ([f"user@example{n}.org" for n in range(MAILBOX_DOMAINS)], None, True, True),
        (["a@EXAMPLE.org", "b@example.ORG", "c@Example.Org"], None, True, False),
        (one_domain(FEW_DOMAINS_IN_ROW - 1), 1, False, False),
        (one_domain(FEW_DOMAINS_IN_ROW), 1, False, True),
        (one_domain(FEW_DOMAINS_IN_ROW), 2, False, False),
        (one_domain(FEW_DOMAINS_IN_ROW), None, False, False),
        (one_domain(REFUSALS_IN_ROW - 1), 1, True, False),
        (one_domain(REFUSALS_IN_ROW), 1, True, True),
    ],
    ids=[
        "enough domains", "domains differing in case are one", "one short of a one-domain list's row",
        "a one-domain list's row", "not at every domain listed", "the domains listed unknown",
        "a whole run one short", "a whole run",
    ],
)  # fmt: skip
def test_which_rows_of_refused_mailboxes_blame_the_server(
    refused: list[str], listed: int | None, whole: bool, blamed: bool
) -> None:
    assert blames_server(refused, listed, whole=whole) is blamed
