/* Veilig Thuis web chat: the launcher a region puts on its own site with one tag:
 *   <script src="https://GATEWAY/channels/CHANNEL_ID/widget.js" async></script>
 * It adds a "Chat met Veilig Thuis" button; the chat itself opens in a sandboxed
 * iframe served from the gateway's own origin (/channels/CHANNEL_ID/frame), so
 * nothing of the conversation (no text, no keystroke) is ever in this page's DOM
 * or events: scripts of the host page (analytics, session replay) cannot read it.
 * The launcher knows only whether the panel is open. Quick exit inside the frame
 * posts a bare {"type": "vt-exit"} here (checked to come from the gateway's
 * origin and from our frame), and the launcher replaces this page with the
 * channel's exit_url; Escape on this page while the panel is open asks the frame
 * to end the session and leaves the same way. */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var base = new URL(".", script.src);
  var gateway = base.origin;
  var FALLBACK_EXIT = "https://www.google.com/";
  var SANDBOX = "allow-scripts allow-same-origin allow-forms allow-top-navigation-by-user-activation";

  var TEXTS = {
    nl: {
      launcher: "Chat met Veilig Thuis",
      title: "Chat met Veilig Thuis",
      unavailable: "De chat kan hier nu niet worden geopend. Bel gratis 0800-2000 (24/7). " +
        "In acuut gevaar: bel 112."
    },
    en: {
      launcher: "Chat with Veilig Thuis",
      title: "Chat with Veilig Thuis",
      unavailable: "The chat cannot be opened here now. Call 0800-2000 free of charge (24/7). " +
        "In immediate danger: call 112."
    }
  };

  var lang = "nl";
  var status = null;      /* the channel's public status: language and exit_url */
  var leaving = false;
  var container, button, panel, frame, note;

  function t(key) { return TEXTS[lang][key]; }

  function el(tag, className) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    return node;
  }

  function exitUrl() {
    var url = status && status.exit_url;
    return typeof url === "string" && /^https?:\/\//.test(url) ? url : FALLBACK_EXIT;
  }

  function loadStatus() {
    /* Answered (with CORS) only to the channel's allowed origins. */
    return fetch(new URL("status", base).href, { credentials: "omit", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (answer) {
        status = answer;
        lang = answer.language === "en" ? "en" : "nl";
        applyTexts();
        return true;
      })
      .catch(function () { return false; });
  }

  function applyTexts() {
    button.textContent = t("launcher");
    panel.setAttribute("aria-label", t("title"));
    if (frame) { frame.title = t("title"); }
    if (note) { note.textContent = t("unavailable"); }
  }

  function mount() {
    container = el("div");
    container.setAttribute("data-veilig-thuis-chat", "");
    document.body.appendChild(container);
    /* Only to keep the host page's styles off the button and the frame; nothing of the
     * chat is in here. */
    var root = container.attachShadow({ mode: "open" });
    var sheet = el("link");
    sheet.rel = "stylesheet";
    sheet.href = new URL("chat.css", base).href;
    root.appendChild(sheet);
    button = el("button", "vt-launcher vt-primary");
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    panel = el("div", "vt-panel vt-frame-panel");
    panel.hidden = true;
    panel.setAttribute("role", "region");
    root.append(button, panel);
    applyTexts();
    button.addEventListener("click", toggle);
    window.addEventListener("message", fromFrame);
    document.addEventListener("keydown", onKey, true);
    loadStatus();
  }

  function toggle() {
    if (!panel.hidden) {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      return;
    }
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    if (frame) { focusFrame(); return; }
    if (note) { note.focus(); return; }
    (status ? Promise.resolve(true) : loadStatus()).then(function (ok) {
      if (ok) { openFrame(); } else { showUnavailable(); }
    });
  }

  function openFrame() {
    frame = el("iframe", "vt-frame");
    frame.setAttribute("sandbox", SANDBOX);
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = t("title");
    frame.addEventListener("load", focusFrame);
    frame.src = new URL("frame", base).href;
    panel.appendChild(frame);
  }

  /* This origin is not one of the channel's (or the gateway cannot be reached): no chat
   * here, but the numbers, always. */
  function showUnavailable() {
    note = el("p", "vt-unavailable");
    note.tabIndex = -1;
    note.textContent = t("unavailable");
    panel.appendChild(note);
    note.focus();
  }

  function focusFrame() {
    if (!frame || panel.hidden) { return; }
    frame.focus();
    frame.contentWindow.postMessage({ type: "vt-focus" }, gateway);
  }

  function fromFrame(event) {
    if (!frame || event.origin !== gateway || event.source !== frame.contentWindow) { return; }
    var data = event.data;
    if (data && typeof data === "object" && data.type === "vt-exit") { leave(); }
  }

  function onKey(event) {
    if (event.key !== "Escape" || event.repeat || !panel || panel.hidden || leaving) { return; }
    if (!frame) { leave(); return; }
    /* The frame ends the session and answers vt-exit; leave anyway if it does not. */
    frame.contentWindow.postMessage({ type: "vt-exit" }, gateway);
    setTimeout(leave, 1000);
  }

  function leave() {
    if (leaving) { return; }
    leaving = true;
    var target = exitUrl();
    if (container) { container.remove(); }
    window.location.replace(target);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount);
  } else {
    mount();
  }
})();
