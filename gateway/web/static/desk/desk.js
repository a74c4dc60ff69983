/* The counsellor console: the team's queue (live, through server-sent events), a
 * conversation, and claim, reply, transfer and close. Talks only to /api/v1/ with the
 * HttpOnly session cookie; the CSRF token lives in memory only. */
(function () {
  "use strict";
  var state = { me: null, csrf: "", open: null, events: null };
  var $ = function (id) { return document.getElementById(id); };

  function notice(text) { $("notice").textContent = text || ""; }

  function api(method, path, body) {
    var options = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (method !== "GET") { options.headers["X-CSRF-Token"] = state.csrf; }
    return fetch(path, options).then(function (response) {
      return response.text().then(function (text) {
        var data = text ? JSON.parse(text) : {};
        if (response.status === 401 && path !== "/api/v1/session") { show("signin"); }
        return { status: response.status, data: data };
      });
    });
  }

  function show(section) {
    ["signin", "queue", "conversation"].forEach(function (name) { $(name).hidden = name !== section; });
  }

  function minutes(seconds) {
    var m = Math.floor(seconds / 60);
    return m < 1 ? "< 1 min" : m + " min";
  }

  function start(me) {
    state.me = me;
    state.csrf = me.csrf_token;
    $("who").textContent = me.name + " · " + me.team;
    $("queue-title").textContent = "Wachtrij " + me.team;
    show("queue");
    loadQueue();
    if (state.events) { state.events.close(); }
    state.events = new EventSource("/api/v1/events");
    state.events.addEventListener("changed", function (event) {
      loadQueue();
      if (state.open && event.data === state.open) { openConversation(state.open, true); }
    });
  }

  function loadQueue() {
    api("GET", "/api/v1/conversations").then(function (answer) {
      if (answer.status !== 200) { return; }
      var rows = $("queue-rows");
      rows.replaceChildren();
      answer.data.conversations.forEach(function (c) {
        var row = document.createElement("tr");
        row.dataset.conversation = c.conversation_id;
        var cells = [
          c.channel_kind,
          c.status === "claimed" ? "opgepakt door " + c.claimed_by : "wacht",
          minutes(c.waiting_seconds),
          [c.urgent ? "urgent" : "", c.after_hours ? "buiten openingstijd" : ""].filter(Boolean).join(", ")
        ];
        cells.forEach(function (text, index) {
          var cell = document.createElement("td");
          cell.textContent = text;
          if (index === 3 && c.urgent) { cell.className = "d-urgent"; }
          row.appendChild(cell);
        });
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
      show("conversation");
    });
  }

  function act(path, body, done) {
    api("POST", "/api/v1/conversations/" + encodeURIComponent(state.open) + path, body).then(function (answer) {
      if (answer.status >= 400) {
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

  document.addEventListener("DOMContentLoaded", function () {
    $("signin-form").addEventListener("submit", function (event) {
      event.preventDefault();
      api("POST", "/api/v1/session", { counsellor: $("counsellor").value.trim(), password: $("password").value })
        .then(function (answer) {
          $("password").value = "";
          if (answer.status !== 200) { notice("Onbekende gebruikersnaam of verkeerd wachtwoord."); return; }
          notice("");
          api("GET", "/api/v1/me").then(function (me) { start(me.data); });
        });
    });
    $("back").addEventListener("click", function () { state.open = null; show("queue"); loadQueue(); });
    $("claim").addEventListener("click", function () { act("/claim"); });
    $("close").addEventListener("click", function () { act("/close", undefined, function () { state.open = null; show("queue"); loadQueue(); }); });
    $("reply-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("reply").value.trim();
      if (!text) { notice("Typ eerst een antwoord."); return; }
      act("/reply", { text: text }, function () { $("reply").value = ""; });
    });
    $("transfer-form").addEventListener("submit", function (event) {
      event.preventDefault();
      act("/transfer", { team: $("transfer-team").value.trim(), reason: $("transfer-reason").value.trim() }, function () {
        state.open = null;
        $("transfer-team").value = "";
        $("transfer-reason").value = "";
        show("queue");
        loadQueue();
      });
    });
    api("GET", "/api/v1/me").then(function (answer) {
      if (answer.status === 200) { start(answer.data); } else { show("signin"); }
    });
  });
})();
