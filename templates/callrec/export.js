// The export page's progress bar: asks callrec's status endpoint every two seconds while the bundle
// is being built, and reloads the page once when it is ready or failed. Without this script the page
// shows the state it had when it loaded, with a link to refresh.
(function () {
  "use strict";
  var bar = document.getElementById("callrec-export-progress");
  if (!bar || !bar.dataset.statusUrl) { return; }
  var text = document.getElementById("callrec-export-progress-text");
  var finished = ["ready", "failed", "expired", "refused"];
  function update() {
    fetch(bar.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (!status) { return; }
        if (status.total) {
          bar.max = status.total;
          bar.value = status.done;
          if (text) { text.textContent = status.done + " of " + status.total + " calls added"; }
        }
        if (finished.indexOf(status.status) >= 0) {
          window.location.reload();
        } else {
          window.setTimeout(update, 2000);
        }
      })
      .catch(function () { window.setTimeout(update, 5000); });
  }
  window.setTimeout(update, 1000);
}());
