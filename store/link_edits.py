"""Links set by hand (``syncd link`` / ``syncd unlink``) and the review queue.

A link set by hand wins forever: a recompute never replaces it, and an unlink is kept
as a ``rejected`` row so that the matcher never links that deal again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Activity, ActivityLink, Company, Opportunity
from store.queries import activity_by_message_id, clean_message_id, iso
from store.sync_state import now


class LinkError(Exception):
    """The message or the deal named on the command line was not found (or is ambiguous)."""


def find_activity(session: Session, message_id: str) -> Activity:
    activity = activity_by_message_id(session, message_id)
    if activity is None:
        raise LinkError(
            f"no logged email or meeting has the Message-ID or UID {clean_message_id(message_id)!r}"
        )
    return activity


def find_deal(session: Session, name: str) -> Opportunity:
    """A deal by name (case-insensitive); "Company: Deal" picks among deals of the same name."""
    company, sep, deal = name.partition(":")
    query = select(Opportunity).where(Opportunity.name_key == (deal if sep else name).strip().casefold())
    if sep:
        query = query.join(Company, Company.id == Opportunity.company_id).where(
            Company.name_key == company.strip().casefold()
        )
    deals = list(session.scalars(query))
    if not deals:
        hint = session.scalars(
            select(Opportunity.name)
            .where(Opportunity.name_key.contains(name.strip().casefold()[:20]))
            .limit(5)
        ).all()
        raise LinkError(f"no deal named {name!r}" + (f" (did you mean: {', '.join(hint)}?)" if hint else ""))
    if len(deals) > 1:
        raise LinkError(f"{len(deals)} deals are named {name!r}: write it as 'Company: {name}'")
    return deals[0]


def _link_row(session: Session, activity: Activity, deal: Opportunity) -> ActivityLink:
    row = session.scalar(
        select(ActivityLink).where(
            ActivityLink.activity_id == activity.id,
            ActivityLink.target_type == "opportunity",
            ActivityLink.target_id == deal.id,
        )
    )
    if row is None:
        row = ActivityLink(
            activity_id=activity.id, target_type="opportunity", target_id=deal.id, created_at=now()
        )
        session.add(row)
    return row


def link(session: Session, message_id: str, deal_name: str, who: str = "by hand") -> str:
    activity, deal = find_activity(session, message_id), find_deal(session, deal_name)
    row = _link_row(session, activity, deal)
    row.status, row.manual, row.confidence, row.rule = "linked", True, 1.0, "manual"
    row.reason = f"linked {who}"
    # The question the review queue asked is answered: drop the other suggestions.
    for other in activity.links:
        if other is not row and other.status == "suggested" and other.target_type == "opportunity":
            session.delete(other)
    return f"{activity.subject!r} linked to {deal.name!r}"


def unlink(session: Session, message_id: str, deal_name: str, who: str = "by hand") -> str:
    activity, deal = find_activity(session, message_id), find_deal(session, deal_name)
    row = _link_row(session, activity, deal)
    was = row.status if row.id is not None else None
    row.status, row.manual, row.confidence, row.rule = "rejected", True, 0.0, "manual"
    row.reason = f"unlinked {who}; never linked again automatically"
    if was is None:
        return f"{activity.subject!r} was not linked to {deal.name!r}; it never will be automatically"
    return f"{activity.subject!r} unlinked from {deal.name!r}"


def review_queue(session: Session, limit: int | None = None) -> list[dict[str, Any]]:
    """Activities with suggested deal links, the most confident first, with what is already linked."""
    query = (
        select(Activity)
        .join(ActivityLink, ActivityLink.activity_id == Activity.id)
        .where(ActivityLink.status == "suggested")
        .group_by(Activity.id)
        .order_by(func.max(ActivityLink.confidence).desc(), Activity.occurred_at.desc())
    )
    if limit:
        query = query.limit(limit)
    items = []
    for activity in session.scalars(query):
        deals = [link for link in activity.links if link.target_type == "opportunity"]
        suggestions = sorted((d for d in deals if d.status == "suggested"), key=lambda x: -x.confidence)
        names = dict(
            session.execute(
                select(Opportunity.id, Opportunity.name).where(
                    Opportunity.id.in_([d.target_id for d in deals])
                )
            ).all()
        )
        items.append(
            {
                "message_id": activity.message_id or activity.ical_uid,
                "kind": activity.kind,
                "subject": activity.subject,
                "occurred_at": iso(activity.occurred_at),
                "linked": [names.get(d.target_id, "") for d in deals if d.status == "linked"],
                "suggestions": [
                    {"deal": names.get(s.target_id, ""), "confidence": s.confidence, "reason": s.reason}
                    for s in suggestions
                ],
            }
        )
    return items
