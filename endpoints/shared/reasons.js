// Why a case came to a person, in plain language (the router's reason codes are for logs
// and KPIs; router/escalation.py makes them).
const PLAIN = {
  asked_for_person: "The resident asked for a person",
  regulatory_flag: "It touches a legal or regulatory matter",
  repeated_misunderstanding: "The AI misunderstood the resident more than once",
  assistant_gave_up: "The AI could not help with this",
  ai_time_limit: "The resident spent too long with the AI",
  escalation_phrase: "The resident said something that needs a person",
  expected_cost: "The AI was likely to get this wrong, and getting it wrong is costly",
  human_connected: "A person was already connected",
  mode_human_primary: "Cases like this always go to a person",
  joint_assist: "The AI asked a person to help alongside",
  already_waiting: "The resident was already waiting for a person",
  emergency: "Emergency",
};

export function plainReason(code) {
  const [head, ...rest] = String(code).split(":");
  const key = ["hard", "soft"].includes(head) ? rest.join(":") : code;
  if (PLAIN[key]) return PLAIN[key];
  const [k, detail] = key.split(":");
  if (k === "regulatory_flag" && detail) return `Regulatory matter: ${detail.replace(/_/g, " ")}`;
  if (PLAIN[k]) return `${PLAIN[k]} (${detail})`;
  return key.replace(/[_:]/g, " ");
}

// Descriptors the decision lists next to its reasons (the intent class, the sentiment, the
// confidence band): context for the numbers, not why the case came to a person.
const CONTEXT = ["intent_class:", "sentiment:", "band:", "confidence:"];

// The first few reasons, in the decision's order (hard triggers first), without repeats.
export function plainReasons(codes, max = 3) {
  const out = [];
  for (const c of codes || []) {
    if (CONTEXT.some((p) => String(c).startsWith(p))) continue;
    const t = plainReason(c);
    if (!out.includes(t)) out.push(t);
  }
  return out.slice(0, max);
}
