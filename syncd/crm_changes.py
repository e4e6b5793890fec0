"""What a CRM import changed, as far as matching cares: the addresses, domains and deals
whose activities must be matched again (see :mod:`syncd.rematch`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CrmChanges:
    emails: set[str] = field(default_factory=set)  # contact addresses added, moved or removed
    domains: set[str] = field(default_factory=set)  # company domains added or removed
    deal_ids: set[int] = field(default_factory=set)  # opportunities created or changed
    company_ids: set[int] = field(default_factory=set)  # companies whose deals or contacts changed

    def __bool__(self) -> bool:
        return bool(self.emails or self.domains or self.deal_ids or self.company_ids)

    def update(self, other: CrmChanges) -> None:
        self.emails |= other.emails
        self.domains |= other.domains
        self.deal_ids |= other.deal_ids
        self.company_ids |= other.company_ids
