/* The counsellor console: signing in (password, then the code from the authenticator
 * app), setting up that second step, the team's queue (live, through server-sent
 * events), a conversation with claim, reply, transfer, the team's internal notes (apart
 * from the messages), the handover note of a transfer, export, the call-back on a channel
 * that carries no replies (Masker 19) and close with its registration, one's own
 * sessions, and, for the privacy officer only, the access log. Talks only to /api/v1/ with the
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
    ["note", "notitie toegevoegd"],
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

  var state = {
    me: null, csrf: "", open: null, events: null, pending: null, oidc: null, epoch: 0,
    nav: 0, seq: 0, shown: 0, queueShown: 0, wrapUp: null, revealed: null, noReply: {}
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
    ["queue-rows", "transcript", "notes", "sessions-rows", "audit-rows", "recovery-codes", "totp-qr"].forEach(function (id) {
      $(id).replaceChildren();
    });
    ["totp-secret", "audit-summary", "who", "conversation-state", "handover", "reveal-result"].forEach(function (id) {
      $(id).textContent = "";
    });
    ["reply", "note", "transfer-team", "transfer-reason", "enrol-code", "audit-account", "audit-conversation",
      "audit-since", "audit-until", "reveal-reason"].forEach(function (id) { $(id).value = ""; });
    hideCloseForm();
    state.revealed = null;
    state.wrapUp = null;
    state.noReply = {};
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

  // Channels that carry no replies: the counsellor calls back instead (a reply is 409
  // cannot_reply). The desk's own word wins when it gives one (`can_reply`); a
  // conversation whose reply the desk refused with cannot_reply is treated alike.
  var NO_REPLY_KINDS = ["masker19"];
  var REVEAL_REASONS = { call_back: "terugbellen", report: "melding", other: "anders" };

  // Every navigation (another view, another conversation) makes answers to requests
  // made before it stale; within one view, an older answer never replaces a newer one.
  function navigate() {
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
    $("conversation-title").textContent = "Gesprek via " + c.channel_kind;
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

    $("claim").disabled = c.status !== "waiting";
    $("close").disabled = theirs || c.status === "closed";
    if ($("close").disabled) { hideCloseForm(); }
    $("export").hidden = !mine;

    var list = $("transcript");
    list.replaceChildren();
    (c.transcript || []).forEach(function (entry) {
      if (entry.direction !== "in" && entry.direction !== "out") { return; }  // notes have their own place
      var who = entry.direction === "in" ? "Persoon" : (entry.author || "Veilig Thuis");
      list.appendChild(entryItem("d-" + entry.direction, who, entry.at, entry.text));
    });

    var notes = $("notes");
    notes.replaceChildren();
    (c.notes || []).forEach(function (entry) {
      notes.appendChild(entryItem("d-note-item", "Notitie van " + (entry.author || "onbekend"), entry.at, entry.text));
    });
    $("notes-empty").hidden = (c.notes || []).length > 0;

    var noReply = cannotReply(c);
    $("reply-form").hidden = noReply;
    $("reply").disabled = !mine;
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
      case "unknown_team": return "Onbekend team: vul een regiocode in, of national.";
      case "same_team": return "Het gesprek is al van dit team.";
      case "broker_unavailable":
      case "store_unavailable": return "Dat lukte nu niet; er is niets gebeurd. Probeer het zo opnieuw.";
      case "not_permitted": return "Je rol staat dit niet toe.";
      default: return fallback || data.detail || "Dat lukte niet.";
    }
  }

  function act(path, body, done) {
    var id = state.open;
    api("POST", "/api/v1/conversations/" + encodeURIComponent(id) + path, body).then(function (answer) {
      if (answer.status >= 400 || answer.status === 0) {
        if (answer.data.error === "cannot_reply") { state.noReply[id] = true; }
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
      act("/reply", { text: text }, function () { $("reply").value = ""; });
    });
    $("note-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("note").value.trim();
      if (!text) { notice("Typ eerst een notitie."); $("note").focus(); return; }
      act("/notes", { text: text }, function () { $("note").value = ""; status("Notitie toegevoegd (alleen voor het team)."); });
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
