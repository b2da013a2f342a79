"""What the page tests share: a real router child process on a copy of config/."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml

from sandbox.procs import RouterProcess


@contextlib.contextmanager
def running_router(cfg: Path, db_url: str):
    """``baton router`` on ``cfg`` and ``db_url``: yields (process, HTTP client), stops both.
    The start waits up to 120 s: a loaded 2-core machine can take ~50 s."""
    proc = RouterProcess(cfg, db_url)
    client = proc.start(timeout=120)
    try:
        yield proc, client
    finally:
        client.close()
        proc.stop()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"


def mateo_takes_appointments(cfg: Path) -> None:
    """The built-in assistant files "I'd rather speak to a person" under account questions
    (appointments skill): give the remote worker Mateo that skill so the telepresence
    workflow's step 1 can offer such chats to him."""
    roster = yaml.safe_load((cfg / "workers.yaml").read_text())
    next(w for w in roster["workers"] if w["id"] == "mateo")["skills"]["appointments"] = 3
    (cfg / "workers.yaml").write_text(yaml.safe_dump(roster, allow_unicode=True))


def escalate_at_kiosk(client, text: str = "Prefiero hablar con una persona, por favor.") -> dict:
    """A resident at kiosk-1 (city office, Spanish): one answered question, then ``text``
    asking for a person. Returns the turn's answer (``case_id``, the escalate ``decision``)."""
    kiosk = {"Authorization": "Bearer demo-kiosk-1-token-0001"}
    r = client.post("/v1/cases", headers=kiosk, json={
        "site": "city-office", "device": "kiosk-1", "language": "es", "escalate": False,
        "transcript": [
            {"speaker": "resident", "language": "es", "text": "¿Dónde pago mis impuestos?",
             "translated": "Where do I pay my taxes?", "translated_language": "en"},
            {"speaker": "ai", "language": "es", "text": "En la ventanilla 3, planta baja."}]})
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/cases/{r.json()['id']}/turns", headers=kiosk, json={
        "text": text, "language": "es", "translated": "I'd rather speak to a real person, please."})
    out = r.json()
    assert out["decision"]["decision"] == "escalate", out
    return out
