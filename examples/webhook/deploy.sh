#!/usr/bin/env bash
# Deploys the webhook example in one language as a public HTTP route, then sends it one signed
# and one forged delivery with curl, as GitHub would.
#   API=http://localhost:8000 FUNCTIONS=http://localhost:8080 KEY=<manage+invoke key> \
#     examples/webhook/deploy.sh python|javascript
# (FUNCTIONS: the functions' own origin, where their routes answer.)
set -euo pipefail
cd "$(dirname "$0")"
language=${1:?python or javascript}
api=${API:-http://localhost:8000}
functions=${FUNCTIONS:-http://localhost:8080}
key=${KEY:?a key with the manage scope}
secret=${WEBHOOK_SECRET:-$(openssl rand -hex 16)}
case $language in
  python) file=handler.py ;;
  javascript) file=handler.js ;;
  *) echo "python or javascript" >&2; exit 2 ;;
esac
name="webhook-$language"

# The function: a public route (`http_auth: none`: GitHub sends no key), POST only.
jq -n --rawfile code "$file" --arg name "$name" --arg language "$language" --arg secret "$secret" '{
  name: $name, route: ("/hooks/" + $name), language: $language, code: $code, timeout: 5,
  http_methods: ["POST"], http_auth: "none", env: {WEBHOOK_SECRET: $secret}
}' | curl -sS -X POST -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
  -d @- "$api/functions/"
echo

# A delivery signed with the secret: 202.
body='{"action":"opened","repository":{"full_name":"octo/hello"}}'
signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')"
curl -sS -X POST -H "X-GitHub-Event: issues" -H "X-Hub-Signature-256: $signature" \
  -H "Content-Type: application/json" -d "$body" -w ' %{http_code}\n' "$functions/hooks/$name"
# A forged one: 401.
curl -sS -X POST -H "X-GitHub-Event: issues" -H "X-Hub-Signature-256: sha256=forged" \
  -d "$body" -w ' %{http_code}\n' "$functions/hooks/$name"
