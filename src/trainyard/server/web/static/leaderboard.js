// The leaderboard's settings form: saves the evaluation metric and goal with
// PUT /api/v1/projects/{project}/leaderboard (Clear: DELETE), then reloads the board.
// The server's error message is shown as text next to the form.
(function () {
  "use strict";

  // app.js's request helper (loaded first, by every page).
  function call(method, url, body) { return window.trainyard.callApi(method, url, body); }

  function setup() {
    var form = document.getElementById("leaderboard-form");
    if (!form) return;
    var error = document.getElementById("leaderboard-error");
    var url = "/api/v1/projects/" + encodeURIComponent(form.dataset.project) + "/leaderboard";
    var buttons = form.querySelectorAll("button");
    function busy(on) { buttons.forEach(function (b) { b.disabled = on; }); }
    function fail(err) { busy(false); error.textContent = err.message; }
    function done() { window.location.reload(); }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      error.textContent = "";
      var goal = form.querySelector('input[name="goal"]:checked');
      busy(true);
      call("PUT", url, { metric: form.elements.metric.value.trim(), goal: goal ? goal.value : "" })
        .then(done, fail);
    });
    form.querySelectorAll("[data-metric]").forEach(function (chip) {
      chip.addEventListener("click", function () {
        form.elements.metric.value = chip.dataset.metric;
        form.elements.metric.focus();
      });
    });
    var clear = document.getElementById("leaderboard-clear");
    if (clear) {
      clear.addEventListener("click", function () {
        error.textContent = "";
        busy(true);
        call("DELETE", url).then(done, fail);
      });
    }
    // /projects/{p}/leaderboard#leaderboard-settings opens the settings.
    var settings = document.getElementById("leaderboard-settings");
    function fromHash() { if (settings && window.location.hash === "#leaderboard-settings") settings.open = true; }
    fromHash();
    window.addEventListener("hashchange", fromHash);
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
