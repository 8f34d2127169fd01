"""Optional plan refinement by a language model behind an OpenAI-compatible chat endpoint.

The rule-based plan stands on its own; this only proposes changes to it. Nothing here runs
unless the user asks (``execscope analyze --llm``) and names an endpoint. The request is one
JSON POST made with the standard library's ``urllib``: a vendor SDK would add a large
dependency for a single call. Every suggested change is validated by the plan model; invalid
ones are reported and left out, never merged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from execscope.plan import Plan, PlanError, Target

from ._model import Analysis

#: Upper bound of the analysis summary sent to the model, in characters.
MAX_SUMMARY_CHARS = 60_000

_SYSTEM_PROMPT = """You refine an instrumentation plan for execscope, a tracer that records calls of
selected Python functions. You get a JSON summary of a static analysis (roles with evidence,
the most complex functions, message flows) and the current plan targets. Reply with ONE JSON
object: {"changes": [{"pattern": "module:qualname-glob", "level": "off|timing|args|full",
"sample_rate": 0..1, "min_duration_ms": >=0, "reason": "why"}], "remove": ["pattern", ...]}.
Only propose changes you can justify from the summary; keep hot trivial functions cheap."""


class LlmNotConfigured(RuntimeError):
    """No endpoint is configured: the refinement was asked for but cannot run."""


class LlmError(RuntimeError):
    """The endpoint failed or answered with something that is not a usable suggestion."""


@dataclass(frozen=True)
class Refinement:
    plan: Plan
    applied: tuple[str, ...]
    rejected: tuple[str, ...]


def refine_plan(
    analysis: Analysis,
    plan: Plan,
    *,
    url: str | None,
    api_key: str | None,
    model: str,
    timeout_s: float = 60.0,
) -> Refinement:
    if not url:
        raise LlmNotConfigured(
            "no model endpoint is configured: set EXECSCOPE_LLM_URL to an OpenAI-compatible base URL "
            "(for example http://localhost:8000/v1) and, if it needs one, EXECSCOPE_LLM_API_KEY"
        )
    reply = _chat(url, api_key, model, _summary(analysis, plan), timeout_s)
    return merge_suggestions(plan, reply, model)


def merge_suggestions(plan: Plan, reply: Any, model: str) -> Refinement:
    """Apply the model's ``changes`` and ``remove`` to ``plan``; invalid items are rejected with a reason."""
    if not isinstance(reply, dict):
        raise LlmError("the model's answer is not a JSON object")
    targets = {target.pattern: target for target in plan.targets}
    applied: list[str] = []
    rejected: list[str] = []
    for pattern in reply.get("remove", []) or []:
        if isinstance(pattern, str) and pattern in targets:
            del targets[pattern]
            applied.append(f"removed {pattern}")
        else:
            rejected.append(f"remove {pattern!r}: no such target")
    for change in reply.get("changes", []) or []:
        if not isinstance(change, dict) or not isinstance(change.get("pattern"), str):
            rejected.append(f"change {change!r}: not an object with a pattern")
            continue
        base = targets.get(change["pattern"], Target(pattern=change["pattern"]))
        fields = {
            key: change[key] for key in ("level", "sample_rate", "min_duration_ms", "reason") if key in change
        }
        fields["reason"] = f"{fields.get('reason', base.reason)} (suggested by {model})".strip()
        try:
            updated = replace(base, **fields)
        except (PlanError, TypeError) as error:
            rejected.append(f"change {change['pattern']}: {error}")
            continue
        targets[updated.pattern] = updated
        verb = "updated" if change["pattern"] in {t.pattern for t in plan.targets} else "added"
        applied.append(f"{verb} {updated.pattern} -> {updated.level}")
    merged = Plan(
        version=plan.version,
        targets=tuple(targets.values()),
        estimate=plan.estimate,
        generated_by=f"{plan.generated_by}+llm:{model}",
    )
    return Refinement(merged, tuple(applied), tuple(rejected))


def _summary(analysis: Analysis, plan: Plan) -> str:
    complex_functions = sorted(analysis.functions, key=lambda fn: -fn.cyclomatic)[:40]
    summary = {
        "roles": [
            {
                "name": r.name,
                "role": r.role,
                "confidence": r.confidence,
                "evidence": [e.detail for e in r.evidence],
            }
            for r in analysis.recognitions
            if r.role != "library"
        ],
        "complex_functions": [
            {"name": fn.name, "cyclomatic": fn.cyclomatic, "loops": fn.loops, "io": list(fn.io)}
            for fn in complex_functions
        ],
        "flows": [{"from": e.source, "to": e.target, "kind": e.kind} for e in analysis.flows.edges],
        "plan": [{"pattern": t.pattern, "level": t.level, "reason": t.reason} for t in plan.targets],
    }
    text = json.dumps(summary, separators=(",", ":"))
    return text[:MAX_SUMMARY_CHARS]


def _chat(url: str, api_key: str | None, model: str, content: str, timeout_s: float) -> Any:
    endpoint = url if url.endswith("/chat/completions") else url + "/chat/completions"
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": content}],
            "response_format": {"type": "json_object"},
            "temperature": 0,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise LlmError(f"{endpoint} answered HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise LlmError(f"cannot reach {endpoint}: {getattr(error, 'reason', error)}") from None
    except ValueError:
        raise LlmError(f"{endpoint} did not answer with JSON") from None
    try:
        message = answer["choices"][0]["message"]["content"]
        return json.loads(message)
    except (KeyError, IndexError, TypeError, ValueError):
        raise LlmError("the model's answer holds no JSON plan suggestion") from None
