"""The emergency protocol at a physical site. Pure: which turns start it and what the
device says; router/service/conversation.py carries it out.

A medical or safety flag (policy.yaml ``emergency.flags``) raised on a case at a kiosk or
robot of a site whose sites.yaml ``emergency`` is enabled:
- the case is queued at ``emergency.priority`` on ``emergency.workflow`` (routing.yaml: a
  workflow whose first step is anyone with the language, floor staff included);
- the site's floor monitor raises a blocking alert (with sound when the site asks for it)
  that a supervisor acknowledges; who and when is recorded on the case;
- the device shows the resident, in their language, that staff are coming and the site's
  emergency number (an ``emergency.notice`` command, docs/protocol.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass

from router.policy import PolicyFile

ALERT_KIND = "emergency"


@dataclass(frozen=True, slots=True)
class Emergency:
    flags: tuple[str, ...]
    number: str
    sound: bool
    message: str          # for the resident, in ``language``
    language: str
    priority: int
    workflow: str | None


def emergency_for(policy: PolicyFile, site, device: str | None, flags, language: str,
                  workflows) -> Emergency | None:
    """The emergency to start for a case at ``site`` (a router.config.SiteConfig) with these
    flags, or None: no emergency flag, no device, or the protocol is off at that site."""
    e = policy.emergency
    hit = tuple(f for f in flags if f in e.flags)
    if not hit or device is None or site is None or site.emergency is None \
            or not site.emergency.enabled:
        return None
    template = e.messages.get(language) or e.messages.get("en") or \
        "Help is on the way. Staff are coming to you now. Emergency number: {number}"
    return Emergency(flags=hit, number=site.emergency.number, sound=site.emergency.sound,
                     message=template.replace("{number}", site.emergency.number),
                     language=language if language in e.messages else "en",
                     priority=e.priority,
                     workflow=e.workflow if e.workflow in workflows else None)
