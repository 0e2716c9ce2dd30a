/* The template editor's visual mode: Quill 2 (quill.js, BSD-3, committed beside this file)
 * with the workspace's variables in its toolbar, talking Streamlit's v1 component protocol
 * by hand (postMessage), so there is nothing to build.
 *
 * - Variables and template tags ({{ … }}, {% … %}) show as chips: an inline embed whose
 *   value is the exact Jinja source. The HTML sent back to Python carries that source
 *   byte for byte (see serialize).
 * - "Variables ▾" and "Image ▾" insert at Quill's selection, in the browser: no round trip.
 * - Nothing is sent back until the user changes something, so opening and saving a
 *   template leaves its HTML as it was. Template HTML enters Quill only through its
 *   clipboard converter (an inert DOMParser document, known formats only): no script or
 *   event handler of a template runs here.
 */
(function () {
  "use strict";

  const Delta = Quill.import("delta");
  const Embed = Quill.import("blots/embed");
  const BaseImage = Quill.import("formats/image");

  // A Jinja tag on one line, not across an embed (an image or another chip).
  const TAG_RE = /\{\{[^\n\uFFFC]*?\}\}|\{%[^\n\uFFFC]*?%\}/g;
  // {{ name }} or {{ name | default("fallback") }}: shown as the field's label.
  const SIMPLE_RE =
    /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(?:\|\s*default\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\)\s*)?\}\}$/;
  const INLINE_FORMATS = ["bold", "italic", "underline", "strike", "color", "background", "link"];
  const FORMATS = [
    "bold", "italic", "underline", "strike", "header", "color", "background", "list", "indent",
    "align", "link", "blockquote", "image", "mwvar",
  ];
  const IMG_ATTRIBUTES = ["alt", "height", "width", "style"];

  let labels = {}; // variable name -> label, from Python
  let serialized = null; // chip sources collected while serializing

  function unquote(literal) {
    if (literal[0] === '"') {
      try {
        return JSON.parse(literal);
      } catch (e) {
        return literal.slice(1, -1);
      }
    }
    return literal.slice(1, -1).replace(/\\(.)/g, "$1");
  }

  function describe(source) {
    const m = SIMPLE_RE.exec(source);
    if (m && Object.prototype.hasOwnProperty.call(labels, m[1])) {
      return { kind: "var", label: labels[m[1]], fallback: m[2] ? unquote(m[2]) : "" };
    }
    const inner = source.slice(2, -2).replace(/^[-+]|[-+]$/g, "").trim();
    return { kind: source.startsWith("{%") ? "logic" : "expr", label: inner, fallback: "" };
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  class VariableBlot extends Embed {
    static create(source) {
      const node = super.create(source);
      const d = describe(source);
      node.setAttribute("data-source", source);
      node.setAttribute("title", source);
      if (d.kind !== "var") node.classList.add("mw-" + d.kind);
      const label = document.createElement("span");
      label.className = "mw-var-label";
      label.textContent = d.label;
      node.appendChild(label);
      if (d.fallback) {
        const fallback = document.createElement("span");
        fallback.className = "mw-var-fallback";
        fallback.textContent = d.fallback;
        node.appendChild(fallback);
      }
      return node;
    }

    static value(node) {
      return node.getAttribute("data-source");
    }

    html() {
      const source = this.domNode.getAttribute("data-source") || "";
      if (serialized) {
        serialized.push(source);
        return "\uE000" + (serialized.length - 1) + "\uE001";
      }
      return escapeHtml(source); // copy to the clipboard: the tag as text
    }
  }
  VariableBlot.blotName = "mwvar";
  VariableBlot.tagName = "span";
  VariableBlot.className = "mw-var";

  // Images keep the attributes mail needs (alt text, size, max-width style).
  class MailImage extends BaseImage {
    static formats(node) {
      const formats = {};
      IMG_ATTRIBUTES.forEach((name) => {
        if (node.hasAttribute(name)) formats[name] = node.getAttribute(name);
      });
      return formats;
    }

    format(name, value) {
      if (IMG_ATTRIBUTES.indexOf(name) >= 0) {
        if (value) this.domNode.setAttribute(name, value);
        else this.domNode.removeAttribute(name);
      } else {
        super.format(name, value);
      }
    }
  }

  // A link whose address is a template tag ({{ unsubscribe_url }}) is kept as written;
  // every other address goes through Quill's check (no javascript: and the like).
  const BaseLink = Quill.import("formats/link");
  class MailLink extends BaseLink {
    static sanitize(url) {
      return /^\s*\{[{%]/.test(url) ? url : super.sanitize(url);
    }
  }

  Quill.register(VariableBlot);
  Quill.register(MailImage, true);
  Quill.register(MailLink, true);
  // Alignment as an inline style: mail clients know text-align, not Quill's ql-align-* classes.
  Quill.register(Quill.import("attributors/style/align"), true);

  // Bodies saved by the old editor carry ql-align-* classes: read them as the style.
  function withAlignStyles(html) {
    if (html.indexOf("ql-align-") < 0) return html;
    const doc = new DOMParser().parseFromString(html, "text/html"); // inert: nothing runs or loads
    doc.querySelectorAll('[class*="ql-align-"]').forEach((el) => {
      const m = /(?:^|\s)ql-align-(center|right|justify)(?:\s|$)/.exec(el.className);
      if (m) el.style.textAlign = m[1];
    });
    return doc.body.innerHTML;
  }

  // ------------------------------------------------------------- Streamlit protocol
  function send(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data), "*");
  }

  let frameHeight = 0;
  function fitFrame() {
    const height = Math.ceil(document.getElementById("mw-root").getBoundingClientRect().height) + 4;
    if (height !== frameHeight) {
      frameHeight = height;
      send("streamlit:setFrameHeight", { height: height });
    }
  }

  // ------------------------------------------------------------------------ editor
  let quill = null;
  let version = null;
  let original = ""; // the HTML Python gave, returned as is while nothing changed
  let baseline = ""; // what Quill makes of it
  let lastSent = null;
  let loading = false;
  let chipping = false;
  let timer = null;

  function serialize() {
    serialized = [];
    try {
      // Quill writes every space as &nbsp; (no line could wrap in a mail client); a typed
      // non-breaking space stays a character, so every entity here is one of those.
      const html = quill.getSemanticHTML().replace(/&nbsp;/g, " ");
      const sources = serialized;
      return html.replace(/\uE000(\d+)\uE001/g, (_, i) => sources[Number(i)]);
    } finally {
      serialized = null;
    }
  }

  function emitNow() {
    clearTimeout(timer);
    timer = null;
    if (!quill || loading) return;
    const html = serialize();
    const value = html === baseline ? (lastSent === null ? null : original) : html;
    if (value === null || value === lastSent) return;
    lastSent = value;
    send("streamlit:setComponentValue", { value: value, dataType: "json" });
  }

  function emitSoon() {
    clearTimeout(timer);
    timer = setTimeout(emitNow, 400);
  }

  // Template tags typed or pasted as text become chips.
  function chipify(source) {
    const spans = [];
    let text = "";
    quill.getContents().ops.forEach((op) => {
      const start = text.length;
      text += typeof op.insert === "string" ? op.insert : "\uFFFC";
      spans.push([start, text.length, op.attributes]);
    });
    const found = [];
    TAG_RE.lastIndex = 0;
    let m;
    while ((m = TAG_RE.exec(text))) found.push([m.index, m[0]]);
    if (!found.length) return;
    let change = new Delta();
    let last = 0;
    found.forEach(([index, tag]) => {
      const span = spans.find((s) => s[0] <= index && index < s[1]);
      const attributes = span && span[2] ? Object.assign({}, span[2]) : undefined;
      change = change.retain(index - last).delete(tag.length).insert({ mwvar: tag }, attributes);
      last = index + tag.length;
    });
    quill.updateContents(change, source);
  }

  function load(html) {
    loading = true;
    try {
      quill.setContents(quill.clipboard.convert({ html: withAlignStyles(html || "") }), "silent");
      chipify("silent");
      quill.history.clear();
      baseline = serialize();
    } finally {
      loading = false;
    }
    original = html || "";
    lastSent = null;
  }

  function create() {
    quill = new Quill("#editor", {
      theme: "snow",
      formats: FORMATS,
      placeholder: "Write your email…",
      modules: { toolbar: { container: "#toolbar" } },
    });
    // What a mail body may hold but an editor cannot show: dropped, not turned into text.
    ["script", "style", "title", "noscript", "template", "head"].forEach((tag) => {
      quill.clipboard.addMatcher(tag, () => new Delta());
    });
    quill.on("text-change", (delta, old, source) => {
      if (loading) return;
      if (source === "user" && !chipping) {
        chipping = true;
        try {
          chipify("user");
        } finally {
          chipping = false;
        }
      }
      emitSoon();
    });
    quill.on("selection-change", (range) => {
      if (range === null && timer !== null) emitNow(); // left the editor: send at once
    });
  }

  function cursor() {
    const range = quill.getSelection(true);
    return range || { index: Math.max(0, quill.getLength() - 1), length: 0 };
  }

  function insertEmbed(embed, attributes) {
    const range = cursor();
    const change = new Delta().retain(range.index).delete(range.length).insert(embed, attributes);
    quill.updateContents(change, "user");
    quill.setSelection(range.index + 1, 0, "user");
  }

  function inlineFormatsAtCursor() {
    const formats = quill.getFormat();
    const inline = {};
    INLINE_FORMATS.forEach((name) => {
      if (formats[name] !== undefined && !Array.isArray(formats[name])) inline[name] = formats[name];
    });
    return Object.keys(inline).length ? inline : undefined;
  }

  // ------------------------------------------------------------------ the two menus
  const varButton = document.getElementById("mw-var-button");
  const imgButton = document.getElementById("mw-img-button");
  const varMenu = document.getElementById("mw-var-menu");
  const imgMenu = document.getElementById("mw-img-menu");
  const fallbackInput = document.getElementById("mw-fallback");
  const menus = [
    [varButton, varMenu],
    [imgButton, imgMenu],
  ];

  function closeMenus() {
    menus.forEach(([button, menu]) => {
      menu.hidden = true;
      button.setAttribute("aria-expanded", "false");
    });
  }

  function toggle(button, menu) {
    const open = menu.hidden;
    closeMenus();
    if (open) {
      quill.getSelection(); // let Quill remember where the cursor is before focus moves
      menu.style.top = document.getElementById("toolbar").offsetHeight + 4 + "px";
      menu.hidden = false;
      button.setAttribute("aria-expanded", "true");
    }
  }

  function snippet(variable, fallback) {
    if (fallback && variable.group !== "System") {
      return "{{ " + variable.name + " | default(" + JSON.stringify(fallback) + ") }}";
    }
    return "{{ " + variable.name + " }}";
  }

  function buildVariableMenu(variables) {
    const list = document.getElementById("mw-var-list");
    list.textContent = "";
    let group = null;
    variables.forEach((variable) => {
      if (variable.group !== group) {
        group = variable.group;
        const heading = document.createElement("div");
        heading.className = "mw-group";
        heading.textContent = group;
        list.appendChild(heading);
      }
      const item = document.createElement("button");
      item.type = "button";
      item.className = "mw-item";
      item.setAttribute("role", "menuitem");
      item.dataset.name = variable.name;
      const label = document.createElement("span");
      label.textContent = variable.label;
      const name = document.createElement("code");
      name.textContent = variable.name;
      item.append(label, name);
      item.addEventListener("mousedown", (e) => e.preventDefault()); // keep the selection
      item.addEventListener("click", () => {
        const fallback = fallbackInput.value.trim();
        closeMenus();
        insertEmbed({ mwvar: snippet(variable, fallback) }, inlineFormatsAtCursor());
        fallbackInput.value = "";
      });
      list.appendChild(item);
    });
  }

  function insertImage() {
    const url = document.getElementById("mw-img-url").value.trim();
    const alt = document.getElementById("mw-img-alt").value.trim();
    const error = document.getElementById("mw-img-error");
    if (!/^https?:\/\/[^\s"'<>]+$/i.test(url)) {
      error.hidden = false;
      return;
    }
    error.hidden = true;
    closeMenus();
    const attributes = { style: "max-width:100%;height:auto" };
    if (alt) attributes.alt = alt;
    insertEmbed({ image: url }, attributes);
    document.getElementById("mw-img-url").value = "";
    document.getElementById("mw-img-alt").value = "";
  }

  varButton.addEventListener("mousedown", (e) => e.preventDefault());
  imgButton.addEventListener("mousedown", (e) => e.preventDefault());
  varButton.addEventListener("click", () => toggle(varButton, varMenu));
  imgButton.addEventListener("click", () => toggle(imgButton, imgMenu));
  document.getElementById("mw-img-insert").addEventListener("click", insertImage);
  document.getElementById("mw-img-url").addEventListener("keydown", (e) => {
    if (e.key === "Enter") insertImage();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeMenus();
  });
  document.addEventListener("mousedown", (e) => {
    const inside = menus.some(([button, menu]) => menu.contains(e.target) || button.contains(e.target));
    if (!inside) closeMenus();
  });

  // ------------------------------------------------------------------------ render
  function onRender(args, disabled) {
    labels = {};
    (args.variables || []).forEach((v) => {
      labels[v.name] = v.label;
    });
    buildVariableMenu(args.variables || []);
    document.documentElement.style.setProperty("--mw-editor-height", (args.height || 360) + "px");
    if (!quill) create();
    if (args.version !== version) {
      version = args.version;
      load(args.value || "");
    }
    const off = disabled || !!args.disabled;
    quill.enable(!off);
    varButton.disabled = off;
    imgButton.disabled = off;
    fitFrame();
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const data = event.data || {};
    if (data.type === "streamlit:render") onRender(data.args || {}, !!data.disabled);
  });
  // Focus leaving the frame (the Save button's mousedown, say): send what is pending first.
  window.addEventListener("blur", () => {
    if (timer !== null) emitNow();
  });
  new ResizeObserver(fitFrame).observe(document.getElementById("mw-root"));
  send("streamlit:componentReady", { apiVersion: 1 });
})();
