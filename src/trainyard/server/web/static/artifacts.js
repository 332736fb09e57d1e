// The run view's Artifacts tab: every file of the run's artifacts (its output directory),
// with its size and a download link, read from GET /api/v1/runs/{id}/artifacts?recursive=true
// when the tab is first shown and on Refresh. Paths are set with textContent only.
(function () {
  "use strict";

  function size(n) {
    if (n === null || n === undefined) return "";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i === 0 ? String(v) : (v < 100 ? v.toFixed(1).replace(/\.0$/, "") : Math.round(v))) + " " + units[i];
  }

  function setup() {
    var root = document.getElementById("artifacts");
    if (!root) return;
    var pane = document.getElementById("pane-artifacts");
    var runId = root.dataset.run;
    var table = document.getElementById("artifacts-table");
    var body = table.querySelector("tbody");
    var empty = document.getElementById("artifacts-empty");
    var state = document.getElementById("artifacts-state");
    var summary = document.getElementById("artifacts-summary");
    var loaded = false;

    function row(item) {
      var tr = document.createElement("tr");
      var depth = item.path.split("/").length - 1;
      var name = document.createElement("td");
      name.className = item.is_dir ? "dir" : "file";
      name.style.paddingLeft = (0.5 + depth * 1.25) + "rem";
      name.textContent = item.path.split("/").pop() + (item.is_dir ? "/" : "");
      name.title = item.path;
      var bytes = document.createElement("td");
      bytes.className = "num muted";
      bytes.textContent = size(item.size);
      var link = document.createElement("td");
      if (!item.is_dir) {
        var a = document.createElement("a");
        a.href = "/api/v1/runs/" + runId + "/artifacts/" + item.path.split("/").map(encodeURIComponent).join("/");
        a.textContent = "Download";
        a.setAttribute("download", "");
        a.setAttribute("aria-label", "Download " + item.path);
        link.appendChild(a);
      }
      tr.append(name, bytes, link);
      tr.dataset.path = item.path;
      return tr;
    }

    function load() {
      state.textContent = "";
      return fetch("/api/v1/runs/" + runId + "/artifacts?recursive=true", { headers: { accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) return r.json().then(function (b) { throw new Error(b.error ? b.error.message : "HTTP " + r.status); });
          return r.json();
        })
        .then(function (data) {
          var items = data.items;
          body.textContent = "";
          items.forEach(function (item) { body.appendChild(row(item)); });
          var files = items.filter(function (i) { return !i.is_dir; });
          var total = files.reduce(function (s, i) { return s + (i.size || 0); }, 0);
          table.hidden = !items.length;
          empty.hidden = items.length > 0;
          summary.textContent = files.length ? files.length + " file" + (files.length === 1 ? "" : "s") + " · " + size(total) : "";
          loaded = true;
        }, function (err) {
          state.textContent = "could not list the artifacts: " + err.message;
        });
    }

    document.getElementById("artifacts-refresh").addEventListener("click", load);
    new MutationObserver(function () { if (!pane.hidden && !loaded) load(); })
      .observe(pane, { attributes: true, attributeFilter: ["hidden"] });
    if (!pane.hidden) load();
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
