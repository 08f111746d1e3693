// The console's code editor: turns every <textarea data-editor="python|javascript"> into a
// CodeMirror 6 editor. Bundled by scripts/vendor-console-assets.sh (esbuild, one minified
// classic script, IIFE) into api/assets/console/vendor/editor.js; edit this file, not that one,
// then run the script again.
//
// - The textarea stays in its form, hidden (the `hidden` attribute and the class
//   `cm-hidden-source`), and holds the editor's text after every change, so a plain form POST
//   (or an htmx request) sends the edited code. Without this script the textarea just works.
// - The editor's content element is named by the textarea's <label for=...> (aria-labelledby)
//   and takes the textarea's aria-describedby, aria-invalid and aria-errormessage, if any.
// - Tab is not bound: it moves focus out of the editor, as on the rest of the page.
// - Works under `Content-Security-Policy: default-src 'self'` with no 'unsafe-inline': the
//   editor's styles go into a constructable stylesheet (document.adoptedStyleSheets), never an
//   inline <style> element (see mountAdopted below); no eval, no new Function.
// - Follows prefers-color-scheme: the light colours are CodeMirror's defaultHighlightStyle, the
//   dark ones the same tags in colours readable on the console's dark background.

import { Compartment, EditorState } from "@codemirror/state";
import {
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import {
  HighlightStyle,
  bracketMatching,
  defaultHighlightStyle,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { StyleModule } from "style-mod";

// CodeMirror mounts its generated CSS with StyleModule.mount(root, modules). style-mod (4.1)
// puts it in a <style> element at the top of <head> when the root is a document (it adopts a
// constructable sheet only for shadow roots), and the console's CSP (no 'unsafe-inline', no
// nonce) blocks such an element: the editor would come out unstyled, with a violation
// reported. So for a document root, mount the same modules, in the same order and with
// style-mod's own merging rule, into one constructable CSSStyleSheet adopted by the document,
// which CSP does not restrict. Other roots, and browsers without adoptedStyleSheets, keep
// style-mod's own way. style-mod is a direct dependency pinned to the one version CodeMirror
// uses, so this patches the StyleModule that CodeMirror calls (the vendor script checks there
// is only one).
const mountInStyleMod = StyleModule.mount;
const adopted = new WeakMap(); // Document -> { sheet, modules }
StyleModule.mount = function mountAdopted(root, modules, options) {
  const win = root && root.nodeType === 9 && root.defaultView;
  if (!win || !("adoptedStyleSheets" in root) || !win.CSSStyleSheet || !("replaceSync" in win.CSSStyleSheet.prototype)) {
    return mountInStyleMod.call(this, root, modules, options);
  }
  let set = adopted.get(root);
  if (!set) adopted.set(root, (set = { sheet: new win.CSSStyleSheet(), modules: [] }));
  let changed = false;
  let j = 0; // where the next module goes: after the previous one
  for (const mod of Array.isArray(modules) ? modules : [modules]) {
    let index = set.modules.indexOf(mod);
    if (index > -1 && index < j) {
      // Mounted before, but now wanted after a module that follows it: move it.
      set.modules.splice(index, 1);
      j--;
      index = -1;
    }
    if (index === -1) {
      set.modules.splice(j++, 0, mod);
      changed = true;
    } else {
      j = index + 1;
    }
  }
  if (changed) set.sheet.replaceSync(set.modules.map((mod) => mod.getRules()).join("\n"));
  if (!root.adoptedStyleSheets.includes(set.sheet)) {
    root.adoptedStyleSheets = [set.sheet, ...root.adoptedStyleSheets];
  }
};

const LANGUAGES = {
  python: () => [python(), indentUnit.of("    ")],
  javascript: () => [javascript(), indentUnit.of("  ")],
};

// defaultHighlightStyle's colours, mapped to ones with enough contrast on a dark background.
const DARK_COLOURS = {
  "#404740": "#8b949e", // meta
  "#708": "#ff7b72", // keyword
  "#219": "#79c0ff", // atom, bool
  "#164": "#79c0ff", // literal (numbers)
  "#a11": "#a5d6ff", // string
  "#e40": "#7ee787", // regexp, escape
  "#00f": "#d2a8ff", // definition of a variable (def, function, class names)
  "#30a": "#ffa657", // local variable
  "#085": "#ffa657", // type, namespace
  "#167": "#ffa657", // class name
  "#256": "#79c0ff", // special variable (self), macro
  "#00c": "#d2a8ff", // definition of a property
  "#940": "#8b949e", // comment
  "#f00": "#ff7b72", // invalid
};
const lightHighlight = HighlightStyle.define(defaultHighlightStyle.specs, { themeType: "light" });
const darkHighlight = HighlightStyle.define(
  defaultHighlightStyle.specs.map((spec) =>
    spec.color && DARK_COLOURS[spec.color] ? { ...spec, color: DARK_COLOURS[spec.color] } : spec,
  ),
  { themeType: "dark" },
);

// 16 lines (line-height 1.4) plus the content's 4px padding above and below.
const MIN_HEIGHT = "calc(22.4em + 8px)";
const consoleTheme = EditorView.theme({
  "&": {
    border: "1px solid var(--line, #d0d7de)",
    borderRadius: "6px",
    maxHeight: `max(70vh, calc(${MIN_HEIGHT} + 2px))`,
    // As a flex or grid item (form.card is a grid), don't grow to the longest line: scroll.
    minWidth: "0",
  },
  "&.cm-focused": { outline: "3px solid var(--accent, #0a58ca)", outlineOffset: "2px" },
  ".cm-scroller": {
    overflow: "auto",
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
  },
  ".cm-content, .cm-gutter": { minHeight: MIN_HEIGHT },
  "&.cm-editor .cm-gutters": {
    backgroundColor: "transparent",
    color: "var(--muted, #57606a)",
    borderRight: "1px solid var(--line, #d0d7de)",
  },
});

const darkScheme = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
const isDark = () => !!(darkScheme && darkScheme.matches);
const views = new Map(); // EditorView -> the Compartment holding its darkTheme
if (darkScheme && darkScheme.addEventListener) {
  darkScheme.addEventListener("change", () => {
    for (const [view, scheme] of views) {
      if (!view.dom.isConnected) views.delete(view);
      else view.dispatch({ effects: scheme.reconfigure(EditorView.darkTheme.of(isDark())) });
    }
  });
}

// The id of the element that names the textarea: its first <label>, given an id if it has none.
function labelId(textarea) {
  const label = textarea.labels && textarea.labels[0];
  if (!label) return null;
  if (!label.id) {
    const base = `${textarea.id || "editor"}-label`;
    let id = base;
    for (let n = 2; document.getElementById(id); n++) id = `${base}-${n}`;
    label.id = id;
  }
  return label.id;
}

const done = new WeakSet();

function attach(textarea) {
  const make = LANGUAGES[textarea.dataset.editor];
  if (!make || done.has(textarea)) return;
  done.add(textarea);

  const aria = {};
  const named = labelId(textarea);
  if (named) aria["aria-labelledby"] = named;
  else if (textarea.getAttribute("aria-label")) aria["aria-label"] = textarea.getAttribute("aria-label");
  // Help text and a field error (aria-describedby="code-error" aria-invalid="true") carry over.
  for (const name of ["aria-describedby", "aria-invalid", "aria-errormessage"]) {
    if (textarea.getAttribute(name)) aria[name] = textarea.getAttribute(name);
  }
  const readOnly = textarea.readOnly || textarea.disabled;
  if (readOnly) aria["aria-readonly"] = "true";

  const scheme = new Compartment();
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        syntaxHighlighting(lightHighlight),
        syntaxHighlighting(darkHighlight),
        scheme.of(EditorView.darkTheme.of(isDark())),
        // No indentWithTab: Tab and Shift-Tab move focus, as everywhere else on the page.
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap]),
        make(),
        consoleTheme,
        EditorView.contentAttributes.of(aria),
        EditorState.readOnly.of(readOnly),
        EditorView.editable.of(!readOnly),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) textarea.value = update.state.doc.toString();
        }),
      ],
    }),
  });

  textarea.hidden = true;
  textarea.classList.add("cm-hidden-source");
  textarea.after(view.dom);
  views.set(view, scheme);

  const form = textarea.form;
  if (form) {
    // A reset puts the textarea back to its original text: show that text in the editor.
    form.addEventListener("reset", () => {
      setTimeout(() => {
        if (textarea.value !== view.state.doc.toString()) {
          view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: textarea.value } });
        }
      });
    });
  }
  // A click on the label focuses the editor instead of the hidden textarea.
  for (const label of textarea.labels || []) {
    label.addEventListener("click", (event) => {
      event.preventDefault();
      view.focus();
    });
  }
}

function attachAll(root) {
  if (root.matches && root.matches("textarea[data-editor]")) attach(root);
  if (root.querySelectorAll) root.querySelectorAll("textarea[data-editor]").forEach(attach);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => attachAll(document));
} else {
  attachAll(document);
}
// Content that htmx swaps in gets its editors too.
document.addEventListener("htmx:load", (event) => attachAll(event.target));
