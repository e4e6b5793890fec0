"""Human-readable output of the CLI (the --json forms print the views as they are)."""

from __future__ import annotations

from typing import Any

from syncd.pipeline import AccountReport


def sync_report(report: AccountReport) -> str:
    skipped = report.skipped
    parts = [
        f"{report.total('logged')} logged",
        f"{report.total('merged')} already known from another mailbox or folder",
        f"{sum(skipped.values())} skipped"
        + (f" ({', '.join(f'{r}: {n}' for r, n in sorted(skipped.items()))})" if skipped else ""),
        f"{report.total('quarantined')} quarantined",
    ]
    if report.total("updated"):
        parts.insert(1, f"{report.total('updated')} meetings updated")
    if report.total("deleted"):
        parts.append(f"{report.total('deleted')} marked deleted")
    line = f"{report.account}: " + ", ".join(parts)
    return line + (f"\n  error: {report.error}" if report.error else "")


def activity(item: dict[str, Any]) -> str:
    when = (item["occurred_at"] or "no date")[:16].replace("T", " ")
    kind = item["direction"]
    if item["kind"] == "meeting":
        kind = "meeting" if item.get("meeting_status") != "CANCELLED" else "meeting (cancelled)"
    lines = [f"{when}  {kind:<8}  {item['subject'] or '(no subject)'}"]
    people = [p["email"] for p in item["participants"] if p["role"] in ("from", "organizer")]
    if people:
        lines.append(f"    from: {', '.join(people)}")
    if item["contacts"]:
        lines.append(f"    contacts: {', '.join(item['contacts'])}")
    if item["companies"]:
        lines.append(f"    companies: {', '.join(item['companies'])}")
    for deal in item["opportunities"]:
        lines.append(f"    deal: {deal['name']} (confidence {deal['confidence']:.2f}, rule {deal['rule']})")
    if not item["opportunities"]:
        deal_notes = [n for n in item.get("not_linked", []) if "deal" in n]
        lines.extend(f"    {note}" for note in deal_notes[:1])
    for insight in item["insights"]:
        lines.append(f"    {insight['kind']}: {insight['text']}")
    return "\n".join(lines)


def explanation(view: dict[str, Any]) -> str:
    status = view["status"]
    lines = [f"{view['message_id']}: {status}"]
    if status == "logged":
        act = view["activity"]
        lines.append(f"  {act['kind']} {act['direction']}: {act['subject']} ({act['occurred_at']})")
        for src in view["sources"]:
            gone = " (deleted)" if "deleted_at" in src else ""
            lines.append(f"  seen in {src['account']}/{src['folder']} as {src['provider_id']}{gone}")
        if view.get("rules", {}).get("exclusions"):
            lines.append(f"  exclusions: {view['rules']['exclusions']}")
        for person in view.get("rules", {}).get("participants", []):
            lines.append(f"  participant {person['email']}: {person['identified_as']}")
        verbs = {
            "linked": "linked to",
            "suggested": "suggested (review queue):",
            "rejected": "unlinked by hand:",
        }
        for link in view["links"]:
            how = "by hand" if link["manual"] else f"rule {link['rule']}, confidence {link['confidence']:.2f}"
            lines.append(
                f"  {verbs[link['status']]} {link['type']} {link['target']} ({how}): {link['reason']}"
            )
        for cand in view.get("rules", {}).get("deal_candidates", []):
            signals = "; ".join(f"{s['rule']} {s['weight']:+.2f}" for s in cand["signals"])
            lines.append(
                f"  candidate {cand['deal']}: score {cand['score']:.2f}, "
                f"confidence {cand['confidence']:.2f} ({signals})"
            )
        for note in view["not_linked"]:
            lines.append(f"  {note}")
    elif status in ("skipped", "quarantined"):
        lines.append(f"  reason: {view['reason']}")
        if view.get("detail"):
            lines.append(f"  detail: {view['detail']}")
        for where in view["seen_in"]:
            lines.append(f"  seen in {where['account']}/{where['folder']} as {where['provider_id']}")
    else:
        lines.append(f"  {view['detail']}")
    return "\n".join(lines)


def status(view: dict[str, Any]) -> str:
    t = view["totals"]
    lines = [
        f"store: {t['activities']} activities, {t['contacts']} contacts, {t['companies']} companies, "
        f"{t['opportunities']} opportunities"
    ]
    for acc in view["accounts"]:
        lines.append(
            f"{acc['name']} ({acc['provider']}, {acc['owner']}): {acc['state']}, "
            f"last sync {acc['last_sync_at'] or 'never'}, {acc['activities']} activities"
        )
        if acc["skipped"]:
            lines.append("  skipped: " + ", ".join(f"{r}: {n}" for r, n in acc["skipped"].items()))
        if acc["last_error"]:
            lines.append(f"  last error: {acc['last_error']}")
    return "\n".join(lines)


def review(queue: list[dict[str, Any]]) -> str:
    if not queue:
        return "the review queue is empty"
    lines = []
    for item in queue:
        when = (item["occurred_at"] or "no date")[:10]
        lines.append(f"{when}  {item['subject'] or '(no subject)'}  <{item['message_id']}>")
        if item["linked"]:
            lines.append(f"    linked: {', '.join(item['linked'])}")
        for s in item["suggestions"]:
            lines.append(f"    suggested: {s['deal']} (confidence {s['confidence']:.2f})")
    lines.append("decide with: syncd link MESSAGE_ID DEAL_NAME, or syncd unlink MESSAGE_ID DEAL_NAME")
    return "\n".join(lines)
