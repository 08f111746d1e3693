"""Hooks for scripts/schema-check.sh's schemathesis run (SCHEMATHESIS_HOOKS).

Two constraints of the api cannot be written in its OpenAPI document. First, `POST /keys/` refuses an
`expires_at` that is not in the future (422), and JSON Schema has no "now". schemathesis would
otherwise send schema-valid past dates and report their 422 as valid data refused. This hook
moves a generated past `expires_at` into the future, keeping everything else of the case; the
422 for a past date is covered by the api's own tests (api/tests/api/auth.rs). The second, a
function's `dependencies`, is described at its hook, the last one.
"""

from datetime import datetime, timezone

import schemathesis


@schemathesis.hook.apply_to(method="POST", path="/keys/")
def map_case(context, case):
    # A case hook, not a body one: it also sees the cases of the examples and coverage phases.
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("expires_at"), str):
        return case
    try:
        at = datetime.fromisoformat(body["expires_at"].replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return case  # Not a date: a negative case, which the api must refuse as it is.
    if at.tzinfo is None or at > datetime.now(timezone.utc):
        return case
    # 2400 is a leap year: a 29 February moves too.
    case.body = {**body, "expires_at": at.replace(year=2400).isoformat()}
    return case


# `dependencies` is a requirements.txt or a package.json, checked line by line against rules
# (requirements only, registry ranges) a JSON Schema pattern cannot state for both languages
# at once; a schema-valid string is mostly not a requirement. Generated cases leave the field
# out: the api's own tests (api/tests/api/deps.rs) send good and bad ones, and the run has no
# worker token, so a build could never finish anyway. Only a string within the schema's length
# is left out: a case made negative by this field (another type, too long) stays as it is.
@schemathesis.hook.apply_to(method="POST", path="/functions/")
@schemathesis.hook.apply_to(method="PUT", path="/functions/{id}")
def map_case(context, case):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("dependencies"), str) \
            and len(body["dependencies"]) <= 65536:
        case.body = {k: v for k, v in body.items() if k != "dependencies"}
    return case
