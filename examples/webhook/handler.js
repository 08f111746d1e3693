// A GitHub-style webhook on a public route: the sender signs the body with a shared secret
// (`X-Hub-Signature-256: sha256=<hex HMAC>`), the function checks the signature and answers
// 202, or 401 when it does not match. The secret is the function's `env` WEBHOOK_SECRET.
const crypto = require("crypto");

exports.handler = async (event) => {
  const raw = Buffer.from(event.body || "", event.isBase64Encoded ? "base64" : "utf8");
  const secret = process.env.WEBHOOK_SECRET || "";
  const sent = Buffer.from(event.headers["x-hub-signature-256"] || "");
  const expected = Buffer.from(
    "sha256=" + crypto.createHmac("sha256", secret).update(raw).digest("hex"),
  );
  if (!secret || sent.length !== expected.length || !crypto.timingSafeEqual(sent, expected)) {
    return { statusCode: 401, body: JSON.stringify({ error: "bad signature" }) };
  }
  const payload = JSON.parse(raw.toString("utf8") || "{}");
  const kind = event.headers["x-github-event"] || "unknown";
  console.log(`${kind} event for ${(payload.repository || {}).full_name}`);
  return { statusCode: 202, body: JSON.stringify({ received: kind, action: payload.action }) };
};
