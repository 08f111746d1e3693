// The console's own script: copy buttons (a key just made) and the live logs of a function
// (server-sent events of its calls as they end). Loaded as a file of the console's origin; no
// page has inline script (Content-Security-Policy: default-src 'self').
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.value).then(done, () => source.select());
  } else {
    source.select();
    document.execCommand("copy");
    done();
  }
});

// Live logs: one list item per finished call, newest at the bottom; the browser reconnects
// by itself and resumes after the last event it saw (Last-Event-ID). At most 500 items stay.
function followLive() {
  const state = document.getElementById("live-state");
  const lines = document.getElementById("live-lines");
  if (!state || !lines || !state.dataset.stream) return;
  const source = new EventSource(state.dataset.stream);
  source.onopen = () => { state.textContent = "Following: calls appear as they end."; };
  source.onerror = () => { state.textContent = "Disconnected; reconnecting…"; };
  source.addEventListener("invocation", (event) => {
    let call;
    try { call = JSON.parse(event.data); } catch { return; }
    const item = document.createElement("li");
    item.className = "call";
    const head = document.createElement("div");
    const status = document.createElement("span");
    status.className = "status " + (call.status === "success" ? "ok" : "failed");
    status.textContent = call.status;
    const when = new Date(call.created_at).toISOString().replace("T", " ").slice(0, 19);
    head.append(when + " UTC ", status,
      ` ${call.trigger} v${call.function_version} ${call.duration_ms.toFixed(1)} ms` +
      (call.cold_start ? " cold" : "") + ` ${call.invocation_id}`);
    item.append(head);
    const text = [call.logs || "", call.error ? `${call.error.type}: ${call.error.message}` : ""]
      .filter((part) => part).join("\n");
    if (text) {
      const pre = document.createElement("pre");
      pre.textContent = text;
      item.append(pre);
    }
    lines.append(item);
    while (lines.children.length > 500) lines.firstElementChild.remove();
  });
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", followLive);
} else {
  followLive();
}
