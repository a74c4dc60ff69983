/* Masker 19 intake: show "call 112 first" as soon as acute danger is chosen, move
 * focus to the error summary, and never let a restored page keep what was typed. */
(function () {
  "use strict";
  function ready() {
    var notice = document.getElementById("bel112");
    var radios = document.querySelectorAll('input[name="acuut"]');
    function update() {
      var yes = document.querySelector('input[name="acuut"][value="ja"]');
      if (notice && yes) { notice.hidden = !yes.checked; }
    }
    Array.prototype.forEach.call(radios, function (radio) { radio.addEventListener("change", update); });
    update();
    var errors = document.getElementById("fouten");
    if (errors) { errors.focus(); }
  }
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      Array.prototype.forEach.call(document.forms, function (form) { form.reset(); });
      window.location.reload();
    }
  });
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
})();
