// The place-hold form shows only the fields of the chosen scope (one call, a patient's calls, a
// date range). Without this script every fieldset is shown, and the server ignores what does not apply.
(function () {
  "use strict";
  var scope = document.getElementById("callrec-hold-scope");
  if (!scope) { return; }
  function show() {
    document.querySelectorAll("[data-callrec-scope]").forEach(function (part) {
      var on = part.getAttribute("data-callrec-scope").split(" ").indexOf(scope.value) >= 0;
      part.hidden = !on;
      part.querySelectorAll("input, select, textarea, button").forEach(function (control) {
        control.disabled = !on;  // hidden fields are not sent
      });
    });
  }
  scope.addEventListener("change", show);
  show();
}());
