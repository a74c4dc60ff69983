/* The counsellor console: signing in (password, then the code from the authenticator
 * app), setting up that second step, the team's queue (live, through server-sent
 * events), a conversation with claim, reply, transfer, the team's internal notes (apart
 * from the messages), the handover note of a transfer, export, the call-back on a channel
 * that carries no replies (Masker 19) and close with its registration, one's own
 * sessions, for coordinators the wall board, the figures (Cijfers, with charts made on the
 * server) and their team's standard answers, and, for
 * the privacy officer only, the access log. Talks only to /api/v1/ with the
 * HttpOnly session cookie; the CSRF token lives in memory only. */
(function () {
  "use strict";
  var SECTIONS = ["signin", "enrol", "recovery", "queue", "conversation", "board", "reports", "responses", "sessions",
    "audit"];
  var ACTIONS = [
    ["sign_in", "aangemeld"],
    ["sign_in_failed", "aanmelden mislukt"],
    ["sign_out", "afgemeld"],
    ["list", "wachtrij bekeken"],
    ["read", "gesprek gelezen"],
    ["claim", "gesprek opgepakt"],
    ["reply", "geantwoord"],
    ["transfer", "overgedragen"],
    ["close", "gesprek afgesloten"],
    ["note", "notitie toegevoegd"],
    ["board", "wallboard bekeken"],
    ["move", "naar ander team verplaatst"],
    ["answers_edit", "standaardantwoord gewijzigd"],
    ["reveal", "contactgegevens ingezien"],
    ["export", "geëxporteerd"],
    ["admin_reload", "configuratie herladen"],
    ["audit_read", "toegangslog gelezen"],
    ["report_read", "cijfers bekeken"],
    ["report_export", "cijfers gedownload"],
    ["second_factor_changed", "tweede stap ingesteld"],
    ["password_changed", "wachtwoord gewijzigd"]
  ];
  var ACTION_LABELS = {};
  ACTIONS.forEach(function (pair) { ACTION_LABELS[pair[0]] = pair[1]; });
  var METHODS = {
    "password": "wachtwoord",
    "password+totp": "wachtwoord + code uit app",
    "password+recovery": "wachtwoord + herstelcode",
    "oidc": "via je organisatie",
    "admin-token": "beheertoken"
  };
  var RESULTS = { ok: "gelukt", denied: "geweigerd", failed: "mislukt" };
  var ROLES = { "counsellor": "", "coordinator": "coördinator", "privacy-officer": "privacy officer" };
  var WRONG_CODE = "De code klopt niet of is verlopen. Gebruik de huidige code uit je app, of een ongebruikte herstelcode.";
  var WRONG_ENROL_CODE = "De code klopt niet of is verlopen. Gebruik de huidige code uit je app.";
  var TOO_MANY = "Te veel pogingen om aan te melden. Wacht een paar minuten en probeer het dan opnieuw.";
  var ENDED = "Je sessie is beëindigd. Meld je opnieuw aan.";
  // The Secure session cookie is dropped over plain http on any host but localhost.
  var COOKIE_DROPPED = "Aanmelden lukt niet via gewoon http op dit adres: de browser bewaart het beveiligde " +
    "sessiecookie alleen via https (of op localhost). Gebruik https, of zet voor een proef desk.secure_cookies: false.";
  // Answers that belong to signing in itself, not a sign that the session ended.
  var SIGN_IN_ANSWERS = ["wrong_credentials", "second_factor_required", "wrong_second_factor", "too_many_attempts"];

  var state = {
    me: null, csrf: "", open: null, events: null, pending: null, oidc: null, epoch: 0,
    nav: 0, seq: 0, shown: 0, queueShown: 0, wrapUp: null, revealed: null, noReply: {},
    left: {}, outcomes: null, current: null, boardTeams: [], boardSeq: 0, boardShown: 0, boardTimer: null,
    answers: { open: false, items: [], active: -1, seq: 0, timer: null, dismissed: false },
    reportLabels: null, reportSeq: 0,
    teams: null, managed: { items: [], placeholders: [], values: {}, editing: null, seq: 0 }
  };
  var $ = function (id) { return document.getElementById(id); };

  function notice(text) { $("notice").textContent = text || ""; }
  function status(text) { $("status").textContent = text || ""; }

  // `own401`: the caller handles a 401 itself (signing out).
  function api(method, path, body, own401) {
    var epoch = state.epoch;
    var options = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (method !== "GET" && state.csrf) { options.headers["X-CSRF-Token"] = state.csrf; }
    return fetch(path, options).then(function (response) {
      return response.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (ignored) { data = {}; }
        return { status: response.status, data: data };
      });
    }, function () {
      return { status: 0, data: { detail: "Geen verbinding met de server. Probeer het zo opnieuw." } };
    }).then(function (answer) {
      // An answer to a request of a session that has since ended changes nothing.
      if (epoch !== state.epoch) { return new Promise(function () {}); }
      if (path === "/api/v1/me" && answer.data && answer.data.oidc !== undefined) { showOidc(answer.data.oidc); }
      var error = answer.data && answer.data.error;
      if (answer.status === 401 && !own401 && SIGN_IN_ANSWERS.indexOf(error) < 0) {
        if (state.me) { signedOut(ENDED, true); } else { show("signin"); }
        return new Promise(function () {});
      }
      if (answer.status === 403 && error === "enrol_second_factor" && state.me) {
        state.me.second_factor = "enrol";
        start(state.me);
        return new Promise(function () {});
      }
      return answer;
    });
  }

  var NAV = {
    queue: "nav-queue", conversation: "nav-queue", board: "nav-board", reports: "nav-reports", responses: "nav-responses",
    sessions: "nav-sessions", audit: "nav-audit"
  };

  function show(section, focus) {
    SECTIONS.forEach(function (name) { $(name).hidden = name !== section; });
    ["nav-queue", "nav-board", "nav-reports", "nav-responses", "nav-sessions", "nav-audit"].forEach(function (id) {
      if (NAV[section] === id) { $(id).setAttribute("aria-current", "page"); } else { $(id).removeAttribute("aria-current"); }
    });
    if (focus) {
      var heading = $(section).querySelector("h1");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  function when(iso, seconds) {
    var options = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: "Europe/Amsterdam" };
    if (seconds) { options.year = "numeric"; options.second = "2-digit"; }
    return new Date(iso).toLocaleString("nl-NL", options);
  }

  function minutes(seconds) {
    var m = Math.floor(seconds / 60);
    return m < 1 ? "< 1 min" : m + " min";
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) { td.className = className; }
    row.appendChild(td);
    return td;
  }

  function busy(form, on) {
    form.querySelectorAll("button").forEach(function (button) { button.disabled = on; });
  }

  // ---- signing in -------------------------------------------------------------

  function showOidc(oidc) {
    state.oidc = oidc || null;
    var usable = state.oidc && typeof state.oidc.login === "string" && state.oidc.login.charAt(0) === "/" &&
      state.oidc.login.charAt(1) !== "/";
    $("oidc-offer").hidden = !usable;
    if (usable) {
      $("oidc-login").textContent = state.oidc.label || "Inloggen via je organisatie";
      $("oidc-login").setAttribute("href", state.oidc.login);
    }
  }

  function passwordStep() {
    state.pending = null;
    $("password-step").hidden = false;
    $("counsellor").disabled = false;
    $("password").disabled = false;
    $("code-step").hidden = true;
    $("code").disabled = true;
    $("other-user").hidden = true;
    $("code").value = "";
    $("password").value = "";
    showOidc(state.oidc);
  }

  function codeStep(counsellor) {
    $("password-step").hidden = true;
    $("counsellor").disabled = true;  // hidden: out of the form's checks
    $("password").disabled = true;
    $("code-step").hidden = false;
    $("code").disabled = false;
    $("other-user").hidden = false;
    $("oidc-offer").hidden = true;
    $("code-for").textContent = "Aanmelden als " + counsellor + ": nog één stap.";
    $("code").value = "";
    $("code").focus();
  }

  function submitSignIn(event) {
    event.preventDefault();
    var form = $("signin-form");
    var body;
    if (state.pending) {
      var code = $("code").value.trim();
      if (!code) { notice("Vul de code uit je app in."); $("code").focus(); return; }
      body = { counsellor: state.pending.counsellor, password: state.pending.password, code: code };
    } else {
      body = { counsellor: $("counsellor").value.trim(), password: $("password").value };
      if (!body.counsellor || !body.password) { notice("Vul je gebruikersnaam en wachtwoord in."); return; }
    }
    busy(form, true);
    api("POST", "/api/v1/session", body).then(function (answer) {
      busy(form, false);
      $("password").value = "";
      $("code").value = "";
      var error = answer.data.error;
      if (answer.status === 200) {
        passwordStep();
        notice("");
        status("");
        // The server's word counts only where the page really is on http (not behind a proxy's https).
        if (answer.data.cookie_problem && window.location.protocol === "http:") {
          notice(answer.data.cookie_problem);
          return;
        }
        state.csrf = answer.data.csrf_token;
        loadMe(true);
      } else if (answer.status === 401 && error === "second_factor_required") {
        state.pending = { counsellor: body.counsellor, password: body.password };
        notice("");
        codeStep(body.counsellor);
      } else if (answer.status === 401 && error === "wrong_second_factor") {
        notice(WRONG_CODE);
        $("code").focus();
      } else if (answer.status === 429) {
        notice(TOO_MANY);
      } else if (answer.status === 401 || answer.status === 422) {
        passwordStep();
        notice("Onbekende gebruikersnaam of verkeerd wachtwoord.");
        $("counsellor").focus();
      } else {
        notice(answer.data.detail || "Aanmelden lukte niet. Probeer het opnieuw.");
      }
    });
  }

  // `justSignedIn`: a 401 right after a good sign-in means the session cookie did not come back.
  function loadMe(justSignedIn) {
    api("GET", "/api/v1/me", undefined, justSignedIn).then(function (answer) {
      if (answer.status === 200) { start(answer.data); return; }
      show("signin");
      if (justSignedIn && answer.status === 401) { state.csrf = ""; notice(COOKIE_DROPPED); }
    });
  }

  function clearPrivate() {
    ["queue-rows", "transcript", "notes", "sessions-rows", "audit-rows", "recovery-codes", "totp-qr", "board-rows",
      "move-team", "answer-list", "answer-placeholders", "reports-tables", "reports-charts"].forEach(function (id) {
      $(id).replaceChildren();
    });
    ["totp-secret", "audit-summary", "who", "conversation-state", "handover", "reveal-result", "earlier",
      "person-left", "board-summary", "answer-team", "reports-heading", "reports-period"].forEach(function (id) {
      $(id).textContent = "";
    });
    ["reply", "note", "transfer-team", "transfer-reason", "enrol-code", "audit-account", "audit-conversation",
      "audit-since", "audit-until", "reveal-reason", "move-reason"].forEach(function (id) { $(id).value = ""; });
    closeAnswers();
    hideCloseForm();
    hideAnswerForm();
    resetTransferTeams();
    state.teams = null;
    state.managed = { items: [], placeholders: [], values: {}, editing: null, seq: 0 };
    state.revealed = null;
    state.wrapUp = null;
    state.noReply = {};
    state.left = {};
    state.outcomes = null;
    state.current = null;
    state.boardTeams = [];
    stopBoardTimer();
    // Another coordinator may sign in next: none of these figures, teams or choices stay.
    $("reports-result").hidden = true;
    state.reportLabels = null;
    var reportTeams = $("reports-team");
    while (reportTeams.options.length > 1) { reportTeams.remove(1); }
    reportTeams.value = "all";
    $("reports-kind").value = "last";
    ["reports-inventory", "reports-week", "reports-month", "reports-from", "reports-to"].forEach(function (id) { $(id).value = ""; });
    $("audit-action").value = "";
  }

  function signedOut(message, asError) {
    state.epoch += 1;
    navigate();
    closeEvents();
    state.me = null;
    state.csrf = "";
    state.open = null;
    clearPrivate();
    $("menu").hidden = true;
    $("counsellor").value = "";
    passwordStep();
    show("signin", true);
    notice(asError ? message : "");
    status(asError ? "" : message);
  }

  function signOut() {
    api("DELETE", "/api/v1/session", undefined, true).then(function (answer) {
      if (answer.status === 204 || answer.status === 401) { signedOut("Je bent afgemeld."); return; }
      notice(answer.data.detail || "Afmelden lukte niet. Probeer het opnieuw.");
    });
  }

  // ---- after signing in -------------------------------------------------------

  function isOfficer() { return state.me && state.me.role === "privacy-officer"; }
  function isCoordinator() { return state.me && state.me.role === "coordinator"; }

  function start(me) {
    state.me = me;
    if (me.csrf_token) { state.csrf = me.csrf_token; }
    var role = ROLES[me.role] === undefined ? me.role : ROLES[me.role];
    $("who").textContent = me.name + " · " + me.team + (role ? " · " + role : "");
    $("menu").hidden = false;
    var enrolling = me.second_factor === "enrol";
    $("nav-queue").hidden = enrolling || isOfficer();
    $("nav-audit").hidden = enrolling || !isOfficer();
    $("nav-board").hidden = enrolling || !isCoordinator();
    $("nav-reports").hidden = enrolling || !isCoordinator();
    $("nav-responses").hidden = enrolling || !isCoordinator();
    $("nav-sessions").hidden = enrolling;
    if (enrolling) {
      closeEvents();
      beginEnrolment();
      return;
    }
    openEvents();
    if (isOfficer()) { showAudit(true); } else { loadTeams(); showQueue(true); }
  }

  function closeEvents() {
    if (state.events) { state.events.close(); }
    state.events = null;
  }

  function openEvents() {
    closeEvents();
    // The stream names the team's conversations: the privacy officer's role may not have it.
    if (isOfficer()) { return; }
    var source = new EventSource("/api/v1/events");
    state.events = source;
    source.addEventListener("changed", function (event) {
      if (!$("queue").hidden) { loadQueue(); }
      if (!$("board").hidden) { loadBoard(); }
      if (state.open && event.data === state.open) { openConversation(state.open, true); }
    });
    source.addEventListener("signed_out", function () {
      if (state.events === source) { signedOut(ENDED, true); }
    });
    source.addEventListener("error", function () {
      if (state.events !== source || source.readyState !== EventSource.CLOSED) { return; }
      // Refused (401 when the session ended) or gone: ask whether we are still signed in.
      api("GET", "/api/v1/me").then(function (answer) {
        if (state.events === source && answer.status === 200) {
          setTimeout(function () { if (state.events === source) { openEvents(); } }, 5000);
        }
      });
    });
  }

  // ---- the second factor ------------------------------------------------------

  function renderQr(svgText) {
    var box = $("totp-qr");
    box.replaceChildren();
    var parsed = new DOMParser().parseFromString(svgText || "", "text/html");
    var svg = parsed.querySelector("svg");
    if (!svg) { return; }
    svg.querySelectorAll("script, foreignObject").forEach(function (element) { element.remove(); });
    [svg].concat(Array.prototype.slice.call(svg.querySelectorAll("*"))).forEach(function (element) {
      Array.prototype.slice.call(element.attributes).forEach(function (attribute) {
        var name = attribute.name.toLowerCase();
        if (name.indexOf("on") === 0 || name === "style" || name.slice(-4) === "href") {
          element.removeAttribute(attribute.name);
        }
      });
    });
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "QR-code om te scannen met je authenticator-app");
    svg.setAttribute("focusable", "false");
    box.appendChild(document.importNode(svg, true));
  }

  function beginEnrolment() {
    api("POST", "/api/v1/second-factor").then(function (answer) {
      if (answer.status !== 200) {
        notice(answer.data.detail || "Het instellen van de tweede stap lukte niet. Probeer het opnieuw.");
        return;
      }
      $("totp-secret").textContent = answer.data.secret;
      renderQr(answer.data.qr_svg);
      $("enrol-code").value = "";
      show("enrol", true);
    });
  }

  function confirmEnrolment(event) {
    event.preventDefault();
    var form = $("enrol-form");
    var code = $("enrol-code").value.replace(/\s+/g, "");
    if (!code) { notice("Vul de code uit je app in."); $("enrol-code").focus(); return; }
    busy(form, true);
    api("POST", "/api/v1/second-factor/confirm", { code: code }).then(function (answer) {
      busy(form, false);
      $("enrol-code").value = "";
      if (answer.status === 200) {
        // The earlier session ended; this answer carries the new one (and its CSRF token).
        state.csrf = answer.data.csrf_token;
        state.me = {
          counsellor: answer.data.counsellor, name: answer.data.name, team: answer.data.team,
          role: answer.data.role, method: answer.data.method, second_factor: answer.data.second_factor,
          csrf_token: answer.data.csrf_token
        };
        $("totp-secret").textContent = "";
        $("totp-qr").replaceChildren();
        var list = $("recovery-codes");
        list.replaceChildren();
        (answer.data.recovery_codes || []).forEach(function (recoveryCode) {
          var item = document.createElement("li");
          item.textContent = recoveryCode;
          list.appendChild(item);
        });
        notice("");
        show("recovery", true);
      } else if (answer.status === 401) {
        notice(WRONG_ENROL_CODE);
        $("enrol-code").focus();
      } else if (answer.status === 409) {
        notice("Het instellen was verlopen: scan de nieuwe QR-code.");
        beginEnrolment();
      } else {
        notice(answer.data.detail || "Bevestigen lukte niet. Probeer het opnieuw.");
      }
    });
  }

  // ---- the queue and a conversation -------------------------------------------

  // Channels that carry no replies: the counsellor calls back instead (a reply is 409
  // cannot_reply). The desk's own word wins when it gives one (`can_reply`); a
  // conversation whose reply the desk refused with cannot_reply is treated alike.
  var NO_REPLY_KINDS = ["masker19"];
  var REVEAL_REASONS = { call_back: "terugbellen", report: "melding", other: "anders" };

  // Every navigation (another view, another conversation) makes answers to requests
  // made before it stale; within one view, an older answer never replaces a newer one.
  function navigate() {
    stopBoardTimer();
    state.nav += 1;
    return state.nav;
  }

  function showQueue(focus) {
    navigate();
    leaveConversation();
    notice("");
    $("queue-title").textContent = "Wachtrij " + state.me.team;
    show("queue", focus);
    loadQueue();
  }

  function leaveConversation() {
    state.open = null;
    state.revealed = null;
    hideCloseForm();
    $("reveal-result").textContent = "";
    $("reveal-reason").value = "";
    $("note").value = "";
    $("reply").value = "";
    $("move-reason").value = "";
    $("transfer-team").value = "";
    $("transfer-reason").value = "";
    state.current = null;
    closeAnswers();
  }

  function loadQueue() {
    var nav = state.nav;
    var seq = ++state.seq;
    api("GET", "/api/v1/conversations").then(function (answer) {
      if (answer.status !== 200 || nav !== state.nav || seq < state.queueShown) { return; }
      state.queueShown = seq;
      var rows = $("queue-rows");
      rows.replaceChildren();
      answer.data.conversations.forEach(function (c) {
        var row = document.createElement("tr");
        row.dataset.conversation = c.conversation_id;
        row.dataset.kind = c.channel_kind;
        row.dataset.status = c.status;
        if (c.acute) { row.className = "d-row-acute"; }
        var name = channelName(c);
        cell(row, name);
        cell(row, c.preview ? c.preview : "", "d-preview");
        cell(row, c.status === "claimed" ? "opgepakt door " + (c.claimed_by_name || c.claimed_by) :
          c.status === "closed" ? "afgesloten" : "wacht");
        cell(row, minutes(c.waiting_seconds));
        var flags = cell(row, "");
        flags.className = "d-flags";
        if (c.acute) { flags.appendChild(flag("ACUUT", "d-flag d-flag-acute")); }
        else if (c.urgent) { flags.appendChild(flag("urgent", "d-flag d-flag-urgent")); }
        if (c.returned) { flags.appendChild(flag("terug in de wachtrij", "d-flag d-flag-returned")); }
        if (c.after_hours) { flags.appendChild(flag("buiten openingstijd", "d-flag")); }
        var action = document.createElement("td");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "d-secondary";
        button.textContent = "Openen";
        button.setAttribute("aria-label", "Openen: gesprek via " + name + (c.acute ? ", acuut" : c.urgent ? ", urgent" : "") +
          ", wacht " + minutes(c.waiting_seconds));
        button.addEventListener("click", function () { openConversation(c.conversation_id); });
        action.appendChild(button);
        row.appendChild(action);
        rows.appendChild(row);
      });
      $("queue-empty").hidden = answer.data.conversations.length > 0;
    });
  }

  function channelName(c) { return c.channel_name || c.channel_kind; }

  function flag(text, className) {
    var span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  // "Volgende": claim the team's next waiting conversation and open it.
  function claimNext() {
    var button = $("next");
    var nav = state.nav;
    button.disabled = true;
    api("POST", "/api/v1/queue/next").then(function (answer) {
      button.disabled = false;
      if (nav !== state.nav) { return; }
      if (answer.status === 200 && answer.data.conversation_id) {
        notice("");
        status("");
        openConversation(answer.data.conversation_id);
        return;
      }
      if (answer.status === 404 && answer.data.error === "queue_empty") {
        notice("");
        status("Er wacht niemand.");
        loadQueue();
        return;
      }
      status("");
      notice(problem(answer, "Het volgende gesprek oppakken lukte niet."));
      loadQueue();
    });
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString("nl-NL", { hour: "2-digit", minute: "2-digit" });
  }

  function entryItem(className, who, at, text) {
    var item = document.createElement("li");
    item.className = className;
    var meta = document.createElement("span");
    meta.className = "d-meta";
    meta.textContent = who + " · " + clock(at);
    var body = document.createElement("span");
    body.textContent = text;
    item.append(meta, body);
    return item;
  }

  var DELIVERY = { queued: "in de wachtrij", sent: "verstuurd", delivered: "afgeleverd", read: "gelezen", failed: "mislukt" };

  // Why a reply did not arrive, in words a counsellor reads; the code stays beside it.
  var NOT_DELIVERED = {
    session_ended: "de persoon heeft de chat verlaten",
    whatsapp_window_closed: "de 24 uur van WhatsApp zijn voorbij en er is geen sjabloon ingesteld",
    "telegram-403": "de persoon heeft de bot geblokkeerd",
    "twilio-21211": "het nummer is ongeldig",
    "twilio-21610": "de persoon heeft zich afgemeld (STOP)",
    unreadable_handle: "het adres van de persoon is niet meer te openen"
  };

  function deliveryText(delivery) {
    if (!delivery || !delivery.status) { return ""; }
    var label = DELIVERY[delivery.status] || delivery.status;
    if (delivery.status === "failed") {
      var reason = delivery.reason || "";
      var why = NOT_DELIVERED[reason];
      return "niet afgeleverd: " + (why ? why + " (" + reason + ")" : (reason || "onbekende reden"));
    }
    return label;
  }

  // Why an attachment was not fetched, as the desk records it (gateway.support.media).
  var REFUSED = {
    too_large: "te groot",
    type_not_allowed: "soort bestand niet toegestaan",
    host_not_allowed: "niet van de server van de aanbieder",
    kind_keeps_no_media: "dit kanaal levert geen bestanden",
    timeout: "de aanbieder antwoordde niet op tijd",
    connection_error: "de aanbieder was niet bereikbaar"
  };

  function sizeText(bytes) {
    if (typeof bytes !== "number") { return ""; }
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " kB";
  }

  function attachmentItem(attachment, position) {
    var box = document.createElement("span");
    box.className = "d-attachment";
    box.dataset.status = attachment.status || "";
    var kind = attachment.content_type || "bestand";
    if (attachment.status === "stored" && attachment.url && attachment.inline) {
      var image = document.createElement("img");
      image.src = attachment.url;
      image.alt = "Afbeelding " + position + " die de persoon stuurde";
      image.loading = "lazy";
      box.appendChild(image);
    } else if (attachment.status === "stored" && attachment.url) {
      var link = document.createElement("a");
      link.href = attachment.url;
      link.setAttribute("download", "");
      link.textContent = "Bijlage " + position + " downloaden (" + kind + ", " + sizeText(attachment.size) + ")";
      box.appendChild(link);
    } else if (attachment.status === "pending") {
      box.textContent = "Bijlage " + position + " (" + kind + ") wordt opgehaald…";
    } else if (attachment.status === "refused") {
      var why = REFUSED[attachment.reason] || (attachment.reason || "onbekende reden");
      box.textContent = "Bijlage " + position + " (" + kind + ") niet opgehaald: " + why;
    } else {
      box.textContent = "Bijlage " + position + " (" + kind + ")";
    }
    return box;
  }

  var LEFT = "De persoon heeft de chat verlaten: een antwoord komt niet meer aan.";

  // The outcome labels of the registration, for a returning contact's last outcome.
  function loadOutcomes() {
    if (state.outcomes) { return Promise.resolve(state.outcomes); }
    return api("GET", "/api/v1/wrap-up").then(function (answer) {
      var labels = {};
      var options = answer.status === 200 && answer.data.outcome && Array.isArray(answer.data.outcome.options)
        ? answer.data.outcome.options : [];
      options.forEach(function (option) { labels[option.code] = option.nl; });
      if (answer.status === 200) { state.outcomes = labels; }
      return labels;
    });
  }

  function day(iso) {
    return new Date(iso).toLocaleDateString("nl-NL", { day: "numeric", month: "long", year: "numeric", timeZone: "Europe/Amsterdam" });
  }

  function renderEarlier(c) {
    var line = $("earlier");
    var earlier = c.earlier || {};
    if (!earlier.count || earlier.count < 1) { line.textContent = ""; line.hidden = true; return; }
    var write = function (labels) {
      if (state.open !== c.conversation_id) { return; }
      var text = "Eerder contact: " + earlier.count + "×";
      if (earlier.last_at) { text += " — laatste " + day(earlier.last_at); }
      if (earlier.last_outcome) { text += ", uitkomst: " + ((labels && labels[earlier.last_outcome]) || earlier.last_outcome); }
      line.textContent = text;
      line.hidden = false;
    };
    write(state.outcomes);
    if (!state.outcomes && earlier.last_outcome) { loadOutcomes().then(write); }
  }

  function cannotReply(c) {
    if (state.noReply[c.conversation_id] === true || c.can_reply === false) { return true; }
    return c.can_reply !== true && NO_REPLY_KINDS.indexOf(c.channel_kind) >= 0;
  }

  // `quietly`: a refresh of the open conversation (a change elsewhere), not the
  // counsellor opening one: no focus move, and nothing if they have moved on.
  function openConversation(id, quietly) {
    var nav = quietly ? state.nav : navigate();
    var seq = ++state.seq;
    if (!quietly && state.open !== id) { leaveConversation(); }
    api("GET", "/api/v1/conversations/" + encodeURIComponent(id)).then(function (answer) {
      if (nav !== state.nav || seq < state.shown || (quietly && state.open !== id)) { return; }
      state.shown = seq;
      if (answer.status !== 200) {
        showQueue(false);
        if (!quietly) { notice(problem(answer, "Dit gesprek is niet (meer) van je team.")); }
        return;
      }
      var c = answer.data;
      var opening = state.open !== id || $("conversation").hidden;
      state.open = id;
      if (!quietly) { notice(""); status(""); }
      renderConversation(c);
      show("conversation", opening && !quietly);
    });
  }

  function renderConversation(c) {
    var mine = c.status === "claimed" && c.claimed_by === state.me.counsellor;
    var theirs = c.status === "claimed" && !mine;
    state.current = c;
    $("conversation-title").textContent = "Gesprek via " + channelName(c);
    $("conversation-state").textContent = c.status === "claimed" ? "Opgepakt door " + c.claimed_by :
      c.status === "closed" ? "Afgesloten" : "Wacht op een medewerker";

    var handovers = c.handovers || [];
    var banner = $("handover");
    if (handovers.length > 0) {
      var h = handovers[0];  // newest first
      banner.textContent = "Overgedragen van " + h.from_team + " door " + h.author + ": " + h.note;
      banner.hidden = false;
    } else {
      banner.textContent = "";
      banner.hidden = true;
    }

    renderEarlier(c);
    var left = c.person_left === true || state.left[c.conversation_id] === true;
    $("person-left").textContent = left ? LEFT : "";

    $("claim").disabled = c.status !== "waiting";
    $("close").disabled = theirs || c.status === "closed";
    if ($("close").disabled) { hideCloseForm(); }
    $("export").hidden = !mine;

    var list = $("transcript");
    list.replaceChildren();
    (c.transcript || []).forEach(function (entry) {
      if (entry.direction !== "in" && entry.direction !== "out") { return; }  // notes have their own place
      var who = entry.direction === "in" ? "Persoon" : (entry.author || "automatisch bericht");
      var item = entryItem("d-" + entry.direction + (entry.direction === "out" && !entry.author ? " d-auto" : ""),
        who, entry.at, entry.text);
      (entry.attachments || []).forEach(function (attachment, n) {
        item.appendChild(attachmentItem(attachment, n + 1));
      });
      var delivered = entry.direction === "out" ? deliveryText(entry.delivery) : "";
      if (delivered) {
        var mark = document.createElement("span");
        mark.className = "d-delivery" + (entry.delivery.status === "failed" ? " d-delivery-failed" : "");
        mark.dataset.status = entry.delivery.status;
        mark.textContent = delivered;
        item.appendChild(mark);
      }
      list.appendChild(item);
    });

    var notes = $("notes");
    notes.replaceChildren();
    (c.notes || []).forEach(function (entry) {
      notes.appendChild(entryItem("d-note-item", "Notitie van " + (entry.author || "onbekend"), entry.at, entry.text));
    });
    $("notes-empty").hidden = (c.notes || []).length > 0;

    var noReply = cannotReply(c);
    $("reply-form").hidden = noReply;
    $("reply").disabled = !mine || left;
    $("reply-form").querySelector('button[type="submit"]').disabled = !mine || left;
    if ($("reply").disabled) { closeAnswers(); }
    renderTransfer(c);
    renderMove(c);
    $("call-back").hidden = !noReply;
    $("reveal-form").hidden = !(noReply && mine);
    $("call-back-claim").hidden = mine;
    if (!mine || !state.revealed || state.revealed.id !== c.conversation_id) {
      state.revealed = null;
      $("reveal-result").textContent = "";
    } else if ($("reveal-result").textContent !== state.revealed.text) {
      $("reveal-result").textContent = state.revealed.text;
    }
  }

  // What the console says when the desk refuses something.
  function problem(answer, fallback) {
    var data = answer.data || {};
    switch (data.error) {
      case "already_claimed": return "Dit gesprek is al opgepakt door " + data.claimed_by + ".";
      case "not_claimed": return "Pak het gesprek eerst op.";
      case "cannot_reply": return "Dit kanaal kan geen antwoord ontvangen: je antwoord is niet verstuurd. Bel de persoon terug.";
      case "nothing_to_reveal": return "Dit kanaal kan wel antwoorden: antwoord in het gesprek.";
      case "other_team": return "Dit gesprek is niet (meer) van je team.";
      case "unknown_conversation": return "Dit gesprek bestaat niet (meer).";
      case "unknown_team": return "Dat team bestaat niet (meer): kies een team uit de lijst.";
      case "same_team": return "Het gesprek is al van dit team.";
      case "broker_unavailable":
      case "store_unavailable": return "Dat lukte nu niet; er is niets gebeurd. Probeer het zo opnieuw.";
      case "not_permitted": return "Je rol staat dit niet toe.";
      case "person_left": return LEFT;
      case "queue_empty": return "Er wacht niemand.";
      case "at_capacity":
        return typeof data.limit === "number" ? "Je hebt al " + data.limit + " gesprekken; sluit er eerst een af."
          : "Je hebt al je maximum aantal gesprekken; sluit er eerst een af.";
      case "team_closed": return "Dat team is nu gesloten.";
      case "not_waiting": return "Dit gesprek wacht niet meer: alleen een wachtend gesprek kan worden verplaatst.";
      case "unknown_answer": return "Dit standaardantwoord bestaat niet (meer); de lijst is bijgewerkt.";
      case "not_changed": return "Dit antwoord staat al zoals in het configuratiebestand.";
      default: return fallback || data.detail || "Dat lukte niet.";
    }
  }

  function act(path, body, done) {
    var id = state.open;
    api("POST", "/api/v1/conversations/" + encodeURIComponent(id) + path, body).then(function (answer) {
      if (answer.status >= 400 || answer.status === 0) {
        if (answer.data.error === "cannot_reply") { state.noReply[id] = true; }
        if (answer.data.error === "person_left") { state.left[id] = true; $("person-left").textContent = LEFT; }
        notice(problem(answer));
      } else {
        notice("");
        if (done) { done(answer); }
      }
      if (state.open === id) { openConversation(id, true); }
    });
  }

  // ---- closing with the registration ------------------------------------------

  function wrapUpFields(wrapUp) {
    return Object.keys(wrapUp || {}).filter(function (name) {
      var field = wrapUp[name];
      return field && typeof field === "object" && Array.isArray(field.options);
    });
  }

  function hideCloseForm() {
    $("close-form").hidden = true;
    $("close").setAttribute("aria-expanded", "false");
    $("close-fields").replaceChildren();
    $("close-note").value = "";
    showProblem("note", "");
  }

  function openCloseForm() {
    var id = state.open;
    var nav = state.nav;
    api("GET", "/api/v1/wrap-up").then(function (answer) {
      if (nav !== state.nav || state.open !== id) { return; }
      if (answer.status !== 200) { notice(problem(answer, "De registratie kon niet worden opgehaald. Probeer het opnieuw.")); return; }
      state.wrapUp = answer.data;
      status("");
      buildCloseForm(answer.data);
      $("close-form").hidden = false;
      $("close").setAttribute("aria-expanded", "true");
      var title = $("close-title");
      title.setAttribute("tabindex", "-1");
      title.focus();
    });
  }

  function buildCloseForm(wrapUp) {
    var box = $("close-fields");
    box.replaceChildren();
    wrapUpFields(wrapUp).forEach(function (name) {
      var field = wrapUp[name];
      var fieldset = document.createElement("fieldset");
      fieldset.className = "d-wrapup-field";
      fieldset.dataset.field = name;
      var legend = document.createElement("legend");
      legend.textContent = field.nl + (field.required ? "" : " (mag leeg)");
      var hint = document.createElement("span");
      hint.className = "d-hint d-block";
      hint.id = "wrapup-" + name + "-hint";
      hint.textContent = field.multiple ? "Kies één of meer." : "Kies één.";
      var error = document.createElement("span");
      error.className = "d-error d-block";
      error.id = "wrapup-" + name + "-error";
      fieldset.setAttribute("aria-describedby", hint.id + " " + error.id);
      var choices = document.createElement("div");
      choices.className = "d-choices";
      field.options.forEach(function (option, index) {
        var choice = document.createElement("div");
        choice.className = "d-choice";
        var input = document.createElement("input");
        input.type = field.multiple ? "checkbox" : "radio";
        input.name = name;
        input.value = option.code;
        input.id = "wrapup-" + name + "-" + index;
        var label = document.createElement("label");
        label.htmlFor = input.id;
        label.textContent = option.nl;
        choice.append(input, label);
        choices.appendChild(choice);
      });
      fieldset.append(legend, hint, error, choices);
      box.appendChild(fieldset);
    });
    var max = wrapUp.note_max_chars;
    var note = $("close-note");
    if (typeof max === "number" && max > 0) {
      note.maxLength = max;
      $("close-note-hint").textContent = "Alleen voor het team, nooit naar de persoon; hoogstens " + max + " tekens.";
    } else {
      note.removeAttribute("maxlength");
      $("close-note-hint").textContent = "Alleen voor het team, nooit naar de persoon.";
    }
    note.value = "";
    showProblem("note", "");
  }

  function showProblem(name, text) {
    if (name === "note") {
      $("close-note-error").textContent = text;
      if (text) { $("close-note").setAttribute("aria-invalid", "true"); } else { $("close-note").removeAttribute("aria-invalid"); }
      return;
    }
    var fieldset = $("close-fields").querySelector('fieldset[data-field="' + name + '"]');
    if (!fieldset) { return; }
    fieldset.querySelector(".d-error").textContent = text;
    fieldset.classList.toggle("d-invalid", Boolean(text));
    fieldset.querySelectorAll("input").forEach(function (input) {
      if (text) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    });
  }

  function problemText(name, text) {
    var field = state.wrapUp && state.wrapUp[name];
    var max = /^at most (\d+)/.exec(text || "");
    if (max) { return "De notitie mag hoogstens " + max[1] + " tekens lang zijn."; }
    if (/^required/.test(text)) { return field && field.multiple ? "Kies ten minste één antwoord." : "Kies een antwoord."; }
    if (/^only one/.test(text)) { return "Kies één antwoord."; }
    if (/given twice/.test(text)) { return "Een antwoord is twee keer gekozen."; }
    if (/^not one of the configured options/.test(text)) { return "Dit antwoord bestaat niet meer: kies opnieuw."; }
    if (/^must be text/.test(text)) { return "Vul de notitie in als tekst."; }
    if (/^not a field/.test(text)) { return "Dit hoort niet (meer) bij de registratie: laad de pagina opnieuw."; }
    return "Controleer dit antwoord.";
  }

  function submitClose(event) {
    event.preventDefault();
    var id = state.open;
    var form = $("close-form");
    var wrapUp = state.wrapUp || {};
    var body = {};
    wrapUpFields(wrapUp).forEach(function (name) {
      var checked = Array.prototype.slice.call(form.querySelectorAll('input[name="' + name + '"]:checked'))
        .map(function (input) { return input.value; });
      if (wrapUp[name].multiple) { body[name] = checked; } else if (checked.length > 0) { body[name] = checked[0]; }
      showProblem(name, "");
    });
    showProblem("note", "");
    var note = $("close-note").value.trim();
    if (note) { body.note = note; }
    busy(form, true);
    api("POST", "/api/v1/conversations/" + encodeURIComponent(id) + "/close", body).then(function (answer) {
      busy(form, false);
      if (state.open !== id) { return; }
      if (answer.status === 200) {
        showQueue(true);
        status("Gesprek afgesloten en geregistreerd.");
        return;
      }
      if (answer.status === 422 && Array.isArray(answer.data.fields)) {
        var named = [];
        var first = null;
        answer.data.fields.forEach(function (problemAt) {
          var name = problemAt.field;
          var known = name === "note" || (state.wrapUp && wrapUpFields(state.wrapUp).indexOf(name) >= 0);
          if (!known) { return; }
          showProblem(name, problemText(name, problemAt.problem));
          named.push(name === "note" ? "notitie" : state.wrapUp[name].nl);
          if (!first) {
            first = name === "note" ? $("close-note") : form.querySelector('input[name="' + name + '"]');
          }
        });
        notice(named.length > 0
          ? "De registratie is nog niet compleet: " + named.join(", ") + ". Het gesprek is nog open."
          : "De registratie klopt niet (meer): laad de pagina opnieuw.");
        if (first) { first.focus(); }
        return;
      }
      notice(problem(answer, "Afsluiten lukte niet."));
      openConversation(id, true);
    });
  }

  // ---- export and the call-back -----------------------------------------------

  function exportConversation(format) {
    var id = state.open;
    var epoch = state.epoch;
    var path = "/api/v1/conversations/" + encodeURIComponent(id) + "/export?format=" + format;
    fetch(path, { credentials: "same-origin" }).then(function (response) {
      if (epoch !== state.epoch) { return null; }
      if (response.status === 401) { signedOut(ENDED, true); return null; }
      if (!response.ok) {
        return response.text().then(function (text) {
          var data = {};
          try { data = JSON.parse(text); } catch (ignored) { data = {}; }
          notice(problem({ status: response.status, data: data }, "Exporteren lukte niet."));
        });
      }
      var disposition = response.headers.get("Content-Disposition") || "";
      var named = /filename="([^"]+)"/.exec(disposition);
      return response.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = document.createElement("a");
        link.href = url;
        link.download = named ? named[1] : "gesprek." + (format === "json" ? "json" : "txt");
        link.hidden = true;
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
        notice("");
        status("Export gedownload (" + (format === "json" ? "JSON" : "tekst") + ").");
      });
    }, function () {
      notice("Geen verbinding met de server. Probeer het zo opnieuw.");
    });
  }

  function submitReveal(event) {
    event.preventDefault();
    var id = state.open;
    var reason = $("reveal-reason").value;
    if (!REVEAL_REASONS[reason]) {
      notice("Kies waarom je de contactgegevens wilt zien.");
      $("reveal-reason").focus();
      return;
    }
    var form = $("reveal-form");
    busy(form, true);
    api("POST", "/api/v1/conversations/" + encodeURIComponent(id) + "/reveal", { reason: reason }).then(function (answer) {
      busy(form, false);
      if (state.open !== id) { return; }
      if (answer.status !== 200) {
        notice(problem(answer, "De contactgegevens konden niet worden getoond."));
        openConversation(id, true);
        return;
      }
      notice("");
      var text = answer.data.call === "pharmacy"
        ? "Bel de apotheek (" + answer.data.pharmacy + ")"
        : answer.data.call === "reference"
          ? "Kenmerk in het systeem van de regio: " + answer.data.reference
          : "Bel " + answer.data.number;
      state.revealed = { id: id, text: text };
      $("reveal-result").textContent = text;
    });
  }

  // ---- standard answers in the reply box ---------------------------------------

  // "/" at the start of the reply box opens the team's standard answers; what follows
  // it searches them. The focus stays in the box: the arrows move through the list
  // (aria-activedescendant), Enter puts the chosen answer's text in the box, Escape closes.
  function answersQuery() {
    var value = $("reply").value;
    if (value.charAt(0) !== "/" || value.indexOf("\n") >= 0) { return null; }
    return value.slice(1).trim();
  }

  function closeAnswers() {
    var a = state.answers;
    a.open = false;
    a.items = [];
    a.active = -1;
    a.seq += 1;  // an answer still on its way is not shown
    if (a.timer) { clearTimeout(a.timer); a.timer = null; }
    $("answers-box").hidden = true;
    $("answers").replaceChildren();
    $("reply").removeAttribute("aria-activedescendant");
    $("answers-status").textContent = "";
  }

  function replyTyped() {
    var query = answersQuery();
    var a = state.answers;
    if (query === null) { a.dismissed = false; if (a.open) { closeAnswers(); } return; }
    if (a.dismissed) { return; }
    if (a.timer) { clearTimeout(a.timer); }
    a.timer = setTimeout(function () { a.timer = null; searchAnswers(query); }, 150);
  }

  function searchAnswers(query) {
    var a = state.answers;
    var seq = ++a.seq;
    var id = state.open;
    var path = "/api/v1/responses?lang=nl" + (query ? "&q=" + encodeURIComponent(query) : "");
    api("GET", path).then(function (answer) {
      if (seq !== a.seq || state.open !== id || answersQuery() === null || a.dismissed) { return; }
      if (answer.status !== 200) {
        notice(problem(answer, "De standaardantwoorden konden niet worden opgehaald."));
        return;
      }
      showAnswers(answer.data.answers || []);
    });
  }

  function showAnswers(items) {
    var a = state.answers;
    a.open = true;
    a.items = items;
    a.active = items.length > 0 ? 0 : -1;
    var list = $("answers");
    list.replaceChildren();
    items.forEach(function (item, index) {
      var option = document.createElement("li");
      option.id = "answer-" + index;
      option.setAttribute("role", "option");
      option.dataset.answer = item.id;
      var title = document.createElement("span");
      title.className = "d-answer-title";
      title.textContent = item.title;
      var text = document.createElement("span");
      text.className = "d-answer-text";
      text.textContent = item.text;
      option.append(title, text);
      option.addEventListener("mousedown", function (event) { event.preventDefault(); });  // keep the focus in the box
      option.addEventListener("click", function () { chooseAnswer(index); });
      list.appendChild(option);
    });
    if (items.length === 0) {
      var none = document.createElement("li");
      none.className = "d-answer-none";
      none.textContent = "Geen standaardantwoord gevonden.";
      none.setAttribute("role", "option");
      none.setAttribute("aria-disabled", "true");
      none.setAttribute("aria-selected", "false");
      none.id = "answer-none";
      list.appendChild(none);
    }
    $("answers-box").hidden = false;
    markActive();
    $("answers-status").textContent = items.length === 0 ? "Geen standaardantwoord gevonden." :
      items.length === 1 ? "1 standaardantwoord." : items.length + " standaardantwoorden.";
  }

  function markActive() {
    var a = state.answers;
    $("answers").querySelectorAll('li[id^="answer-"]').forEach(function (option, index) {
      if (option.id === "answer-none") { return; }
      var on = index === a.active;
      option.setAttribute("aria-selected", on ? "true" : "false");
      option.classList.toggle("d-active", on);
      if (on) { option.scrollIntoView({ block: "nearest" }); }
    });
    if (a.active >= 0) { $("reply").setAttribute("aria-activedescendant", "answer-" + a.active); }
    else { $("reply").removeAttribute("aria-activedescendant"); }
  }

  function chooseAnswer(index) {
    var item = state.answers.items[index];
    if (!item) { return; }
    closeAnswers();
    var box = $("reply");
    box.value = item.text;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    status("Standaardantwoord ingevoegd: " + item.title + ". Pas het zo nodig aan en verstuur het.");
  }

  function replyKey(event) {
    var a = state.answers;
    if (!a.open) { return; }
    var count = a.items.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (count === 0) { return; }
      a.active = event.key === "ArrowDown" ? (a.active + 1) % count : (a.active - 1 + count) % count;
      markActive();
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      if (a.active >= 0) { chooseAnswer(a.active); }
    } else if (event.key === "Escape") {
      event.preventDefault();
      a.dismissed = true;
      closeAnswers();
    }
  }

  // ---- moving a waiting conversation (coordinators) ---------------------------

  function renderMove(c) {
    var form = $("move-form");
    var can = isCoordinator() && c.status === "waiting";
    form.hidden = !can;
    if (!can) { return; }
    var fill = function () {
      var select = $("move-team");
      var chosen = select.value;
      var teams = state.boardTeams.map(function (t) { return t.team; });
      if (teams.indexOf("national") < 0) { teams.push("national"); }
      teams = teams.filter(function (team) { return team !== c.team; });
      var open = {};
      state.boardTeams.forEach(function (t) { open[t.team] = t.open; });
      select.replaceChildren();
      var first = document.createElement("option");
      first.value = "";
      first.textContent = "Kies een team";
      select.appendChild(first);
      teams.forEach(function (team) {
        var option = document.createElement("option");
        option.value = team;
        option.textContent = teamName(team) + (open[team] === false ? " (nu gesloten)" : "");
        select.appendChild(option);
      });
      if (teams.indexOf(chosen) >= 0) { select.value = chosen; }
    };
    fill();
    if (state.boardTeams.length === 0) {
      fetchBoard().then(function (teams) {
        if (teams && state.open === c.conversation_id) { fill(); }
      });
    }
    if (!state.teams) {
      loadTeams().then(function (teams) {
        if (teams && state.open === c.conversation_id) { fill(); }
      });
    }
  }

  // ---- the teams a conversation can go to (transfer, move) ---------------------

  function loadTeams() {
    if (state.teams) { return Promise.resolve(state.teams); }
    return api("GET", "/api/v1/teams").then(function (answer) {
      if (answer.status !== 200 || !Array.isArray(answer.data.teams)) { return null; }
      state.teams = answer.data.teams;
      return state.teams;
    });
  }

  function teamName(code) {
    var found = (state.teams || []).filter(function (t) { return t.code === code; })[0];
    return found ? found.name : code;
  }

  function resetTransferTeams() {
    var select = $("transfer-team");
    select.replaceChildren();
    var first = document.createElement("option");
    first.value = "";
    first.textContent = "Kies een team";
    select.appendChild(first);
    delete select.dataset.team;
  }

  // The transfer's target: every other team, by the names people read. Rebuilt only
  // when the conversation's team (or the list) changes, so a refresh keeps an open list.
  function renderTransfer(c) {
    var select = $("transfer-team");
    var fill = function () {
      if (!state.teams || select.dataset.team === c.team) { return; }
      var chosen = select.value;
      resetTransferTeams();
      state.teams.forEach(function (t) {
        if (t.code === c.team) { return; }
        var option = document.createElement("option");
        option.value = t.code;
        option.textContent = t.name;
        select.appendChild(option);
      });
      select.dataset.team = c.team;
      if (chosen && chosen !== c.team) { select.value = chosen; }
    };
    fill();
    if (!state.teams) {
      loadTeams().then(function (teams) {
        if (!teams) { notice("De lijst met teams kon niet worden opgehaald. Laad de pagina opnieuw."); return; }
        if (state.open === c.conversation_id) { fill(); }
      });
    }
  }

  function submitTransfer(event) {
    event.preventDefault();
    var team = $("transfer-team").value;
    var reason = $("transfer-reason").value.trim();
    if (!team) { notice("Kies het team waaraan je het gesprek overdraagt."); $("transfer-team").focus(); return; }
    if (!reason) { notice("Schrijf waarom je het gesprek overdraagt; het andere team ziet dit."); $("transfer-reason").focus(); return; }
    act("/transfer", { team: team, reason: reason }, function () {
      $("transfer-team").value = "";
      $("transfer-reason").value = "";
      showQueue(true);
      status("Gesprek overgedragen aan " + teamName(team) + ".");
    });
  }

  function submitMove(event) {
    event.preventDefault();
    var id = state.open;
    var team = $("move-team").value;
    var reason = $("move-reason").value.trim();
    if (!team) { notice("Kies het team waarnaar je het gesprek verplaatst."); $("move-team").focus(); return; }
    if (!reason) { notice("Schrijf waarom je het gesprek verplaatst; het andere team ziet dit."); $("move-reason").focus(); return; }
    var form = $("move-form");
    busy(form, true);
    api("POST", "/api/v1/conversations/" + encodeURIComponent(id) + "/move", { team: team, reason: reason }).then(function (answer) {
      busy(form, false);
      if (state.open !== id) { return; }
      if (answer.status === 200) {
        showQueue(true);
        status("Gesprek verplaatst naar " + team + ".");
        return;
      }
      notice(problem(answer, "Verplaatsen lukte niet."));
      openConversation(id, true);
    });
  }

  // ---- the wall board (coordinators) -------------------------------------------

  function stopBoardTimer() {
    if (state.boardTimer) { clearInterval(state.boardTimer); state.boardTimer = null; }
  }

  function fetchBoard() {
    return api("GET", "/api/v1/board").then(function (answer) {
      if (answer.status !== 200) { return null; }
      state.boardTeams = answer.data.teams || [];
      return state.boardTeams;
    });
  }

  function showBoard(focus) {
    navigate();
    leaveConversation();
    notice("");
    show("board", focus);
    loadBoard();
    // The waits grow and counsellors come and go without a change to a conversation.
    state.boardTimer = setInterval(function () { if (!$("board").hidden) { loadBoard(); } }, 30000);
  }

  function loadBoard() {
    var nav = state.nav;
    var seq = ++state.boardSeq;
    api("GET", "/api/v1/board").then(function (answer) {
      if (nav !== state.nav || seq < state.boardShown) { return; }
      state.boardShown = seq;
      if (answer.status !== 200) {
        notice(problem(answer, "Het wallboard kon niet worden opgehaald."));
        return;
      }
      var teams = answer.data.teams || [];
      state.boardTeams = teams;
      var rows = $("board-rows");
      rows.replaceChildren();
      var waiting = 0;
      var urgent = 0;
      teams.forEach(function (t) {
        waiting += t.waiting_urgent + t.waiting_normal;
        urgent += t.waiting_urgent;
        var row = document.createElement("tr");
        row.dataset.team = t.team;
        var head = document.createElement("th");
        head.scope = "row";
        head.textContent = t.team;
        row.appendChild(head);
        cell(row, t.waiting_urgent, t.waiting_urgent > 0 ? "d-urgent d-num" : "d-num").dataset.field = "waiting_urgent";
        cell(row, t.waiting_normal, "d-num").dataset.field = "waiting_normal";
        cell(row, t.waiting_urgent + t.waiting_normal > 0 ? minutes(t.longest_wait_seconds) : "—").dataset.field = "longest_wait";
        cell(row, t.claimed, "d-num").dataset.field = "claimed";
        cell(row, t.held_after_hours, "d-num").dataset.field = "held_after_hours";
        cell(row, t.returned, "d-num").dataset.field = "returned";
        cell(row, t.open ? "open" : "gesloten", t.open ? "" : "d-closed").dataset.field = "open";
        var people = cell(row, "");
        people.dataset.field = "counsellors";
        if (!t.counsellors || t.counsellors.length === 0) {
          people.textContent = "niemand";
        } else {
          var list = document.createElement("ul");
          list.className = "d-online";
          t.counsellors.forEach(function (person) {
            var item = document.createElement("li");
            item.textContent = person.name + " (" + person.load + ")";
            list.appendChild(item);
          });
          people.appendChild(list);
        }
        rows.appendChild(row);
      });
      $("board-summary").textContent = (waiting === 1 ? "1 persoon wacht" : waiting + " personen wachten") +
        (urgent > 0 ? ", van wie " + urgent + " urgent" : "") + ". Bijgewerkt om " +
        new Date().toLocaleTimeString("nl-NL", { hour: "2-digit", minute: "2-digit", timeZone: "Europe/Amsterdam" }) + ".";
    });
  }

  // ---- the figures (coordinators) ----------------------------------------------

  // A region's coordinator reads their own team's; a national coordinator every team's and
  // the country's ("all"). Counts are a number, "<5" or "hidden" (docs/reports.md); the
  // charts are SVG made by the gateway, read exactly as the report.
  var CHANNEL_NAMES = {
    "sms": "SMS", "whatsapp": "WhatsApp", "telegram": "Telegram", "webchat": "Webchat",
    "masker19": "Apotheek (Masker 19)", "http-json": "Eigen systeem van de regio"
  };
  var PERIOD_KINDS = { inventory: "inventarisperiode", week: "week", month: "maand", range: "periode" };
  var CHARTS = [
    ["trend", "Contacten per week", "by_week"],
    ["channels", "Contacten per kanaal", "by_channel"],
    ["age", "Leeftijd (aandeel van de geregistreerde contacten)", "age_group"],
    ["roles", "Wie schreef (aandeel van de geregistreerde contacten)", "contact_role"]
  ];

  function isNational() { return isCoordinator() && state.me.team === "national"; }

  function loadReportLabels() {
    if (state.reportLabels) { return Promise.resolve(state.reportLabels); }
    return api("GET", "/api/v1/wrap-up").then(function (answer) {
      var labels = {};
      if (answer.status !== 200) { return labels; }
      Object.keys(answer.data).forEach(function (name) {
        var field = answer.data[name];
        if (!field || !Array.isArray(field.options)) { return; }
        labels[name] = {};
        field.options.forEach(function (option) { labels[name][option.code] = option.nl; });
      });
      state.reportLabels = labels;
      return labels;
    });
  }

  function fillReportTeams() {
    return loadTeams().then(function (teams) {
      var select = $("reports-team");
      if (!teams || select.options.length > 1) { return; }
      teams.forEach(function (t) {
        var option = document.createElement("option");
        option.value = t.code;
        option.textContent = t.name;
        select.appendChild(option);
      });
    });
  }

  function showReports(focus) {
    var nav = navigate();
    leaveConversation();
    notice("");
    show("reports", focus);
    $("reports-team-field").hidden = !isNational();
    showReportKind();
    Promise.all([loadReportLabels(), isNational() ? fillReportTeams() : null]).then(function () {
      if (nav === state.nav) { loadReport(); }
    });
  }

  function showReportKind() {
    var kind = $("reports-kind").value;
    $("reports-form").querySelectorAll("[data-kind]").forEach(function (p) { p.hidden = p.dataset.kind !== kind; });
  }

  // The query of the chosen team and period, or null (and the problem said) when incomplete.
  function reportQuery() {
    var query = new URLSearchParams();
    if (isNational()) { query.set("team", $("reports-team").value || "all"); }
    var kind = $("reports-kind").value;
    var missing = { inventory: "Vul een inventarisperiode in, zoals 2026-P24.", week: "Kies een week.", month: "Kies een maand." };
    if (kind === "inventory" || kind === "week" || kind === "month") {
      var value = $("reports-" + kind).value.trim().toUpperCase();
      if (!value) { notice(missing[kind]); $("reports-" + kind).focus(); return null; }
      query.set("period", value);
    } else if (kind === "range") {
      var from = $("reports-from").value;
      var to = $("reports-to").value;
      if (!from || !to) { notice("Kies de begin- en de einddatum."); $(from ? "reports-to" : "reports-from").focus(); return null; }
      if (to < from) { notice("De einddatum ligt vóór de begindatum."); $("reports-to").focus(); return null; }
      query.set("from", from);
      query.set("to", to);
    }
    return query.toString();
  }

  function loadReport() {
    var text = reportQuery();
    if (text === null) { return; }
    var nav = state.nav;
    var seq = ++state.reportSeq;
    status("Cijfers ophalen…");
    api("GET", "/api/v1/reports" + (text ? "?" + text : "")).then(function (answer) {
      if (nav !== state.nav || seq !== state.reportSeq) { return; }
      status("");
      if (answer.status !== 200) {
        $("reports-result").hidden = true;
        var data = answer.data || {};
        notice(data.error === "invalid_period" ? "Die periode bestaat niet: " + data.detail :
          problem(answer, "De cijfers konden niet worden opgehaald."));
        return;
      }
      notice("");
      showReport(answer.data, text);
    });
  }

  function count(value) {
    if (value === null || value === undefined) { return "—"; }
    if (value === "hidden") { return "verborgen"; }
    return typeof value === "number" ? value.toLocaleString("nl-NL") : String(value);
  }

  function change(value) {
    if (typeof value !== "number") { return "—"; }
    return (value > 0 ? "+" : value < 0 ? "−" : "") + Math.abs(value).toLocaleString("nl-NL");
  }

  function percent(share) {
    if (typeof share !== "number") { return "—"; }
    return (share * 100).toFixed(1).replace(".", ",") + "%";
  }

  function waitMinutes(seconds) {
    if (typeof seconds !== "number") { return "—"; }
    return (seconds / 60).toFixed(1).replace(".", ",") + " min";
  }

  // A figure by its path (after_hours.where.held_for_region): the count of a cell, or the value.
  function figureAt(tree, path) {
    var node = tree;
    path.split(".").forEach(function (key) { node = node && typeof node === "object" ? node[key] : undefined; });
    return node;
  }

  function countAt(tree, path) {
    var node = figureAt(tree, path);
    return node && typeof node === "object" ? node.count : node;
  }

  function scopeName(scope) { return scope === "all" ? "het hele land" : teamName(scope); }

  function periodText(period) {
    return (PERIOD_KINDS[period.kind] || "periode") + " " + period.label + " (" +
      (period.from === period.to ? day(period.from) : day(period.from) + " t/m " + day(period.to)) + ")";
  }

  function showReport(report, query) {
    var labels = state.reportLabels || {};
    $("reports-heading").textContent = "Cijfers van " + scopeName(report.scope);
    $("reports-period").textContent = "De " + periodText(report.period) + ", vergeleken met de " +
      periodText(report.previous_period) + ".";
    $("reports-csv").href = "/api/v1/reports/export" + (query ? "?" + query : "");
    var f = report.figures;
    var tables = $("reports-tables");
    tables.replaceChildren();
    // In the order of the registration's options (desk.yaml), then any others.
    var codes = function (name, names) {
      var found = Object.keys(f[name] || {});
      var known = Object.keys(names || {}).filter(function (code) { return found.indexOf(code) >= 0; });
      return known.concat(found.filter(function (code) { return known.indexOf(code) < 0; })).map(function (code) {
        return { label: (names && names[code]) || code, path: name + "." + code, share: true };
      });
    };
    reportTable(tables, report, "Kerncijfers", [
      { label: "Contacten", path: "contacts" },
      { label: "Geregistreerd bij het afsluiten", path: "registered", share: true },
      { label: "Serieuze gesprekken", path: "serious", share: true },
      { label: "Omgezet in melding", path: "converted_to_report", share: true },
      { label: "Masker 19-intakes (apotheek)", path: "masker19_intakes", share: true },
      { label: "Urgent", path: "urgent", share: true },
      { label: "Acuut gevaar", path: "acute", share: true },
      { label: "Overgedragen of verplaatst", path: "transferred", share: true },
      { label: "Weggegaan vóór een antwoord", path: "left_before_reply", share: true }
    ], "Aandeel: van alle contacten; bij serieus en omgezet: van de geregistreerde.");
    reportTable(tables, report, "Per kanaal", codes("by_channel", CHANNEL_NAMES));
    if (f.by_team) {
      var teams = codes("by_team", {});
      teams.forEach(function (row) { row.label = teamName(row.path.slice("by_team.".length)); });
      reportTable(tables, report, "Per team", teams);
    }
    reportTable(tables, report, "Per week", codes("by_week"));
    reportTable(tables, report, "Wie schreef", codes("contact_role", labels.contact_role), "Aandeel: van de geregistreerde contacten.");
    reportTable(tables, report, "Leeftijd", codes("age_group", labels.age_group), "Aandeel: van de geregistreerde contacten.");
    reportTable(tables, report, "Uitkomst", codes("outcome", labels.outcome), "Aandeel: van de geregistreerde contacten.");
    reportTable(tables, report, "Onderwerpen", codes("topics", labels.topics),
      "Een contact kan over meer onderwerpen gaan: deze tellen niet op tot het totaal.");
    reportTable(tables, report, "Buiten openingstijd", [
      { label: "Contacten buiten openingstijd", path: "after_hours.contacts", share: true },
      { label: "Bleven bij de regio (vastgehouden)", path: "after_hours.where.held_for_region", share: true },
      { label: "Naar het landelijk team", path: "after_hours.where.to_national_team", share: true },
      { label: "Kregen een antwoord", path: "after_hours.answered", share: true },
      { label: "Weggegaan vóór een antwoord", path: "after_hours.left_before_reply", share: true }
    ], "Aandeel: van alle contacten; de rest van de contacten buiten openingstijd.");
    reportTable(tables, report, "Wachttijd tot het eerste antwoord", [
      { label: "Contacten met een antwoord", path: "waiting_time.answered", share: true },
      { label: "Mediaan", path: "waiting_time.median_seconds", format: waitMinutes },
      { label: "90e percentiel", path: "waiting_time.p90_seconds", format: waitMinutes }
    ], "Een wachttijd staat er alleen bij minstens " + report.threshold + " beantwoorde contacten.");
    showCharts(report, query, labels);
    $("reports-result").hidden = false;
  }

  function reportTable(box, report, title, rows, hint) {
    // The title and its hint above the table, so they wrap at any width; the table scrolls
    // sideways inside its own region when the screen is narrow.
    var id = "reports-table-" + box.querySelectorAll("table").length;
    var heading = document.createElement("h3");
    heading.id = id + "-title";
    heading.textContent = title;
    box.appendChild(heading);
    var table = document.createElement("table");
    table.className = "d-table d-figures";
    table.id = id;
    table.setAttribute("aria-labelledby", heading.id);
    if (hint) {
      var note = document.createElement("p");
      note.className = "d-hint";
      note.id = id + "-hint";
      note.textContent = hint;
      box.appendChild(note);
      table.setAttribute("aria-describedby", note.id);
    }
    var region = document.createElement("div");
    region.className = "d-scroll d-report";
    region.tabIndex = 0;
    region.setAttribute("role", "region");
    region.setAttribute("aria-label", title + " (schuifbaar)");
    var head = document.createElement("thead");
    var headRow = document.createElement("tr");
    ["", report.period.label, "Vorige: " + report.previous_period.label, "Verschil", "Aandeel"].forEach(function (text, n) {
      var th = document.createElement("th");
      th.scope = "col";
      if (n === 0) {
        var hidden = document.createElement("span");
        hidden.className = "d-sr";
        hidden.textContent = "Cijfer";
        th.appendChild(hidden);
      } else {
        th.textContent = text;
      }
      headRow.appendChild(th);
    });
    head.appendChild(headRow);
    table.appendChild(head);
    var body = document.createElement("tbody");
    rows.forEach(function (r) {
      var row = document.createElement("tr");
      row.dataset.figure = r.path;
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = r.label;
      row.appendChild(th);
      var format = r.format || count;
      var now = countAt(report.figures, r.path);
      cell(row, format(now), "d-num" + (typeof now === "string" ? " d-suppressed" : "")).dataset.column = "now";
      cell(row, format(countAt(report.previous, r.path)), "d-num").dataset.column = "previous";
      cell(row, r.format ? "" : change(countAt(report.change, r.path)), "d-num").dataset.column = "change";
      var node = figureAt(report.figures, r.path);
      cell(row, r.share && node && typeof node === "object" ? percent(node.share) : "", "d-num").dataset.column = "share";
      body.appendChild(row);
    });
    table.appendChild(body);
    region.appendChild(table);
    box.appendChild(region);
  }

  function showCharts(report, query, labels) {
    var box = $("reports-charts");
    box.replaceChildren();
    var names = {
      by_week: {}, by_channel: CHANNEL_NAMES, age_group: labels.age_group || {}, contact_role: labels.contact_role || {}
    };
    CHARTS.forEach(function (chart) {
      var figure = document.createElement("figure");
      figure.className = "d-chart";
      var cells = report.figures[chart[2]] || {};
      var values = Object.keys(cells).map(function (code) {
        var c = cells[code];
        var share = chart[0] === "age" || chart[0] === "roles" ? (c.share === null ? "" : " (" + percent(c.share) + ")") : "";
        return (names[chart[2]][code] || code) + ": " + count(c.count) + share;
      });
      var image = document.createElement("img");
      image.alt = chart[1] + ". " + values.join("; ") + ".";
      image.src = "/api/v1/reports/chart?chart=" + chart[0] + (query ? "&" + query : "");
      image.dataset.chart = chart[0];
      image.addEventListener("error", function () {
        var failed = document.createElement("p");
        failed.className = "d-hint";
        failed.textContent = "De grafiek kon niet worden geladen.";
        image.replaceWith(failed);
      });
      var caption = document.createElement("figcaption");
      caption.textContent = chart[1];
      figure.appendChild(caption);
      figure.appendChild(image);
      box.appendChild(figure);
    });
  }

  // ---- the team's standard answers (coordinators) -------------------------------

  // A coordinator's own team's answers (the national coordinator's: the national ones),
  // from the configuration file or made in the console. Checked by the desk exactly as
  // the file's are; its problems are shown beside the fields they are about.
  var PLACEHOLDERS = {
    next_open: "wanneer het team weer open is",
    phone: "het telefoonnummer van het team",
    team: "de naam van het team"
  };
  var ANSWER_FIELDS = {
    "id": ["answer-id", "korte naam"],
    "title.nl": ["answer-title-nl", "titel"],
    "text.nl": ["answer-text-nl", "tekst"],
    "title.en": ["answer-title-en", "Engelse titel"],
    "text.en": ["answer-text-en", "Engelse tekst"]
  };
  var ANSWER_ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
  var ID_RULE = "Alleen kleine letters, cijfers en losse streepjes, zoals spreekuur-eindhoven.";

  function showResponses(focus) {
    navigate();
    leaveConversation();
    notice("");
    hideAnswerForm();
    show("responses", focus);
    loadManaged();
  }

  function loadManaged(then) {
    var nav = state.nav;
    var seq = ++state.managed.seq;
    api("GET", "/api/v1/responses/manage").then(function (answer) {
      if (nav !== state.nav || seq !== state.managed.seq) { return; }
      if (answer.status !== 200) {
        notice(problem(answer, "De standaardantwoorden konden niet worden opgehaald."));
        return;
      }
      state.managed.items = answer.data.answers || [];
      state.managed.placeholders = answer.data.placeholders || [];
      state.managed.values = answer.data.values || {};
      $("answer-team").textContent = answer.data.team_name || answer.data.team || "";
      renderPlaceholders();
      renderManaged();
      if (then) { then(); }
    });
  }

  function placeholderList() {
    return state.managed.placeholders.map(function (name) { return "{" + name + "}"; }).join(", ");
  }

  function renderPlaceholders() {
    var list = $("answer-placeholders");
    list.replaceChildren();
    state.managed.placeholders.forEach(function (name) {
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = "{" + name + "}";
      var now = state.managed.values[name];
      item.append(code, document.createTextNode(": " + (PLACEHOLDERS[name] || name) +
        (now ? " (nu: “" + now + "”)" : "")));
      list.appendChild(item);
    });
  }

  function sourceText(item) {
    if (item.removed) { return "verwijderd: staat niet in het antwoordvak; terug te zetten uit het configuratiebestand"; }
    if (item.source === "console" && item.in_file) { return "aangepast in de console (het configuratiebestand heeft een andere versie)"; }
    if (item.source === "console") { return "toegevoegd in de console"; }
    return "uit het configuratiebestand";
  }

  function managedButton(text, label, className, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.setAttribute("aria-label", label);
    if (className) { button.className = className; }
    button.addEventListener("click", onClick);
    return button;
  }

  function renderManaged() {
    var list = $("answer-list");
    list.replaceChildren();
    state.managed.items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "d-answer-item" + (item.removed ? " d-answer-removed" : "");
      li.dataset.answer = item.id;
      li.dataset.source = item.source;
      if (item.removed) { li.dataset.removed = "true"; }
      var heading = document.createElement("h3");
      heading.id = "managed-" + item.id;
      heading.textContent = item.title.nl;
      var meta = document.createElement("p");
      meta.className = "d-meta";
      var changed = item.changed_at ? " · " + (item.removed ? "verwijderd" : "gewijzigd") + " door " +
        (item.changed_by_name || item.changed_by) + ", " + when(item.changed_at) : "";
      meta.textContent = "id: " + item.id + " · " + sourceText(item) + changed;
      li.append(heading, meta);
      [["nl", ""], ["en", "Engels: "]].forEach(function (pair) {
        if (!item.text[pair[0]]) { return; }
        var body = document.createElement("p");
        body.className = "d-answer-body";
        if (pair[0] === "en") { body.setAttribute("lang", "en"); }
        if (pair[1]) {
          var label = document.createElement("span");
          label.className = "d-answer-lang";
          label.setAttribute("lang", "nl");
          label.textContent = pair[1] + (item.title.en ? item.title.en + " — " : "");
          body.appendChild(label);
        }
        body.appendChild(document.createTextNode(item.text[pair[0]]));
        li.appendChild(body);
      });
      var actions = document.createElement("p");
      actions.className = "d-actions";
      var title = item.title.nl;
      if (!item.removed) {
        actions.appendChild(managedButton("Bewerken", "Bewerken: " + title, "d-secondary", function () { openAnswerForm(item); }));
      }
      if (item.in_file && (item.removed || item.source === "console")) {
        actions.appendChild(managedButton(item.removed ? "Terugzetten" : "Versie uit het bestand terugzetten",
          (item.removed ? "Terugzetten: " : "Versie uit het bestand terugzetten: ") + title, "d-secondary",
          function () { restoreAnswer(item); }));
      }
      if (!item.removed) {
        actions.appendChild(managedButton("Verwijderen", "Verwijderen: " + title, "d-secondary d-danger",
          function () { askRemove(item, li); }));
      }
      li.appendChild(actions);
      list.appendChild(li);
    });
    $("answer-list-empty").hidden = state.managed.items.length > 0;
  }

  // Where the focus goes after a change: the answer's first button, else "Nieuw antwoord".
  function focusManaged(id) {
    var item = id ? $("answer-list").querySelector('li[data-answer="' + id + '"] button') : null;
    (item || $("answer-new")).focus();
  }

  function askRemove(item, li) {
    if (li.querySelector(".d-confirm")) { li.querySelector(".d-confirm button").focus(); return; }
    var box = document.createElement("div");
    box.className = "d-confirm";
    box.setAttribute("role", "group");
    var question = document.createElement("p");
    question.id = "confirm-" + item.id;
    question.textContent = "“" + item.title.nl + "” verwijderen? " + (item.in_file
      ? "Het verdwijnt uit het antwoordvak van je team; je kunt het later terugzetten uit het configuratiebestand."
      : "Het verdwijnt uit het antwoordvak van je team; dit kan niet ongedaan worden gemaakt.");
    box.setAttribute("aria-labelledby", question.id);
    var buttons = document.createElement("p");
    buttons.className = "d-actions";
    var yes = managedButton("Ja, verwijderen", "Ja, verwijderen: " + item.title.nl, "d-danger-solid", function () {
      removeAnswer(item, box);
    });
    var no = managedButton("Nee, laten staan", "Nee, laten staan: " + item.title.nl, "d-secondary", function () {
      box.remove();
      focusManaged(item.id);
    });
    buttons.append(yes, no);
    box.append(question, buttons);
    li.appendChild(box);
    yes.focus();
  }

  function removeAnswer(item, box) {
    busy(box, true);
    api("DELETE", "/api/v1/responses/" + encodeURIComponent(item.id)).then(function (answer) {
      if (answer.status === 204) {
        notice("");
        status("Standaardantwoord “" + item.title.nl + "” verwijderd.");
        loadManaged(function () { focusManaged(item.in_file ? item.id : null); });
        return;
      }
      busy(box, false);
      notice(problem(answer, "Verwijderen lukte niet."));
      loadManaged(function () { focusManaged(null); });
    });
  }

  function restoreAnswer(item) {
    api("POST", "/api/v1/responses/" + encodeURIComponent(item.id) + "/restore").then(function (answer) {
      if (answer.status === 204) {
        notice("");
        status("Standaardantwoord “" + item.id + "” staat weer zoals in het configuratiebestand.");
      } else {
        notice(problem(answer, "Terugzetten lukte niet."));
      }
      loadManaged(function () { focusManaged(item.id); });
    });
  }

  function hideAnswerForm() {
    $("answer-form").hidden = true;
    $("answer-new").setAttribute("aria-expanded", "false");
    ["answer-id", "answer-title-nl", "answer-text-nl", "answer-title-en", "answer-text-en"].forEach(function (id) {
      $(id).value = "";
    });
    $("answer-id").readOnly = false;
    clearAnswerProblems();
    state.managed.editing = null;
  }

  function openAnswerForm(item) {
    hideAnswerForm();
    state.managed.editing = item ? item.id : null;
    $("answer-form-title").textContent = item ? "Bewerken: " + item.title.nl : "Nieuw antwoord";
    $("answer-id").value = item ? item.id : "";
    $("answer-id").readOnly = Boolean(item);
    $("answer-id-hint").textContent = item ? "Het id van een bestaand antwoord verandert niet." : ID_RULE + " Het id verandert daarna niet meer.";
    $("answer-title-nl").value = item ? item.title.nl || "" : "";
    $("answer-text-nl").value = item ? item.text.nl || "" : "";
    $("answer-title-en").value = item ? item.title.en || "" : "";
    $("answer-text-en").value = item ? item.text.en || "" : "";
    $("answer-form").hidden = false;
    $("answer-new").setAttribute("aria-expanded", String(!item));
    (item ? $("answer-title-nl") : $("answer-id")).focus();
  }

  function clearAnswerProblems() {
    Object.keys(ANSWER_FIELDS).forEach(function (field) {
      var input = $(ANSWER_FIELDS[field][0]);
      $(ANSWER_FIELDS[field][0] + "-error").textContent = "";
      input.removeAttribute("aria-invalid");
    });
  }

  // What the desk says of a field, in the console's words.
  function answerProblemText(text) {
    var unknown = /unknown placeholder \{([^}]*)\}/.exec(text || "");
    if (unknown) { return "Onbekende invuller {" + unknown[1] + "}. Je kunt " + placeholderList() + " gebruiken."; }
    if (/a lone \{ or \}/.test(text)) { return "Een losse { of }. Gebruik een invuller, of schrijf {{ of }} voor een accolade."; }
    var max = /at most (\d+) character/.exec(text || "");
    if (max) { return "Hoogstens " + max[1] + " tekens."; }
    if (/Dutch text|at least 1 character|Field required/.test(text)) { return "Vul dit in."; }
    if (/should match pattern/.test(text)) { return ID_RULE; }
    return "Controleer dit veld.";
  }

  function showAnswerProblems(problems) {
    var named = [];
    var first = null;
    problems.forEach(function (pair) {
      var field = ANSWER_FIELDS[pair[0]];
      if (!field) { return; }
      $(field[0] + "-error").textContent = pair[1];
      $(field[0]).setAttribute("aria-invalid", "true");
      if (named.indexOf(field[1]) < 0) { named.push(field[1]); }
      if (!first) { first = $(field[0]); }
    });
    notice(named.length > 0 ? "Het antwoord is niet opgeslagen. Controleer: " + named.join(", ") + "."
      : "Het antwoord is niet opgeslagen: laad de pagina opnieuw en probeer het nog eens.");
    if (first) { first.focus(); }
  }

  function submitAnswer(event) {
    event.preventDefault();
    clearAnswerProblems();
    var editing = state.managed.editing;
    var id = editing || $("answer-id").value.trim();
    var value = function (name) { return $(name).value.trim(); };
    var title = { nl: value("answer-title-nl") };
    var text = { nl: value("answer-text-nl") };
    if (value("answer-title-en")) { title.en = value("answer-title-en"); }
    if (value("answer-text-en")) { text.en = value("answer-text-en"); }
    var problems = [];
    if (!editing) {
      var taken = state.managed.items.filter(function (item) { return item.id === id; })[0];
      if (!id) { problems.push(["id", "Vul een id in."]); }
      else if (!ANSWER_ID.test(id)) { problems.push(["id", ID_RULE]); }
      else if (taken && taken.removed) { problems.push(["id", "Een verwijderd antwoord heeft dit id: zet het terug, of kies een ander id."]); }
      else if (taken) { problems.push(["id", "Er is al een antwoord met dit id: kies “Bewerken” bij dat antwoord, of een ander id."]); }
    }
    if (!title.nl) { problems.push(["title.nl", "Vul een titel in."]); }
    if (!text.nl) { problems.push(["text.nl", "Vul een tekst in."]); }
    if (problems.length > 0) { showAnswerProblems(problems); return; }
    var form = $("answer-form");
    var nav = state.nav;
    busy(form, true);
    api("PUT", "/api/v1/responses/" + encodeURIComponent(id), { title: title, text: text }).then(function (answer) {
      busy(form, false);
      if (nav !== state.nav) { return; }
      if (answer.status === 200) {
        hideAnswerForm();
        notice("");
        status("Standaardantwoord “" + title.nl + "” " + (answer.data.status === "added" ? "toegevoegd" : "opgeslagen") +
          ". Je team vindt het meteen met / in het antwoordvak.");
        loadManaged(function () { focusManaged(id); });
        return;
      }
      if (answer.status === 422 && Array.isArray(answer.data.fields)) {
        showAnswerProblems(answer.data.fields.map(function (f) { return [f.field, answerProblemText(f.problem)]; }));
        return;
      }
      notice(problem(answer, "Opslaan lukte niet. Probeer het opnieuw."));
    });
  }

  // ---- sessions ---------------------------------------------------------------

  function showSessions() {
    navigate();
    leaveConversation();
    notice("");
    show("sessions", true);
    loadSessions();
  }

  function loadSessions() {
    api("GET", "/api/v1/sessions").then(function (answer) {
      if (answer.status !== 200) { notice(answer.data.detail || "De sessies konden niet worden opgehaald."); return; }
      var rows = $("sessions-rows");
      rows.replaceChildren();
      answer.data.sessions.forEach(function (s) {
        var row = document.createElement("tr");
        row.dataset.session = s.id;
        if (s.current) { row.className = "d-current"; }
        cell(row, METHODS[s.method] || s.method);
        cell(row, when(s.created_at));
        cell(row, when(s.last_seen_at));
        cell(row, when(s.expires_at));
        cell(row, s.current ? "deze sessie" : "");
        var action = document.createElement("td");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "d-secondary";
        button.textContent = "Beëindigen";
        button.setAttribute("aria-label", s.current
          ? "Beëindigen: deze sessie (je wordt afgemeld)"
          : "Beëindigen: sessie sinds " + when(s.created_at));
        button.addEventListener("click", function () { endSession(s); });
        action.appendChild(button);
        row.appendChild(action);
        rows.appendChild(row);
      });
    });
  }

  function endSession(s) {
    api("DELETE", "/api/v1/sessions/" + encodeURIComponent(s.id)).then(function (answer) {
      if (answer.status === 204 && s.current) { signedOut("Je bent afgemeld."); return; }
      if (answer.status === 204) { notice(""); status("Sessie beëindigd."); }
      else if (answer.status === 404) { notice("Die sessie was al beëindigd."); }
      else { notice(answer.data.detail || "Beëindigen lukte niet."); }
      loadSessions();
    });
  }

  // ---- the access log ---------------------------------------------------------

  function dayAfter(date) {
    var parts = date.split("-").map(Number);
    return new Date(Date.UTC(parts[0], parts[1] - 1, parts[2] + 1)).toISOString().slice(0, 10);
  }

  function showAudit(focus) {
    navigate();
    leaveConversation();
    notice("");
    show("audit", focus);
    loadAudit();
  }

  function loadAudit() {
    var query = new URLSearchParams();
    var account = $("audit-account").value.trim();
    var conversation = $("audit-conversation").value.trim();
    var action = $("audit-action").value;
    var since = $("audit-since").value;
    var until = $("audit-until").value;
    if (since && until && until < since) { notice("De einddatum ligt vóór de begindatum."); return; }
    if (account) { query.set("account", account); }
    if (conversation) { query.set("conversation", conversation); }
    if (action) { query.set("action", action); }
    if (since) { query.set("since", since); }
    if (until) { query.set("until", dayAfter(until)); }  // "tot en met": the whole day
    var text = query.toString();
    api("GET", "/api/v1/audit" + (text ? "?" + text : "")).then(function (answer) {
      var rows = $("audit-rows");
      rows.replaceChildren();
      if (answer.status === 403) {
        $("audit-summary").textContent = "";
        notice("Je rol geeft geen toegang tot het toegangslog.");
        return;
      }
      if (answer.status !== 200) {
        $("audit-summary").textContent = "";
        notice(answer.data.detail || "Het toegangslog kon niet worden opgehaald.");
        return;
      }
      notice("");
      var records = answer.data.records || [];
      records.forEach(function (r) {
        var row = document.createElement("tr");
        row.dataset.action = r.action;
        row.dataset.result = r.result;
        cell(row, when(r.at, true));
        cell(row, r.account + (r.on_behalf_of ? " (namens " + r.on_behalf_of + ")" : ""));
        cell(row, METHODS[r.method] || r.method);
        cell(row, r.team);
        cell(row, ACTION_LABELS[r.action] || r.action);
        cell(row, r.conversation_id, "d-id");
        cell(row, RESULTS[r.result] || r.result, r.result === "ok" ? "" : "d-urgent");
        cell(row, r.reason);
        rows.appendChild(row);
      });
      var summary = records.length === 0 ? "Geen vastgelegde handelingen gevonden." :
        records.length === 1 ? "1 vastgelegde handeling." : records.length + " vastgelegde handelingen.";
      if (answer.data.chain === "broken") {
        summary += " Let op: de keten van het log is verbroken; er is een regel gewijzigd of verwijderd.";
      } else if (answer.data.chain === "intact") {
        summary += " De keten van het log is intact.";
      }
      $("audit-summary").textContent = summary;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = $("audit-action");
    ACTIONS.forEach(function (pair) {
      var option = document.createElement("option");
      option.value = pair[0];
      option.textContent = pair[1];
      select.appendChild(option);
    });
    passwordStep();
    $("signin-form").addEventListener("submit", submitSignIn);
    $("other-user").addEventListener("click", function () { passwordStep(); notice(""); $("counsellor").focus(); });
    $("enrol-form").addEventListener("submit", confirmEnrolment);
    $("recovery-done").addEventListener("click", function () {
      $("recovery-codes").replaceChildren();
      loadMe();
    });
    $("sign-out").addEventListener("click", signOut);
    $("nav-queue").addEventListener("click", function () { showQueue(true); });
    $("nav-board").addEventListener("click", function () { showBoard(true); });
    $("nav-reports").addEventListener("click", function () { showReports(true); });
    $("reports-kind").addEventListener("change", showReportKind);
    $("reports-form").addEventListener("submit", function (event) { event.preventDefault(); loadReport(); });
    $("next").addEventListener("click", claimNext);
    $("move-form").addEventListener("submit", submitMove);
    $("reply").addEventListener("input", replyTyped);
    $("reply").addEventListener("keydown", replyKey);
    $("reply").addEventListener("blur", function () {
      // A click on an option keeps the focus (mousedown is prevented); leaving the box closes the list.
      setTimeout(function () { if (document.activeElement !== $("reply") && state.answers.open) { closeAnswers(); } }, 0);
    });
    $("nav-sessions").addEventListener("click", showSessions);
    $("nav-audit").addEventListener("click", function () { showAudit(true); });
    $("audit-form").addEventListener("submit", function (event) { event.preventDefault(); loadAudit(); });
    $("audit-reset").addEventListener("click", function () {
      ["audit-account", "audit-conversation", "audit-since", "audit-until"].forEach(function (id) { $(id).value = ""; });
      $("audit-action").value = "";
      loadAudit();
    });
    $("back").addEventListener("click", function () { showQueue(true); });
    $("claim").addEventListener("click", function () { act("/claim"); });
    $("close").addEventListener("click", function () {
      if ($("close-form").hidden) { openCloseForm(); } else { $("close-title").focus(); }
    });
    $("close-form").addEventListener("submit", submitClose);
    $("close-cancel").addEventListener("click", function () { hideCloseForm(); notice(""); $("close").focus(); });
    $("export-json").addEventListener("click", function () { exportConversation("json"); });
    $("export-text").addEventListener("click", function () { exportConversation("text"); });
    $("reveal-form").addEventListener("submit", submitReveal);
    $("reply-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("reply").value.trim();
      if (!text) { notice("Typ eerst een antwoord."); return; }
      if (answersQuery() !== null && state.answers.open) {
        notice("Kies eerst een standaardantwoord (Enter), of sluit de lijst met Escape.");
        return;
      }
      act("/reply", { text: text }, function () { $("reply").value = ""; });
    });
    $("note-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("note").value.trim();
      if (!text) { notice("Typ eerst een notitie."); $("note").focus(); return; }
      act("/notes", { text: text }, function () { $("note").value = ""; status("Notitie toegevoegd (alleen voor het team)."); });
    });
    $("transfer-form").addEventListener("submit", submitTransfer);
    $("nav-responses").addEventListener("click", function () { showResponses(true); });
    $("answer-new").addEventListener("click", function () { openAnswerForm(null); });
    $("answer-cancel").addEventListener("click", function () {
      var editing = state.managed.editing;
      hideAnswerForm();
      notice("");
      focusManaged(editing);
    });
    $("answer-form").addEventListener("submit", submitAnswer);
    loadMe();
  });
})();
