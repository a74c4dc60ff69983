/* Veilig Thuis web chat: the conversation itself. It runs only in pages of the
 * gateway's own origin: the standalone page (/channels/CHANNEL_ID/, data-mode
 * "page") and the framed chat (/channels/CHANNEL_ID/frame, data-mode "frame")
 * that the launcher (widget.js) opens in a sandboxed iframe on a region's own
 * site, so nothing of the conversation is ever in the host page's DOM or events.
 * Keeps nothing on the device: no cookies, no localStorage, no IndexedDB. The
 * session token lives in this script's memory only. Quick exit (the button,
 * Escape, or Shift pressed three times) ends the session on the server, empties
 * the page and replaces the top page with a neutral site: in a frame it navigates
 * the top page itself when the person's click allows it, and always posts a bare
 * {"type": "vt-exit"} to the launcher, which replaces its own page. */
(function () {
  "use strict";

  var script = document.currentScript;
  var base = new URL(".", script.src);
  var framed = script.getAttribute("data-mode") === "frame";

  var TEXTS = {
    nl: {
      title: "Chat met Veilig Thuis",
      brand: "Veilig Thuis",
      switchTo: "English",
      switchLabel: "Switch to English",
      exit: "Snel weg",
      exitHint: "Druk op Esc of drie keer op Shift om deze pagina meteen te verlaten.",
      heading: function (region) { return "Chat met " + region; },
      open: "De chat is nu open.",
      closed: function (when) { return "De chat is nu gesloten. We zijn er weer op " + when + "."; },
      closedNoTime: "De chat is nu gesloten.",
      closedNote: "Je kunt toch een bericht sturen; we lezen het zo snel mogelijk.",
      phone: "Bel gratis 0800-2000, dag en nacht (24/7).",
      emergency: "In acuut gevaar? Bel 112.",
      start: "Start de chat",
      loading: "Even geduld…",
      conversation: "Gesprek",
      you: "Jij",
      them: "Veilig Thuis",
      sending: "wordt verstuurd…",
      sent: "verstuurd",
      label: "Jouw bericht",
      send: "Verstuur",
      busy: "Het is nu erg druk met nieuwe chats vanaf deze verbinding. Probeer het over een tijdje " +
        "opnieuw, of bel gratis 0800-2000 (24/7). In acuut gevaar: bel 112.",
      reconnecting: "De verbinding is even weg. We proberen het opnieuw; je berichten gaan niet verloren.",
      expired: "Je chat is gestopt omdat het een tijd stil was. Start een nieuwe chat als je wilt.",
      ended: "De chat is beëindigd.",
      tooLarge: function (n) { return "Je bericht is te lang (maximaal " + n + " tekens)."; },
      rateLimited: "Je stuurt veel berichten achter elkaar. Wacht even; we versturen het straks.",
      failed: "Er ging iets mis. Probeer het opnieuw.",
      empty: "Typ eerst een bericht.",
      place: function (n) { return "Je bent nummer " + n + " in de rij."; }
    },
    en: {
      title: "Chat with Veilig Thuis",
      brand: "Veilig Thuis",
      switchTo: "Nederlands",
      switchLabel: "Schakel naar Nederlands",
      exit: "Quick exit",
      exitHint: "Press Escape or Shift three times to leave this page at once.",
      heading: function (region) { return "Chat with " + region; },
      open: "The chat is open now.",
      closed: function (when) { return "The chat is closed now. We are back on " + when + "."; },
      closedNoTime: "The chat is closed now.",
      closedNote: "You can still send a message; we will read it as soon as we can.",
      phone: "Call 0800-2000 free of charge, day and night (24/7).",
      emergency: "In immediate danger? Call 112.",
      start: "Start the chat",
      loading: "One moment…",
      conversation: "Conversation",
      you: "You",
      them: "Veilig Thuis",
      sending: "sending…",
      sent: "sent",
      label: "Your message",
      send: "Send",
      busy: "It is very busy right now with new chats from this connection. Please try again in a " +
        "while, or call 0800-2000 free of charge (24/7). In immediate danger: call 112.",
      reconnecting: "The connection dropped. We are trying again; your messages will not be lost.",
      expired: "Your chat stopped because it was quiet for a while. Start a new chat if you like.",
      ended: "The chat has ended.",
      tooLarge: function (n) { return "Your message is too long (at most " + n + " characters)."; },
      rateLimited: "You are sending many messages in a row. Wait a moment; we will send it shortly.",
      failed: "Something went wrong. Please try again.",
      empty: "Type a message first.",
      place: function (n) { return "You are number " + n + " in the queue."; }
    }
  };

  var state = {
    lang: document.documentElement.lang === "en" ? "en" : "nl",
    status: null,
    session: null,
    socket: null,
    nextSeq: 1,
    pending: [],          /* {seq, text, item} not yet acknowledged, in order */
    lastReply: 0,
    place: null,          /* the place in the team's queue while waiting for a counsellor */
    retry: 0,
    busy: false,          /* a new chat was refused: too many from this connection */
    ended: false,
    shiftPresses: []
  };

  function t(key) { return TEXTS[state.lang][key]; }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* ---- building the interface ---- */

  var ui = {};

  function mount() {
    build(document.getElementById("vt-chat"));
    applyTexts();
    loadStatus();
    setInterval(loadStatus, 60000);
    if (framed) { window.addEventListener("message", fromLauncher); }
  }

  /* The launcher may ask for two things, nothing more: focus (the panel was opened) and
   * quick exit (Escape on the host page). Only from the page that framed this one. */
  function fromLauncher(event) {
    if (window.parent === window || event.source !== window.parent) { return; }
    var ancestors = window.location.ancestorOrigins;
    if (ancestors && ancestors.length && event.origin !== ancestors[0]) { return; }
    var data = event.data;
    if (!data || typeof data !== "object") { return; }
    if (data.type === "vt-focus") {
      ui.exit.focus();
    } else if (data.type === "vt-exit") {
      quickExit();
    }
  }

  function build(container) {
    var app = el("div", "vt-app");
    var bar = el("div", "vt-bar");
    ui.brand = el("span", "vt-title");
    ui.lang = el("button", "vt-lang");
    ui.lang.type = "button";
    ui.exit = el("button", "vt-exit");
    ui.exit.type = "button";
    ui.exit.id = "vt-exit";
    ui.exitHint = el("p", "vt-hint");
    ui.exitHint.id = "vt-exit-hint";
    ui.exit.setAttribute("aria-describedby", "vt-exit-hint");
    bar.append(ui.brand, ui.exit, ui.lang);

    var status = el("section", "vt-status");
    status.setAttribute("aria-live", "polite");
    ui.heading = el("h1", "vt-heading");
    ui.state = el("p", "vt-state");
    ui.closedNote = el("p");
    ui.closedNote.hidden = true;
    ui.phone = el("p");
    ui.emergency = el("p", "vt-emergency");
    status.append(ui.heading, ui.state, ui.closedNote, ui.phone, ui.emergency);

    ui.start = el("button", "vt-start vt-primary");
    ui.start.type = "button";

    var conversation = el("section", "vt-conversation");
    conversation.hidden = true;
    ui.conversation = conversation;
    /* Always in the page (a live region must exist before its text changes); empty when
     * the person is not waiting. */
    ui.place = el("p", "vt-place");
    ui.place.setAttribute("aria-live", "polite");
    ui.place.setAttribute("aria-atomic", "true");
    ui.logRegion = el("div", "vt-log-region");
    ui.logRegion.setAttribute("role", "log");
    ui.logRegion.setAttribute("aria-live", "polite");
    ui.log = el("ol", "vt-log");
    ui.logRegion.appendChild(ui.log);
    var form = el("form", "vt-form");
    form.setAttribute("novalidate", "");
    ui.label = el("label");
    ui.label.htmlFor = "vt-input";
    ui.input = el("textarea");
    ui.input.id = "vt-input";
    ui.input.rows = 3;
    ui.input.setAttribute("autocomplete", "off");
    ui.send = el("button", "vt-primary");
    ui.send.type = "submit";
    form.append(ui.label, ui.input, ui.send);
    conversation.append(ui.place, ui.logRegion, form);

    ui.notice = el("p", "vt-notice");
    ui.notice.setAttribute("role", "alert");
    /* Not an error: the calm page when a new chat is refused, with the numbers in it. */
    ui.busy = el("p", "vt-busy");
    ui.busy.setAttribute("role", "status");

    app.append(bar, ui.exitHint, status, ui.busy, ui.start, conversation, ui.notice);
    container.appendChild(app);
    ui.app = app;

    ui.lang.addEventListener("click", function () {
      state.lang = state.lang === "nl" ? "en" : "nl";
      applyTexts();
    });
    ui.exit.addEventListener("click", quickExit);
    ui.start.addEventListener("click", startChat);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      sendMessage();
    });
    ui.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        sendMessage();
      }
    });
  }

  function applyTexts() {
    ui.app.lang = state.lang;
    document.documentElement.lang = state.lang;
    document.title = t("title");
    ui.busy.textContent = state.busy ? t("busy") : "";
    ui.brand.textContent = t("brand");
    ui.lang.textContent = t("switchTo");
    ui.lang.setAttribute("aria-label", t("switchLabel"));
    ui.lang.lang = state.lang === "nl" ? "en" : "nl";
    ui.exit.textContent = t("exit");
    ui.exitHint.textContent = t("exitHint");
    ui.phone.textContent = t("phone");
    ui.emergency.textContent = t("emergency");
    ui.start.textContent = state.status ? t("start") : t("loading");
    ui.start.disabled = !state.status;
    ui.logRegion.setAttribute("aria-label", t("conversation"));
    ui.label.textContent = t("label");
    ui.send.textContent = t("send");
    showStatus();
    showPlace();
    Array.prototype.forEach.call(ui.log.children, function (item) { labelItem(item); });
  }

  function showPlace() {
    ui.place.textContent = state.place ? TEXTS[state.lang].place(state.place) : "";
  }

  function showStatus() {
    var status = state.status;
    ui.heading.textContent = TEXTS[state.lang].heading(status ? status.region : "Veilig Thuis");
    if (!status) { ui.state.textContent = t("loading"); return; }
    if (status.open) {
      ui.state.textContent = t("open");
      ui.state.className = "vt-state vt-state-open";
      ui.closedNote.hidden = true;
    } else {
      ui.state.textContent = status.next_open_text
        ? TEXTS[state.lang].closed(status.next_open_text[state.lang])
        : t("closedNoTime");
      ui.state.className = "vt-state vt-state-closed";
      ui.closedNote.textContent = t("closedNote");
      ui.closedNote.hidden = false;
    }
    ui.input.maxLength = status.max_message_chars;
  }

  function loadStatus() {
    fetch(new URL("status", base).href, { credentials: "omit", cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (state.ended) { return; }
        state.status = status;
        applyTexts();
      })
      .catch(function () { /* the next try comes in a minute; the phone numbers are shown anyway */ });
  }

  /* ---- the conversation ---- */

  function say(text) { ui.notice.textContent = text || ""; }

  function addItem(mine, text, seq) {
    var item = el("li", mine ? "vt-mine" : "vt-theirs");
    item.dataset.mine = mine ? "1" : "0";
    if (seq !== undefined) { item.dataset.seq = String(seq); }
    var meta = el("span", "vt-meta");
    var body = el("span", "vt-text", text);
    item.append(meta, body);
    ui.log.appendChild(item);
    labelItem(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function labelItem(item) {
    var meta = item.querySelector(".vt-meta");
    if (item.dataset.mine === "1") {
      meta.textContent = t("you") + " · " + (item.dataset.acked === "1" ? t("sent") : t("sending"));
    } else {
      meta.textContent = t("them");
    }
  }

  function startChat() {
    ui.start.hidden = true;
    ui.conversation.hidden = false;
    say("");
    state.busy = false;
    ui.busy.textContent = "";
    state.session = null;
    state.nextSeq = 1;
    state.pending = [];
    state.lastReply = 0;
    state.place = null;
    showPlace();
    connect();
    ui.input.focus();
  }

  function socketUrl() {
    var url = new URL("socket", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function connect() {
    if (state.ended) { return; }
    var socket = new WebSocket(socketUrl());
    state.socket = socket;
    socket.addEventListener("open", function () {
      state.retry = 0;
      if (state.session) {
        socket.send(JSON.stringify({ type: "resume", session: state.session, last_reply: state.lastReply }));
      } else {
        socket.send(JSON.stringify({ type: "start" }));
      }
    });
    socket.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (error) { return; }
      handle(frame, socket);
    });
    socket.addEventListener("close", function () {
      if (state.socket !== socket || state.ended || ui.start.hidden === false) { return; }
      say(t("reconnecting"));
      var delay = Math.min(5000, 500 * Math.pow(2, state.retry++));
      setTimeout(connect, delay);
    });
  }

  function flushPending(socket) {
    state.pending.forEach(function (entry) {
      socket.send(JSON.stringify({ type: "message", seq: entry.seq, text: entry.text }));
    });
  }

  function handle(frame, socket) {
    if (frame.type === "started") {
      state.session = frame.session;
      say("");
      flushPending(socket);
    } else if (frame.type === "resumed") {
      acknowledgeUpTo(frame.stored);
      say("");
      flushPending(socket);
    } else if (frame.type === "ack") {
      acknowledgeUpTo(frame.seq);
    } else if (frame.type === "reply") {
      if (frame.seq > state.lastReply) {
        state.lastReply = frame.seq;
        addItem(false, frame.text);
      }
      socket.send(JSON.stringify({ type: "received", seq: frame.seq }));
    } else if (frame.type === "queue") {
      /* null: no longer waiting (a counsellor has the conversation, or it was closed) */
      state.place = typeof frame.place === "number" && frame.place > 0 ? frame.place : null;
      showPlace();
    } else if (frame.type === "expired" || frame.type === "ended") {
      finish(frame.type === "expired" ? t("expired") : t("ended"));
    } else if (frame.type === "error") {
      if (frame.error === "too_large") {
        say(TEXTS[state.lang].tooLarge(state.status ? state.status.max_message_chars : 2000));
        drop(frame.seq);
      } else if (frame.error === "rate_limited" && !state.session) {
        busy();  /* a new chat refused: too many from this connection */
      } else if (frame.error === "rate_limited") {
        say(t("rateLimited"));
        setTimeout(function () { if (state.socket === socket) { flushPending(socket); } }, 10000);
      } else if (frame.error === "unknown_session") {
        finish(t("expired"));
      } else {
        say(t("failed"));
      }
    }
  }

  function acknowledgeUpTo(seq) {
    state.pending = state.pending.filter(function (entry) {
      if (entry.seq <= seq) {
        entry.item.dataset.acked = "1";
        labelItem(entry.item);
        return false;
      }
      return true;
    });
  }

  function drop(seq) {
    state.pending = state.pending.filter(function (entry) {
      if (entry.seq === seq) { entry.item.remove(); return false; }
      return true;
    });
  }

  function finish(message) {
    var socket = state.socket;
    state.socket = null;
    state.session = null;
    state.pending = [];
    state.place = null;
    showPlace();
    if (socket) { socket.close(); }
    say(message);
    ui.conversation.hidden = true;
    ui.log.replaceChildren();
    ui.start.hidden = false;
  }

  /* The calm page: no error, the numbers, and the start button to try again later. */
  function busy() {
    finish("");
    state.busy = true;
    ui.busy.textContent = t("busy");
  }

  function sendMessage() {
    var text = ui.input.value.trim();
    if (!text) { say(t("empty")); return; }
    var limit = state.status ? state.status.max_message_chars : 2000;
    if (text.length > limit) { say(TEXTS[state.lang].tooLarge(limit)); return; }
    say("");
    var entry = { seq: state.nextSeq++, text: text, item: addItem(true, text) };
    state.pending.push(entry);
    ui.input.value = "";
    var socket = state.socket;
    if (socket && socket.readyState === WebSocket.OPEN && state.session) {
      socket.send(JSON.stringify({ type: "message", seq: entry.seq, text: text }));
    }
  }

  /* ---- quick exit ---- */

  function quickExit() {
    if (state.ended) { return; }
    state.ended = true;
    /* A framed page may navigate the top page only while the person's own click (not Escape,
     * which gives no activation) allows it; the launcher does it otherwise. */
    var activated = !navigator.userActivation || navigator.userActivation.isActive;
    var exitUrl = (state.status && state.status.exit_url) || "https://www.google.com/";
    var token = state.session;
    var socket = state.socket;
    if (token) {
      try { if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify({ type: "end" })); } } catch (error) { /* leaving anyway */ }
      /* Always this one request, socket or not: its answer carries Clear-Site-Data. */
      try { fetch(new URL("end", base).href, { method: "POST", body: token, keepalive: true, credentials: "same-origin", cache: "no-store" }); } catch (error) { /* leaving anyway */ }
    }
    state.session = null;
    state.pending = [];
    state.status = null;
    state.socket = null;
    if (socket) { try { socket.close(); } catch (error) { /* leaving anyway */ } }
    document.title = "";
    document.body.replaceChildren();
    if (!framed || window.top === window) {
      window.location.replace(exitUrl);
      return;
    }
    /* One navigation, not two racing: the top page itself when the person's click allows it,
     * else the launcher (a bare message, nothing else in it). */
    if (activated) {
      try { window.top.location.replace(exitUrl); return; } catch (error) { /* the launcher does it */ }
    }
    var ancestors = window.location.ancestorOrigins;
    var launcher = ancestors && ancestors.length ? ancestors[0] : "*";
    try { window.parent.postMessage({ type: "vt-exit" }, launcher); } catch (error) { /* nothing left to try */ }
  }

  document.addEventListener("keydown", function (event) {
    if (event.repeat) { return; }
    if (event.key === "Escape") {
      quickExit();
    } else if (event.key === "Shift") {
      var now = Date.now();
      state.shiftPresses = state.shiftPresses.filter(function (at) { return now - at < 1000; });
      state.shiftPresses.push(now);
      if (state.shiftPresses.length >= 3) { quickExit(); }
    } else {
      state.shiftPresses = [];
    }
  }, true);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount);
  } else {
    mount();
  }
})();
