"""A GitHub-style webhook on a public route: the sender signs the body with a shared secret
(`X-Hub-Signature-256: sha256=<hex HMAC>`), the function checks the signature and answers 202,
or 401 when it does not match. The secret is the function's `env` WEBHOOK_SECRET."""
import base64
import hashlib
import hmac
import json
import os


def handler(event, context):
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    secret = os.environ.get("WEBHOOK_SECRET", "").encode()
    sent = event["headers"].get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(sent, expected):
        return {"statusCode": 401, "body": compact({"error": "bad signature"})}
    payload = json.loads(raw or b"{}")
    kind = event["headers"].get("x-github-event", "unknown")
    print(f"{kind} event for {payload.get('repository', {}).get('full_name')}")
    return {"statusCode": 202, "body": compact({"received": kind, "action": payload.get("action")})}


def compact(value):
    return json.dumps(value, separators=(",", ":"))
