// The console's only script: its copy buttons (a key just made). Loaded as a file of the
// console's own origin; no page has inline script (Content-Security-Policy: default-src 'self').
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
