"""policy.yaml, playbooks.yaml and assistant.yaml: valid as shipped; a malformed file is a
start-up error (ConfigError) naming the file and the key."""

from __future__ import annotations

import pytest
import yaml

from common.config import ConfigError
from router.transition import TransitionLayer, calibrator_path, load_transition_config


def test_shipped_files_load_and_cross_check(cfg):
    tc = load_transition_config(cfg.directory, languages=set(cfg.languages.languages),
                                skills=set(cfg.skills.skills),
                                sites={s.id for s in cfg.sites.sites})
    assert set(tc.policy.intents) == set(tc.assistant.intents)
    for lang in ("ja", "en", "es", "pt", "zh"):
        assert tc.assistant.phrases.ask_for_person[lang]
        assert tc.assistant.phrases.escalation[lang]


def edit(directory, name, change):
    path = directory / name
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def load(cfg, directory):
    return load_transition_config(directory, languages=set(cfg.languages.languages),
                                  skills=set(cfg.skills.skills),
                                  sites={s.id for s in cfg.sites.sites})


POLICY_CASES = [
    (lambda d: d["risk_classes"]["financial"].update(cost_of_wrong=-1),
     "risk_classes.financial.cost_of_wrong", "greater than 0"),
    (lambda d: d["risk_classes"]["routine"].update(cost=1),
     "risk_classes.routine.cost", "Extra inputs"),
    (lambda d: d["intents"].update(collections="debt"), "intents.collections",
     "risk class 'debt' is not defined"),
    (lambda d: d["intents"].pop("complaint"), "intents.complaint", "has no risk class"),
    (lambda d: d["intents"].update(lottery="routine"), "intents.lottery",
     "not defined in assistant.yaml"),
    (lambda d: d.update(hard_triggers=["asked_for_person", "full_moon"]), "hard_triggers.1",
     "Input should be"),
    (lambda d: d["sentiment"]["bands"].reverse(), "sentiment", "ascending order"),
    (lambda d: d["human"].pop("base"), "human.base", "Field required"),
    (lambda d: d["modes"]["sites"].update({"moon-base": {"default": "joint"}}),
     "modes.sites.moon-base", "not defined in sites.yaml"),
    (lambda d: d["modes"].update(default="robot_only"), "modes.default", "Input should be"),
    (lambda d: d["flags"][0]["phrases"].update(fr=["visa"]), "flags.0.phrases.fr",
     "not defined in languages.yaml"),
    (lambda d: d["flags"][1].update(id=d["flags"][0]["id"]), "flags.1.id", "used twice"),
    (lambda d: d["flags"][0].update(skill="astrology"), "flags.0.skill",
     "not defined in skills.yaml"),
    (lambda d: d.update(multipliers={"escalation_phrase": 0}), "multipliers.escalation_phrase",
     "greater than 0"),
]


@pytest.mark.parametrize("change,key,reason", POLICY_CASES)
def test_malformed_policy_names_the_key(cfg, config_copy, change, key, reason):
    edit(config_copy, "policy.yaml", change)
    with pytest.raises(ConfigError) as e:
        load(cfg, config_copy)
    assert e.value.file.endswith("policy.yaml")
    assert e.value.key == key
    assert reason in e.value.detail


PLAYBOOK_CASES = [
    (lambda d: d["intents"]["collections"][0].pop("text"), "intents.collections.0.text",
     "Field required"),
    (lambda d: d["intents"].update(lottery=[{"text": "x"}]), "intents.lottery",
     "not defined in assistant.yaml"),
    (lambda d: d["flags"].update(full_moon=[{"text": "x"}]), "flags.full_moon",
     "not defined in policy.yaml"),
    (lambda d: d["intents"]["balance_lookup"][0].update(done_by="teleport"),
     "intents.balance_lookup.0.done_by", "tool 'teleport'"),
    (lambda d: d["packet"].update(keep_head=100), "packet", "keep_head"),
    (lambda d: d["summary"].update(max_sentences="many"), "summary.max_sentences",
     "valid integer"),
]


@pytest.mark.parametrize("change,key,reason", PLAYBOOK_CASES)
def test_malformed_playbooks_name_the_key(cfg, config_copy, change, key, reason):
    edit(config_copy, "playbooks.yaml", change)
    with pytest.raises(ConfigError) as e:
        load(cfg, config_copy)
    assert e.value.file.endswith("playbooks.yaml")
    assert e.value.key == key
    assert reason in e.value.detail


ASSISTANT_CASES = [
    (lambda d: d["intents"]["office_hours"].update(examples=["one"]),
     "intents.office_hours.examples", "at least 3"),
    (lambda d: d["intents"]["thanks"]["answers"].update(xx="?"), "intents.thanks.answers.xx",
     "not defined in languages.yaml"),
    (lambda d: d["intents"]["office_hours"].update(skill="juggling"), "intents.office_hours.skill",
     "not defined in skills.yaml"),
    (lambda d: d["intents"]["office_hours"].update(tool="launch"), "intents.office_hours.tool",
     "Input should be"),
    (lambda d: d["phrases"].pop("escalation"), "phrases.escalation", "Field required"),
    (lambda d: d["facts"].update({"atlantis": {"hours": "never"}}), "facts.atlantis",
     "not defined in sites.yaml"),
]


@pytest.mark.parametrize("change,key,reason", ASSISTANT_CASES)
def test_malformed_assistant_config_names_the_key(cfg, config_copy, change, key, reason):
    edit(config_copy, "assistant.yaml", change)
    with pytest.raises(ConfigError) as e:
        load(cfg, config_copy)
    assert e.value.file.endswith("assistant.yaml")
    assert e.value.key == key
    assert reason in e.value.detail


def test_not_yaml_and_missing_file(cfg, config_copy):
    (config_copy / "policy.yaml").write_text("risk_classes: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        load(cfg, config_copy)
    assert "line" in e.value.key and "not valid YAML" in e.value.detail
    (config_copy / "playbooks.yaml").unlink()
    (config_copy / "policy.yaml").write_text((cfg_dir(cfg) / "policy.yaml").read_text())
    with pytest.raises(ConfigError) as e:
        load(cfg, config_copy)
    assert "missing" in e.value.detail and e.value.file.endswith("playbooks.yaml")


def cfg_dir(cfg):
    from pathlib import Path

    return Path(cfg.directory)


def test_layer_loads_the_fitted_calibrator(cfg, config_copy, tmp_path, monkeypatch):
    from router.calibration import Calibrator, CurveMap

    monkeypatch.setenv("BATON_DATA_DIR", str(tmp_path / "data"))
    layer = TransitionLayer.load(cfg.model_copy(update={"directory": str(config_copy)}))
    assert layer.calibrator.maps == {}  # nothing fitted yet: identity
    Calibrator({("*", "*"): CurveMap("platt", a=1.0, b=-1.0)}).save(
        tmp_path / "data" / "calibrator.json")
    layer = TransitionLayer.load(cfg.model_copy(update={"directory": str(config_copy)}))
    assert calibrator_path(layer.cfg.policy) == tmp_path / "data" / "calibrator.json"
    assert layer.calibrator.calibrate("builtin", "routine", 0.5) == pytest.approx(0.2689, 1e-3)
