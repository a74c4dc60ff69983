/* The counsellor console: signing in (password, then the code from the authenticator
 * app), setting up that second step, the team's queue (live, through server-sent
 * events), a conversation with claim, reply, transfer and close, one's own sessions,
 * and, for the privacy officer only, the access log. Talks only to /api/v1/ with the
 * HttpOnly session cookie; the CSRF token lives in memory only. */
(function () {
  "use strict";
  var SECTIONS = ["signin", "enrol", "recovery", "queue", "conversation", "sessions", "audit"];
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
    ["reveal", "contactgegevens ingezien"],
    ["export", "geëxporteerd"],
    ["admin_reload", "configuratie herladen"],
    ["audit_read", "toegangslog gelezen"],
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
  // Answers that belong to signing in itself, not a sign that the session ended.
  var SIGN_IN_ANSWERS = ["wrong_credentials", "second_factor_required", "wrong_second_factor", "too_many_attempts"];

  var state = { me: null, csrf: "", open: null, events: null, pending: null, oidc: null, epoch: 0 };
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

  var NAV = { queue: "nav-queue", conversation: "nav-queue", sessions: "nav-sessions", audit: "nav-audit" };

  function show(section, focus) {
    SECTIONS.forEach(function (name) { $(name).hidden = name !== section; });
    ["nav-queue", "nav-sessions", "nav-audit"].forEach(function (id) {
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
        state.csrf = answer.data.csrf_token;
        loadMe();
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

  function loadMe() {
    api("GET", "/api/v1/me").then(function (answer) {
      if (answer.status === 200) { start(answer.data); } else { show("signin"); }
    });
  }

  function clearPrivate() {
    ["queue-rows", "transcript", "sessions-rows", "audit-rows", "recovery-codes", "totp-qr"].forEach(function (id) {
      $(id).replaceChildren();
    });
    ["totp-secret", "audit-summary", "who", "conversation-state"].forEach(function (id) { $(id).textContent = ""; });
    ["reply", "transfer-team", "transfer-reason", "enrol-code", "audit-account", "audit-conversation",
      "audit-since", "audit-until"].forEach(function (id) { $(id).value = ""; });
    $("audit-action").value = "";
  }

  function signedOut(message, asError) {
    state.epoch += 1;
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

  function start(me) {
    state.me = me;
    if (me.csrf_token) { state.csrf = me.csrf_token; }
    var role = ROLES[me.role] === undefined ? me.role : ROLES[me.role];
    $("who").textContent = me.name + " · " + me.team + (role ? " · " + role : "");
    $("menu").hidden = false;
    var enrolling = me.second_factor === "enrol";
    $("nav-queue").hidden = enrolling || isOfficer();
    $("nav-audit").hidden = enrolling || !isOfficer();
    $("nav-sessions").hidden = enrolling;
    if (enrolling) {
      closeEvents();
      beginEnrolment();
      return;
    }
    openEvents();
    if (isOfficer()) { showAudit(true); } else { showQueue(true); }
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

  function showQueue(focus) {
    state.open = null;
    notice("");
    $("queue-title").textContent = "Wachtrij " + state.me.team;
    show("queue", focus);
    loadQueue();
  }

  function loadQueue() {
    api("GET", "/api/v1/conversations").then(function (answer) {
      if (answer.status !== 200) { return; }
      var rows = $("queue-rows");
      rows.replaceChildren();
      answer.data.conversations.forEach(function (c) {
        var row = document.createElement("tr");
        row.dataset.conversation = c.conversation_id;
        cell(row, c.channel_kind);
        cell(row, c.status === "claimed" ? "opgepakt door " + c.claimed_by : "wacht");
        cell(row, minutes(c.waiting_seconds));
        cell(row, [c.urgent ? "urgent" : "", c.after_hours ? "buiten openingstijd" : ""].filter(Boolean).join(", "),
          c.urgent ? "d-urgent" : "");
        var action = document.createElement("td");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "d-secondary";
        button.textContent = "Openen";
        button.setAttribute("aria-label", "Openen: gesprek via " + c.channel_kind + ", wacht " + minutes(c.waiting_seconds));
        button.addEventListener("click", function () { openConversation(c.conversation_id); });
        action.appendChild(button);
        row.appendChild(action);
        rows.appendChild(row);
      });
      $("queue-empty").hidden = answer.data.conversations.length > 0;
    });
  }

  function openConversation(id, quietly) {
    api("GET", "/api/v1/conversations/" + encodeURIComponent(id)).then(function (answer) {
      if (answer.status !== 200) {
        if (!quietly) { notice(answer.data.detail || "Dit gesprek is niet (meer) van je team."); }
        state.open = null;
        show("queue");
        loadQueue();
        return;
      }
      var c = answer.data;
      var opening = state.open !== id || $("conversation").hidden;
      state.open = id;
      if (!quietly) { notice(""); }
      $("conversation-title").textContent = "Gesprek via " + c.channel_kind;
      $("conversation-state").textContent = c.status === "claimed" ? "Opgepakt door " + c.claimed_by : "Wacht op een medewerker";
      var mine = c.status === "claimed" && c.claimed_by === state.me.counsellor;
      $("claim").disabled = c.status === "claimed";
      $("reply").disabled = !mine;
      var list = $("transcript");
      list.replaceChildren();
      c.transcript.forEach(function (entry) {
        var item = document.createElement("li");
        item.className = "d-" + entry.direction;
        var meta = document.createElement("span");
        meta.className = "d-meta";
        meta.textContent = (entry.direction === "in" ? "Persoon" : entry.direction === "out" ? (entry.author || "Veilig Thuis") : "Notitie") +
          " · " + new Date(entry.at).toLocaleTimeString("nl-NL", { hour: "2-digit", minute: "2-digit" });
        var text = document.createElement("span");
        text.textContent = entry.text;
        item.append(meta, text);
        list.appendChild(item);
      });
      show("conversation", opening && !quietly);
    });
  }

  function act(path, body, done) {
    api("POST", "/api/v1/conversations/" + encodeURIComponent(state.open) + path, body).then(function (answer) {
      if (answer.status >= 400 || answer.status === 0) {
        notice(answer.data.error === "already_claimed"
          ? "Dit gesprek is al opgepakt door " + answer.data.claimed_by + "."
          : (answer.data.detail || "Dat lukte niet."));
      } else {
        notice("");
        if (done) { done(); }
      }
      if (state.open) { openConversation(state.open, true); }
    });
  }

  // ---- sessions ---------------------------------------------------------------

  function showSessions() {
    state.open = null;
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
    state.open = null;
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
    $("close").addEventListener("click", function () { act("/close", undefined, function () { showQueue(true); }); });
    $("reply-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("reply").value.trim();
      if (!text) { notice("Typ eerst een antwoord."); return; }
      act("/reply", { text: text }, function () { $("reply").value = ""; });
    });
    $("transfer-form").addEventListener("submit", function (event) {
      event.preventDefault();
      act("/transfer", { team: $("transfer-team").value.trim(), reason: $("transfer-reason").value.trim() }, function () {
        $("transfer-team").value = "";
        $("transfer-reason").value = "";
        showQueue(true);
      });
    });
    loadMe();
  });
})();
