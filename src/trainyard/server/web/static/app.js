// trainyard's page behaviour: theme toggle, project picker, run-view tabs, the log viewer.
// Log text is only ever set with textContent, never innerHTML.
(function () {
  "use strict";

  function setupTheme() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var root = document.documentElement;
      var dark = root.dataset.theme
        ? root.dataset.theme === "dark"
        : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("trainyard-theme", root.dataset.theme);
    });
  }

  function setupPicker() {
    document.querySelectorAll("select[data-nav]").forEach(function (select) {
      select.addEventListener("change", function () { window.location.href = select.value; });
    });
  }

  function setupTabs() {
    var tabs = Array.prototype.slice.call(document.querySelectorAll('[role="tab"]'));
    function select(tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
      });
      if (focus) tab.focus();
      history.replaceState(null, "", "#" + tab.id.replace("tab-", ""));
    }
    tabs.forEach(function (tab, i) {
      tab.addEventListener("click", function () { select(tab, false); });
      tab.addEventListener("keydown", function (e) {
        var step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (step) { e.preventDefault(); select(tabs[(i + step + tabs.length) % tabs.length], true); }
      });
    });
    var wanted = document.getElementById("tab-" + window.location.hash.slice(1));
    if (wanted && tabs.indexOf(wanted) >= 0) select(wanted, false);
  }

  function setupLogs() {
    var viewer = document.getElementById("log-viewer");
    if (!viewer) return;
    var runId = viewer.dataset.run;
    var box = document.getElementById("log-lines");
    var replicaSelect = document.getElementById("log-replica");
    var followButton = document.getElementById("log-follow");
    var olderButton = document.getElementById("log-older");
    var download = document.getElementById("log-download");
    var state = document.getElementById("log-state");
    var WINDOW = 1000;       // lines shown first
    var MAX_LINES = 20000;   // lines kept in the page; older ones are dropped when following
    var MAX_TAIL = 100000;   // the API's limit on tail
    var following = true, source = null, shown = 0, generation = 0;

    function query(extra) {
      var p = new URLSearchParams(extra || {});
      if (replicaSelect.value) p.append("replica", replicaSelect.value);
      return p.toString();
    }
    function lineNode(line) {
      var row = document.createElement("div");
      row.className = "line";
      var t = document.createElement("span");
      t.className = "t";
      t.textContent = line.time ? line.time.replace("T", " ").replace("Z", "").slice(0, 23) : "";
      var r = document.createElement("span");
      r.className = "r";
      r.textContent = line.replica;
      var x = document.createElement("span");
      x.className = "x";
      x.textContent = line.text;
      row.append(t, r, x);
      return row;
    }
    function scrollDown() { if (following) box.scrollTop = box.scrollHeight; }
    function append(line) {
      box.appendChild(lineNode(line));
      shown += 1;
      if (following && box.childElementCount > MAX_LINES) { box.removeChild(box.firstElementChild); }
      scrollDown();
    }
    function stream(cursor, gen) {
      if (source) source.close();
      source = new EventSource("/api/v1/runs/" + runId + "/logs/stream?" + query(cursor ? { cursor: cursor } : {}));
      source.addEventListener("log", function (e) { if (gen === generation) append(JSON.parse(e.data)); });
      source.addEventListener("status", function (e) {
        var s = JSON.parse(e.data);
        state.textContent = s.status === "running" ? "live" : s.status;
        // The header badge and the Replicas tab follow the status the stream reports.
        if (window.htmx && document.querySelector("#run-panel[hx-get]")) htmx.trigger("#run-panel", "refresh");
      });
      source.addEventListener("end", function () {
        state.textContent = "run finished · all lines shown";
        source.close();
      });
    }
    function load(count) {
      var gen = ++generation;
      if (source) source.close();
      download.href = "/runs/" + runId + "/logs.txt" + (replicaSelect.value ? "?" + query() : "");
      return fetch("/api/v1/runs/" + runId + "/logs?" + query({ tail: String(count) }))
        .then(function (r) { return r.json(); })
        .then(function (page) {
          if (gen !== generation) return;
          box.textContent = "";
          shown = 0;
          page.lines.forEach(append);
          olderButton.disabled = page.lines.length < count || count >= MAX_TAIL;
          stream(page.cursor, gen);
        });
    }
    followButton.addEventListener("click", function () {
      following = !following;
      followButton.setAttribute("aria-pressed", following ? "true" : "false");
      followButton.textContent = following ? "Following" : "Paused";
      scrollDown();
    });
    box.addEventListener("scroll", function () {
      // Scrolling up pauses following; reaching the bottom again resumes it.
      var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 4;
      if (following !== atBottom) followButton.click();
    });
    olderButton.addEventListener("click", function () {
      // The API reads tails from the end of each file, never the whole file.
      if (following) followButton.click();
      var before = box.scrollHeight;
      load(Math.min(MAX_TAIL, Math.max(WINDOW, shown) * 2)).then(function () {
        box.scrollTop = box.scrollHeight - before;  // keep the same lines in view
      });
    });
    replicaSelect.addEventListener("change", function () { load(WINDOW); });
    load(WINDOW);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupTheme();
    setupPicker();
    setupTabs();
    setupLogs();
  });
})();
