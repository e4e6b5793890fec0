"""Rules that keep a message out of the CRM, each with a named reason for the skip log.

Pure functions: they read a parsed message (or a meeting, or where a message was found) and
our organization's settings, and return a :class:`Skip` (a stable machine ``reason`` and a
``detail`` naming the header or rule that decided), or None. The CRM-dependent rule (no known
participant) lives in the pipeline, after matching, because it needs the store.

Reasons, in the order they are tested (the first that applies is recorded):

``private``
    ``Sensitivity: Private`` or ``Personal`` (RFC 2156 §5.3.4; what Outlook writes for
    "Private"/"Personal"), or, through :func:`private_exclusion`, a configured folder or label,
    or a private flag (``$Private`` by default). Tested first so the pipeline can record such a
    skip without the subject.
``blocklisted``
    ANY participant (From, Sender, Reply-To, To, Cc, Bcc; a meeting's organizer or any
    attendee) is on the org-wide or the mailbox's :class:`Blocklist`. We follow Salesforce
    Einstein Activity Capture's "Excluded Addresses" (and LinkPoint360's or Demandbase's
    exclusion lists), which keep out the whole email or event, rather than HubSpot's "never
    log" list, which still logs the email to the other recipients' records (HubSpot's KB:
    "if there are recipients in an email who are not on the never log list, HubSpot will log
    emails to those contact records"). People put lawyers, HR providers, investors and family
    on such a list; an email that Cc's them is exactly the content that must not reach the
    CRM, and logging it elsewhere would still show it to everyone who can see the customer.
``delivery_report``
    A bounce, delay notice, read receipt or abuse report: ``multipart/report`` (RFC 6522), a
    top-level or embedded ``message/delivery-status`` (RFC 3464), ``message/disposition-
    notification`` (RFC 8098) or ``message/feedback-report`` (RFC 5965) part, a mail-system
    sender (MAILER-DAEMON, postmaster, Exchange's ``MicrosoftExchange<hex>``), or a null
    ``Return-Path: <>`` (RFC 5321 §4.5.5: used for DSNs and MDNs; auto-replies also use it,
    RFC 3834 §3.3, but those are recognized before this test).
``out_of_office``
    ``Auto-Submitted: auto-replied`` (RFC 3834 §5: vacation and other automatic replies),
    ``X-Autoreply``/``X-Autorespond``, or a subject that auto-responders write: Outlook's
    localized "Automatic reply:" prefix in a dozen languages, "Out of Office", "Abwesenheitsnotiz",
    "Réponse automatique", "Fuori sede"... Two things that look like OOO signals are not:
    ``X-Auto-Response-Suppress`` is a request TO responders that Exchange puts on meeting
    requests and ordinary mail alike, and ``X-MS-Exchange-Inbox-Rules-Loop`` is set on any
    mail an inbox rule generated, including a customer's message auto-forwarded by a rule.
``bulk_mail``
    ``List-Id`` (RFC 2919), ``List-Unsubscribe`` (RFC 2369), ``Precedence: bulk|list|junk``.
``auto_submitted``
    ``Auto-Submitted`` other than ``no`` (``auto-generated``, ``auto-notified``; RFC 3834, 5436).
``automated_sender``
    A From local part only machines write from (no-reply, notifications, alerts, bounces).
``internal_only``
    No participant outside our organization, unless the policy logs internal mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from connectors.message import Headers, Meeting, ParsedMessage, Participant
from matchers.domains import normalize_domain, owning_domain
from matchers.identity import OrgIdentity, canonical_email, domain_of

REASONS = (
    "private",
    "blocklisted",
    "delivery_report",
    "out_of_office",
    "bulk_mail",
    "auto_submitted",
    "automated_sender",
    "internal_only",
)

BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
PRIVATE_SENSITIVITY = frozenset({"private", "personal"})
# Top-level or part content types that only mail systems write.
REPORT_TYPES = frozenset(
    {
        "multipart/report",
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/global-disposition-notification",
        "message/feedback-report",
    }
)
# Local parts of the mail system itself: bounces and delivery notices come from these.
_MAIL_SYSTEM = r"mailer-daemon|mail-daemon|postmaster|microsoftexchange[0-9a-f]{32}"
MAIL_SYSTEM_SENDER = re.compile(rf"^(?:{_MAIL_SYSTEM})$")
# Local parts that only machines write from, mail system ones included (contact_policy uses
# this to never create such a contact); a mail system sender is recorded as delivery_report.
AUTOMATED_SENDER = re.compile(
    rf"^(?:(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?|notifications?|notify|alerts?)(?:[-+_.].*)?"
    rf"|{_MAIL_SYSTEM})$"
)

# Auto-responders put a fixed phrase before the original subject: Outlook/Exchange write a
# localized "Automatic reply:" (older versions "Out of Office:"/"Out of Office AutoReply:"),
# Lotus Notes "<name> is out of the office". A corporate gateway may prepend a tag such as
# "[EXTERNAL]". Only these prefixes WITH their colon count: "Out of office next week, here is
# who covers" is a person writing. A subject that is only the phrase ("Out of Office") counts
# when the message answers another (In-Reply-To/References, RFC 3834 §3.1.5): the same words
# alone are also how people title a note to themselves (Enron 173176.txt).
_OOO_PREFIXES = (
    r"automatic reply|auto[- ]?reply|auto[- ]?response|out of (?:the )?office(?: auto ?reply)?",
    r"automatische antwort|abwesenheitsnotiz",  # de
    r"r[ée]ponse automatique|absence du bureau",  # fr
    r"respuesta autom[áa]tica|fuera de la oficina",  # es
    r"risposta automatica|fuori sede|fuori ufficio",  # it
    r"resposta autom[áa]tica|fora do escrit[óo]rio",  # pt
    r"automatisch antwoord",  # nl
    r"automatiskt svar|automatisk svar|automaattinen vastaus",  # sv, da/no, fi
    r"automatyczna odpowied[źz]|odpowied[źz] automatyczna|automatick[áa] odpov[ěe][ďd]",  # pl, cs
    r"automatikus v[áa]lasz|r[ăa]spuns automat|αυτόματη απάντηση",  # hu, ro, el
    r"автоматический ответ|otomatik yan[ıi]t|otomatik cevap",  # ru, tr
    r"תשובה אוטומטית|رد تلقائي",  # he, ar
    r"自動応答|自動返信|自动回复|自動回覆|자동 회신",  # ja, zh-Hans, zh-Hant, ko
)
_OOO_PHRASES = r"out of (?:the )?office|abwesenheitsnotiz|absence du bureau|fuori sede|fuera de la oficina"
_TAGS = r"^\s*(?:\[[^\]]{1,40}\]\s*)*"
_LOTUS = r"[^:]{1,80}\sis (?:currently )?out of (?:the )?office\b"
OUT_OF_OFFICE_SUBJECT = re.compile(
    rf"{_TAGS}(?:(?:{'|'.join(_OOO_PREFIXES)})\s*[:：]|{_LOTUS})", re.IGNORECASE
)
# "Out of office", alone or followed by a separator and a name ("Out of office - Rowan Clinic"),
# but not "Out of office next week" (a person writing about their own absence).
OUT_OF_OFFICE_PHRASE = re.compile(
    rf"{_TAGS}(?:{_OOO_PHRASES})\s*(?:[.!]|\s[-–—|]\s.*|:\s.*)?\s*$", re.IGNORECASE
)

# A blocklist entry's parts: a dotted domain name (no IP literals), and a local part.
_DOMAIN = re.compile(r"(?=.{1,253}$)[^\s@.\[\]]+(\.[^\s@.\[\]]+)+")
_LOCAL = re.compile(r"[^\s@]+")
DEFAULT_PRIVATE_FLAGS = frozenset({"$private"})


@dataclass(frozen=True)
class Skip:
    reason: str  # a stable machine name, e.g. bulk_mail
    detail: str  # for humans: which header or rule decided it


class BlocklistError(ValueError):
    """A blocklist entry that is neither an address nor ``@domain``; the message says the fix."""


@dataclass(frozen=True)
class Blocklist:
    """Addresses and ``@domain`` entries whose mail is never logged.

    Addresses are compared in canonical form (:func:`canonical_email`), so blocking
    ``jane.doe@gmail.com`` also blocks ``janedoe+crm@googlemail.com``; a domain covers its
    subdomains (``@acme.com`` blocks ``bob@eu.acme.com``). The organization's list and each
    mailbox's list merge with ``|``.
    """

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    plus_addressing_domains: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str], *, plus_addressing_domains: Iterable[str] = ()) -> Blocklist:
        """Entries as written in the config; raises :class:`BlocklistError` for a malformed one.

        ``plus_addressing_domains`` are our own (:attr:`OrgIdentity.plus_addressing_domains`),
        so that an entry and a participant fold ``+tag`` the same way.
        """
        plus = frozenset(normalize_domain(d) for d in plus_addressing_domains)
        addresses: set[str] = set()
        domains: set[str] = set()
        for entry in entries:
            text = entry.strip().lower() if isinstance(entry, str) else ""
            local, at, domain = text.rpartition("@")
            domain = normalize_domain(domain)
            if not at or not _DOMAIN.fullmatch(domain) or not _LOCAL.fullmatch(local or "x"):
                hint = f' (to block a domain write "@{text}")' if not at and _DOMAIN.fullmatch(text) else ""
                raise BlocklistError(
                    f"{entry!r} is not an email address or an @domain such as "
                    f'"jane@example.com" or "@example.com"{hint}'
                )
            if local:
                addresses.add(canonical_email(text, plus))
            else:
                domains.add(domain)
        return cls(frozenset(addresses), frozenset(domains), plus)

    def __or__(self, other: Blocklist) -> Blocklist:
        return Blocklist(
            self.addresses | other.addresses,
            self.domains | other.domains,
            self.plus_addressing_domains | other.plus_addressing_domains,
        )

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains)

    def match(self, address: str) -> str | None:
        """The entry that blocks ``address`` (``jane@x.com`` or ``@x.com``), or None."""
        canonical = canonical_email(address, self.plus_addressing_domains)
        if canonical in self.addresses:
            return canonical
        domain = owning_domain(domain_of(canonical), self.domains)
        return f"@{domain}" if domain else None

    def first_blocked(self, people: Iterable[Participant]) -> tuple[Participant, str] | None:
        """The first participant on the list and the entry that matched, or None."""
        if not self:
            return None
        for person in people:
            entry = self.match(person.email)
            if entry:
                return person, entry
        return None


@dataclass(frozen=True)
class PrivacySettings:
    """Where a mailbox keeps private mail: label, folder and flag names (case-insensitive).

    A folder or label covers its subfolders (``Personal`` covers ``Personal/Family`` and, on
    servers that nest under INBOX with "." as the separator, ``INBOX.Personal.Family``).
    ``flags`` are IMAP keywords (or a connector's marker for the provider's own private
    setting); ``$Private`` by default. No IMAP keyword for "private" is registered with IANA,
    so this is a convention: a Sieve script, a client or a connector sets it.
    """

    labels: frozenset[str] = frozenset()
    folders: frozenset[str] = frozenset()
    flags: frozenset[str] = DEFAULT_PRIVATE_FLAGS

    @classmethod
    def build(
        cls, labels: Iterable[str] = (), folders: Iterable[str] = (), flags: Iterable[str] | None = None
    ) -> PrivacySettings:
        fold = _fold_names
        return cls(fold(labels), fold(folders), DEFAULT_PRIVATE_FLAGS if flags is None else fold(flags))

    def __or__(self, other: PrivacySettings) -> PrivacySettings:
        return PrivacySettings(
            self.labels | other.labels, self.folders | other.folders, self.flags | other.flags
        )


def _fold_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.strip().casefold().strip("/.") for n in names if n.strip())


def private_exclusion(
    folder: str | None, labels: Iterable[str], flags: Iterable[str], settings: PrivacySettings
) -> Skip | None:
    """Private by where the mail is: a private folder or label, or a private flag.

    The pipeline knows all three for a :class:`~connectors.base.RawItem` (``item.labels``,
    ``item.flags``, the folder being synced) and calls this before parsing-based rules.
    """
    if settings.flags:
        for flag in flags:
            if flag.casefold() in settings.flags:
                return Skip("private", f"flag {flag} marks the message private")
    if folder and settings.folders and _in_tree(folder, settings.folders):
        return Skip("private", f"folder {folder!r} is configured as private")
    if settings.labels:
        for label in labels:
            if _in_tree(label, settings.labels):
                return Skip("private", f"label {label!r} is configured as private")
    return None


def _in_tree(name: str, roots: frozenset[str]) -> bool:
    """``name`` is one of ``roots`` or below one, with "/" or "." as the hierarchy separator."""
    name = name.casefold()
    candidates = [name]
    if name[:6] in ("inbox/", "inbox."):  # Courier/Cyrus-style servers nest everything under INBOX
        candidates.append(name[6:])
    for candidate in candidates:
        if candidate in roots:
            return True
        for i, char in enumerate(candidate):
            if char in "/." and candidate[:i] in roots:
                return True
    return False


def message_exclusion(
    msg: ParsedMessage, org: OrgIdentity, log_internal: bool, *, blocklist: Blocklist | None = None
) -> Skip | None:
    """Why ``msg`` must not be logged, or None. See the module docstring for the order."""
    h = msg.headers
    sensitivity = (h.sensitivity or "").strip()
    if sensitivity.lower() in PRIVATE_SENSITIVITY:
        return Skip("private", f"Sensitivity: {sensitivity}")
    if blocklist:
        blocked = blocklist.first_blocked(msg.participants)
        if blocked:
            return _blocked_skip(*blocked)
    return (
        _delivery_report(msg, h)
        or _out_of_office(msg, h)
        or _null_return_path(h)
        or _bulk(h)
        or _auto_submitted(h)
        or _automated_sender(msg.sender)
        or _internal_only(msg.participants, org, log_internal)
    )


def meeting_exclusion(
    meeting: Meeting, org: OrgIdentity, log_internal: bool, *, blocklist: Blocklist | None = None
) -> Skip | None:
    """Why ``meeting`` must not be logged, or None: private, blocklisted, or internal only."""
    classification = _optional(meeting, "classification")
    if classification and classification.strip().lower() in _PRIVATE_CLASSES:
        return Skip("private", f"event marked {classification.strip().upper()}")
    people = ((meeting.organizer,) if meeting.organizer else ()) + meeting.attendees
    if blocklist:
        blocked = blocklist.first_blocked(people)
        if blocked:
            return _blocked_skip(*blocked)
    return _internal_only(people, org, log_internal)


# iCalendar CLASS (RFC 5545 §3.8.1.3) and Graph's event sensitivity: CONFIDENTIAL is stricter
# than PRIVATE (only the busy time may be shown), so both keep the event out.
_PRIVATE_CLASSES = frozenset({"private", "confidential", "personal"})


def _optional(obj: Any, name: str) -> Any:
    """A field the parser does not fill yet (proposed: Headers.return_path, Headers.part_types,
    Meeting.classification); None until it does, so these rules switch on by themselves."""
    return getattr(obj, name, None)


def _blocked_skip(person: Participant, entry: str) -> Skip:
    role = person.role.replace("_", "-")
    return Skip("blocklisted", f"{person.email} ({role}) is on the blocklist as {entry}")


def _delivery_report(msg: ParsedMessage, h: Headers) -> Skip | None:
    if h.content_type in REPORT_TYPES:
        return Skip("delivery_report", f"Content-Type: {h.content_type} (a bounce, delivery or read report)")
    for part in _optional(h, "part_types") or ():
        if part in REPORT_TYPES:
            return Skip("delivery_report", f"a {part} part (a bounce, delivery or read report)")
    if msg.sender and MAIL_SYSTEM_SENDER.match(msg.sender.email.partition("@")[0]):
        return Skip("delivery_report", f"sender {msg.sender.email} is a mail system address")
    return None


def _null_return_path(h: Headers) -> Skip | None:
    """Tested after the out-of-office rules: auto-replies use the null sender too (RFC 3834 §3.3)."""
    return_path = _optional(h, "return_path")
    if return_path is not None and return_path.replace(" ", "") == "<>":
        return Skip("delivery_report", "Return-Path: <> (null sender, used for bounces and receipts)")
    return None


def _out_of_office(msg: ParsedMessage, h: Headers) -> Skip | None:
    if _auto_submitted_value(h) == "auto-replied":
        return Skip("out_of_office", f"Auto-Submitted: {(h.auto_submitted or '').strip()}")
    if h.auto_reply:
        return Skip("out_of_office", "X-Autoreply/X-Autorespond header present")
    if msg.subject and (
        OUT_OF_OFFICE_SUBJECT.match(msg.subject)
        or ((msg.in_reply_to or msg.references) and OUT_OF_OFFICE_PHRASE.match(msg.subject))
    ):
        return Skip("out_of_office", f"subject {msg.subject[:80]!r} is an automatic reply's")
    return None


def _bulk(h: Headers) -> Skip | None:
    if h.list_id:
        return Skip("bulk_mail", f"List-Id: {h.list_id}")
    if h.list_unsubscribe:
        return Skip("bulk_mail", "List-Unsubscribe header present")
    if h.precedence and h.precedence.strip().lower() in BULK_PRECEDENCE:
        return Skip("bulk_mail", f"Precedence: {h.precedence.strip()}")
    return None


def _auto_submitted_value(h: Headers) -> str | None:
    """The keyword of Auto-Submitted, without parameters ("auto-generated; owner-email=...")."""
    if not h.auto_submitted:
        return None
    return h.auto_submitted.partition(";")[0].strip().lower() or None


def _auto_submitted(h: Headers) -> Skip | None:
    value = _auto_submitted_value(h)
    if value and value != "no":
        return Skip("auto_submitted", f"Auto-Submitted: {(h.auto_submitted or '').strip()}")
    return None


def _automated_sender(sender: Participant | None) -> Skip | None:
    if sender and AUTOMATED_SENDER.match(sender.email.partition("@")[0]):
        return Skip("automated_sender", f"sender {sender.email} is an automated address")
    return None


def _internal_only(people: tuple[Participant, ...], org: OrgIdentity, log_internal: bool) -> Skip | None:
    if log_internal or any(not org.is_internal(p.email) for p in people):
        return None
    return Skip("internal_only", "no external participant (only our own organization)")
