"""Which turns start the emergency protocol, and what the device says (router/emergency.py)."""

from __future__ import annotations

from router.config import SiteEmergency
from router.emergency import emergency_for


def _site(cfg, **emergency):
    site = cfg.site("city-office")
    return site.model_copy(update={"emergency": SiteEmergency(**emergency) if emergency
                                   else None})


def test_medical_or_safety_flag_at_a_device_starts_it(cfg):
    policy, wf = cfg.transition.policy, cfg.routing.workflows
    e = emergency_for(policy, _site(cfg, number="119"), "robot-1", ["medical"], "ja", wf)
    assert e is not None and e.flags == ("medical",) and e.priority == 100
    assert e.workflow == "emergency" and e.number == "119" and "119" in e.message
    assert e.language == "ja" and "職員" in e.message
    e = emergency_for(policy, _site(cfg, number="110"), "kiosk-1",
                      ["personal_number", "safeguarding"], "pt", wf)
    assert e.flags == ("safeguarding",) and "110" in e.message and e.language == "pt"


def test_per_site_and_per_flag(cfg):
    policy, wf = cfg.transition.policy, cfg.routing.workflows
    assert emergency_for(policy, _site(cfg, number="119", enabled=False), "robot-1",
                         ["medical"], "en", wf) is None
    assert emergency_for(policy, _site(cfg), "robot-1", ["medical"], "en", wf) is None
    assert emergency_for(policy, _site(cfg, number="119"), None, ["medical"], "en", wf) is None
    assert emergency_for(policy, _site(cfg, number="119"), "robot-1",
                         ["collections_enforcement"], "en", wf) is None
    # A language without a configured message gets the English one.
    e = emergency_for(policy, _site(cfg, number="119"), "robot-1", ["medical"], "fr", wf)
    assert e.language == "en" and "119" in e.message
