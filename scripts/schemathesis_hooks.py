"""Hooks for scripts/schema-check.sh's schemathesis run (SCHEMATHESIS_HOOKS).

Two constraints of the api cannot be written in its OpenAPI document. First, `POST /keys/` refuses an
`expires_at` that is not in the future (422), and JSON Schema has no "now". schemathesis would
otherwise send schema-valid past dates and report their 422 as valid data refused. This hook
moves a generated past `expires_at` into the future, keeping everything else of the case; the
422 for a past date is covered by the api's own tests (api/tests/api/auth.rs). The others, a
function's `dependencies` and `code_zip`, and the names of a function's stored tests, are
described at their hooks.
"""

import base64
import io
import re
import zipfile
from datetime import datetime, timezone

import schemathesis
from schemathesis.engine import observations as _observations

# schemathesis 4.32.5 scans 2xx JSON bodies for links to follow and dies (`ValueError: Invalid
# IPv6 URL`, a "Test Execution Error" that ends the run) on any string it generated that starts
# like "http://[" and that the api stored and shows back (a CORS origin, an env value, an event a
# function returns). Such a string is no link: the scan skips it instead.
_same_origin_path = _observations._same_origin_path


def _same_origin_path_or_none(value, origin):
    try:
        return _same_origin_path(value, origin)
    except ValueError:
        return None


_observations._same_origin_path = _same_origin_path_or_none


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
#
# `on_success` / `on_failure` must name another existing function of the namespace, and
# `schedule` / `schedule_timezone` must be a cron expression and an IANA zone: rules no pattern
# states. Generated destinations are left out (and a schedule or zone within its length becomes
# a valid one, yearly so that it never fires during the run); the api's own tests
# (api/tests/api/async_invoke.rs) send bad ones.
#
# `code_zip` is a base64 .zip whose files must hold the handler's file: a schema-valid string is
# almost never one. A generated string is replaced with a real package of the case's language
# whose handler is `main.handler` (the api's tests, api/tests/api/packages.rs, send bad ones).
@schemathesis.hook.apply_to(method="POST", path="/functions/")
@schemathesis.hook.apply_to(method="PUT", path="/functions/{id}")
def map_case(context, case):
    body = case.body
    if not isinstance(body, dict):
        return case
    if isinstance(body.get("dependencies"), str) and len(body["dependencies"]) <= 65536:
        body = {k: v for k, v in body.items() if k != "dependencies"}
    if isinstance(body.get("route"), str):
        body = {**body, "route": _unique_parameters(body["route"])}
    if isinstance(body.get("code_zip"), str) and body.get("language") in PACKAGES:
        body = {**body, "code_zip": PACKAGES[body["language"]], "handler": "main.handler"}
    for field in ("on_success", "on_failure"):
        if isinstance(body.get(field), str) and len(body[field]) <= 64:
            body = {k: v for k, v in body.items() if k != field}
    if isinstance(body.get("schedule"), str) and len(body["schedule"]) <= 200:
        body = {**body, "schedule": "0 0 1 1 *"}
    if isinstance(body.get("schedule_timezone"), str) and len(body["schedule_timezone"]) <= 64:
        body = {**body, "schedule_timezone": "Europe/Paris"}
    case.body = body
    return case


def _unique_parameters(route):
    """A route's parameter names must differ (`/{a}/{a}` is 422), which its pattern cannot
    say: a repeated name gets a numbered one, everything else of the route unchanged."""
    seen = set()

    def rename(match):
        name, rest = match.group(1), match.group(2)
        unique, n = name, 2
        while unique in seen:
            unique, n = "%s%d" % (name, n), n + 1
        seen.add(unique)
        return "{%s%s}" % (unique, rest)

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}", rename, route)


def _package(name, source):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, source)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# They answer a constant: an echoed event would hand schemathesis' own URL scan whatever it
# generated (a string such as "http://[" crashed it).
PACKAGES = {
    "python": _package("main.py", "def handler(event, context):\n    return {'ok': True}\n"),
    "javascript": _package("main.js", "exports.handler = async () => ({ ok: true });\n"),
}


# The stateful phase fills a case's fields from earlier responses (inferred links) after the case
# hooks ran: a PUT whose `language` became the created function's can carry the package of the
# language it was generated with (a 422 the api is right to answer). Just before the call, the
# package is the one of the language actually sent.
@schemathesis.hook.apply_to(method="POST", path="/functions/")
@schemathesis.hook.apply_to(method="PUT", path="/functions/{id}")
def before_call(context, case, kwargs):
    body = case.body
    if (
        isinstance(body, dict)
        and body.get("code_zip") in PACKAGES.values()
        and body.get("language") in PACKAGES
    ):
        case.body = {**body, "code_zip": PACKAGES[body["language"]]}


# A stored test's `name` must be unique among the function's tests (422 otherwise), which JSON
# Schema cannot state of one property of an array's items: a generated name seen before gets a
# numbered one, still within the pattern. A name outside the pattern (a negative case) stays.
_TEST_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@schemathesis.hook.apply_to(method="PUT", path="/functions/{id}/tests")
def map_case(context, case):
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("tests"), list):
        return case
    seen, tests = set(), []
    for test in body["tests"]:
        name = test.get("name") if isinstance(test, dict) else None
        if isinstance(name, str) and _TEST_NAME.match(name):
            unique, n = name, 2
            while unique in seen:
                unique, n = "%s-%d" % (name[:90], n), n + 1
            seen.add(unique)
            test = {**test, "name": unique}
        tests.append(test)
    case.body = {**body, "tests": tests}
    return case
