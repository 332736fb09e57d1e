// trainyard's page behaviour: theme toggle, project picker, run-view tabs, the log viewer and
// its search, run actions (archive, restore, delete), the project summary editor; the
// Operator page reuses the tabs.
// Log text and user text are only ever set with textContent, never innerHTML.
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
    function fromHash() {
      var wanted = document.getElementById("tab-" + window.location.hash.slice(1));
      if (wanted && tabs.indexOf(wanted) >= 0) select(wanted, false);
    }
    fromHash();
    // A link to another tab of the same page (e.g. /operator#queue) changes only the hash.
    window.addEventListener("hashchange", fromHash);
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
    var WINDOW = 1000;       // lines shown first, and read per page back
    var MAX_LINES = 20000;   // lines kept in the page; beyond it, lines far away are dropped
    var following = true, source = null, shown = 0, generation = 0;
    var beforeCursor = null, atStart = true, paging = false, dropped = false,
      trimmedTop = false, lastTop = 0;
    var search = document.getElementById("log-search");
    var matchState = document.getElementById("log-matches");
    var term = "", current = -1;

    // Marks every occurrence of the search term in one line's text span, case-insensitively,
    // by splitting its text into text nodes and <mark> elements (never parsing it as HTML).
    function mark(x) {
      var text = x.textContent;
      if (x.childElementCount) x.textContent = text;
      if (!term) return 0;
      var lower = text.toLowerCase(), at = 0, found = 0, hit;
      if (lower.indexOf(term) < 0) return 0;
      x.textContent = "";
      while ((hit = lower.indexOf(term, at)) >= 0) {
        if (hit > at) x.appendChild(document.createTextNode(text.slice(at, hit)));
        var m = document.createElement("mark");
        m.textContent = text.slice(hit, hit + term.length);
        x.appendChild(m);
        at = hit + term.length;
        found += 1;
      }
      if (at < text.length) x.appendChild(document.createTextNode(text.slice(at)));
      return found;
    }
    function countMatches() {
      var n = box.querySelectorAll("mark").length;
      matchState.textContent = term ? n + " match" + (n === 1 ? "" : "es") + " in loaded lines" : "";
    }
    function highlightAll() {
      term = search.value.toLowerCase();
      current = -1;
      box.querySelectorAll(".line .x").forEach(mark);
      countMatches();
    }
    function nextMatch(step) {
      var marks = box.querySelectorAll("mark");
      if (!marks.length) return;
      if (current >= 0 && marks[current]) marks[current].classList.remove("current");
      current = (current + step + marks.length) % marks.length;
      marks[current].classList.add("current");
      if (following) followButton.click();  // looking at a match: stop jumping to the end
      marks[current].scrollIntoView({ block: "center" });
    }
    search.addEventListener("input", highlightAll);
    search.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); nextMatch(e.shiftKey ? -1 : 1); }
    });

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
      if (term && mark(x)) countMatches();
      return row;
    }
    function scrollDown() { if (following) box.scrollTop = box.scrollHeight; }
    function append(line) {
      box.appendChild(lineNode(line));
      shown += 1;
      if (following && box.childElementCount > MAX_LINES) {
        box.removeChild(box.firstElementChild);
        // The first line shown is no longer the one the before-cursor points at.
        trimmedTop = true;
        showOlderState();
      }
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
    function showOlderState() {
      olderButton.disabled = paging || (atStart && !trimmedTop);
      olderButton.textContent = trimmedTop ? "Reload to page back" : "Load earlier lines";
      olderButton.title = atStart && !trimmedTop ? "the start of the log is shown" : "";
    }
    function load(count) {
      var gen = ++generation;
      if (source) source.close();
      paging = false;
      download.href = "/runs/" + runId + "/logs.txt" + (replicaSelect.value ? "?" + query() : "");
      return fetch("/api/v1/runs/" + runId + "/logs?" + query({ tail: String(count) }))
        .then(function (r) { return r.json(); })
        .then(function (page) {
          if (gen !== generation) return;
          box.textContent = "";
          shown = 0;
          dropped = false;
          trimmedTop = false;
          page.lines.forEach(append);
          countMatches();
          beforeCursor = page.before_cursor;
          atStart = page.start || page.lines.length < count;
          showOlderState();
          stream(page.cursor, gen);
        });
    }
    // Reads the WINDOW lines before the first one shown (the API reads each log backwards
    // from there, never whole) and puts them on top without moving what is in view.
    function loadOlder() {
      if (paging || atStart || trimmedTop || beforeCursor === null) return Promise.resolve();
      var gen = generation;
      paging = true;
      showOlderState();
      var url = "/api/v1/runs/" + runId + "/logs?" + query({ before: beforeCursor, limit: String(WINDOW) });
      return fetch(url)
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (page) {
          paging = false;
          if (gen !== generation) return;
          var height = box.scrollHeight, top = box.scrollTop;
          var nodes = document.createDocumentFragment();
          page.lines.forEach(function (line) { nodes.appendChild(lineNode(line)); });
          box.insertBefore(nodes, box.firstChild);
          shown += page.lines.length;
          beforeCursor = page.before_cursor;
          atStart = page.start || page.lines.length === 0;
          // Too many lines in the page: drop the newest ones, far below what is in view.
          if (box.childElementCount > MAX_LINES) {
            while (box.childElementCount > MAX_LINES) box.removeChild(box.lastElementChild);
            if (!dropped) {
              dropped = true;
              state.textContent = "newest lines hidden to keep the page fast · reload the tab to see them";
              if (source) source.close();
            }
          }
          box.scrollTop = top + (box.scrollHeight - height);  // keep the same lines in view
          lastTop = box.scrollTop;
          countMatches();
          showOlderState();
        }, function () { paging = false; showOlderState(); });
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
      var down = box.scrollTop > lastTop;
      lastTop = box.scrollTop;
      // Only a scroll down resumes: keeping the view still after prepending must not.
      if (following ? !atBottom : atBottom && down && !dropped) followButton.click();
      // Near the top: fetch the lines before the first one shown.
      if (box.scrollTop < box.clientHeight && box.scrollHeight > box.clientHeight) loadOlder();
    });
    olderButton.addEventListener("click", function () {
      if (trimmedTop) { load(WINDOW); return; }  // lines were dropped at the top while following
      if (following) followButton.click();
      loadOlder();
    });
    replicaSelect.addEventListener("change", function () { load(WINDOW); });
    load(WINDOW);
  }

  // POST/PUT/DELETE to the JSON API; resolves with the body, rejects with its error message.
  function callApi(method, url, body) {
    var init = { method: method, headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) return data;
        throw new Error((data.error && data.error.message) || "request failed: HTTP " + r.status);
      });
    });
  }
  // Shared with the page scripts that change things (leaderboard.js).
  window.trainyard = { callApi: callApi };

  function showError(message) {
    var state = document.getElementById("action-error");
    if (!state) {
      state = document.createElement("p");
      state.id = "action-error";
      state.className = "error small";
      state.setAttribute("role", "alert");
      document.querySelector("main").prepend(state);
    }
    state.textContent = message;
  }

  function setupRunActions() {
    // Archive / Restore buttons (run view and archived dashboard rows); delegated, because
    // htmx swaps these buttons in when a run finishes.
    document.addEventListener("click", function (e) {
      var button = e.target.closest("[data-run-action]");
      if (!button) return;
      button.disabled = true;
      var url = "/api/v1/runs/" + button.dataset.run + "/" + button.dataset.runAction;
      callApi("POST", url).then(function () { window.location.reload(); }, function (err) {
        button.disabled = false;
        showError(err.message);
      });
    });
    var dialog = document.getElementById("delete-dialog");
    if (!dialog) return;
    var confirm = document.getElementById("delete-confirm");
    var error = document.getElementById("delete-error");
    document.addEventListener("click", function (e) {
      if (!e.target.closest("[data-delete-run]")) return;
      error.textContent = "";
      dialog.showModal();
    });
    confirm.addEventListener("click", function () {
      confirm.disabled = true;
      callApi("DELETE", "/api/v1/runs/" + confirm.dataset.run).then(function () {
        window.location.href = "/projects/" + encodeURIComponent(confirm.dataset.project) + "/runs";
      }, function (err) {
        confirm.disabled = false;
        error.textContent = err.message;
      });
    });
  }

  function setupSummary() {
    var form = document.getElementById("summary-form");
    if (!form) return;
    var edit = document.getElementById("summary-edit");
    var shown = document.getElementById("summary");
    var text = document.getElementById("summary-text");
    var error = document.getElementById("summary-error");
    function editing(on) {
      form.hidden = !on;
      shown.hidden = on;
      edit.hidden = on;
      if (on) text.focus();
    }
    edit.addEventListener("click", function () { editing(true); });
    document.getElementById("summary-cancel").addEventListener("click", function () { editing(false); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      error.textContent = "";
      var url = "/api/v1/projects/" + encodeURIComponent(form.dataset.project) + "/summary";
      // Saved, then the page reloads: the server renders the markdown with raw HTML off.
      callApi("PUT", url, { summary: text.value }).then(function () { window.location.reload(); },
        function (err) { error.textContent = err.message; });
    });
  }

  function setupAutosubmit() {
    document.querySelectorAll("input[data-autosubmit]").forEach(function (input) {
      input.addEventListener("change", function () { input.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupTheme();
    setupPicker();
    setupTabs();
    setupLogs();
    setupRunActions();
    setupSummary();
    setupAutosubmit();
  });
})();
