// The run view's Metrics tab: one uPlot chart per user metric key, the run's logged params,
// and the chart options (log y, EMA smoothing, step or relative wall time on x, drag-to-zoom
// that re-reads the window). `system/` keys (resource samples) go to the System section,
// drawn by run_system.js over wall time; this file polls for both.
// Keys and param values are only ever set with textContent, never innerHTML.
(function () {
  "use strict";

  var POLL_MS = 3000;
  var MAX_POINTS = 100000;      // the API's limit on max_points
  var CHART_HEIGHT = 220;

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3).replace(/\.?0+e/, "e");
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(5)));
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "";
    var neg = s < 0;
    s = Math.abs(s);
    var out;
    if (s < 60) out = (s < 10 && !Number.isInteger(s) ? s.toFixed(1) : Math.round(s)) + "s";
    else if (s < 3600) out = Math.floor(s / 60) + "m" + pad(Math.round(s % 60)) + "s";
    else if (s < 86400) out = Math.floor(s / 3600) + "h" + pad(Math.floor((s % 3600) / 60)) + "m";
    else out = Math.floor(s / 86400) + "d" + pad(Math.floor((s % 86400) / 3600)) + "h";
    return (neg ? "-" : "") + out;
  }
  // Axis labels: uPlot passes null for the ticks it leaves unlabelled (minor log ticks).
  function tickLabels(format) {
    return function (u, splits) {
      return splits.map(function (v) { return v === null || v === undefined ? "" : format(v); });
    };
  }
  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // Exponential moving average with the start-up bias removed (as TensorBoard does), so the
  // first points are not pulled towards zero. Null values (log scale, v <= 0) stay null.
  function smooth(values, weight) {
    if (!weight) return values.slice();
    var out = new Array(values.length), last = 0, n = 0;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null) { out[i] = null; continue; }
      last = last * weight + (1 - weight) * v;
      n += 1;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function keyPath(key) {
    return key.split("/").map(encodeURIComponent).join("/");
  }

  function getJson(url) {
    return fetch(url, { headers: { accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function setup() {
    var root = document.getElementById("metrics");
    if (!root || !window.uPlot) return;
    var pane = document.getElementById("pane-metrics");
    var runId = root.dataset.run;
    var api = "/api/v1/runs/" + runId;
    var userGrid = document.getElementById("metrics-charts");
    var systemBox = document.getElementById("metrics-system");
    var empty = document.getElementById("metrics-empty");
    var paramsBox = document.getElementById("metrics-params-box");
    var paramsBody = document.querySelector("#metrics-params tbody");
    var logButton = document.getElementById("metrics-log");
    var smoothInput = document.getElementById("metrics-smoothing");
    var smoothOut = document.getElementById("metrics-smoothing-value");
    var xSelect = document.getElementById("metrics-x");
    var state = document.getElementById("metrics-state");
    var bar = root.querySelector(".metricbar");
    var live = document.getElementById("metrics-live");

    var opts = { log: false, smoothing: Number(smoothInput.value), x: xSelect.value };
    var active = root.dataset.active === "true";
    var charts = {};        // key -> chart state (user metrics)
    var system = window.TyRunSystem && window.TyTimeCharts ? new TyRunSystem(systemBox, runId, active) : null;
    var loadedOnce = false, busy = false, timer = null;

    function visible() { return !pane.hidden; }

    // --- one chart ---------------------------------------------------------------------
    function makeCard(key) {
      var card = document.createElement("article");
      card.className = "chart";
      card.dataset.key = key;
      var head = document.createElement("header");
      var title = document.createElement("h3");
      title.textContent = key;
      var stats = document.createElement("span");
      stats.className = "stats";
      head.append(title, stats);
      var plotBox = document.createElement("div");
      plotBox.className = "plot";
      var foot = document.createElement("footer");
      var readout = document.createElement("span");
      readout.className = "readout";
      var note = document.createElement("span");
      note.className = "note";
      foot.append(readout, note);
      card.append(head, plotBox, foot);
      var c = {
        key: key, card: card, stats: stats, plotBox: plotBox, readout: readout, note: note,
        summary: null, data: null, plot: null, zoom: null, seq: 0, seen: "",
      };
      // Double-click anywhere on the plot: back to the whole series.
      plotBox.addEventListener("dblclick", function () {
        if (!c.zoom) return;
        c.zoom = null;
        loadHistory(c);
      });
      return c;
    }

    function showStats(c) {
      var s = c.summary;
      var last = document.createElement("b");
      last.textContent = fmt(s.last_value);
      c.stats.textContent = "";
      c.stats.append("last ", last, " · min " + fmt(s.min_value) + " · max " + fmt(s.max_value));
      c.stats.title = s.count + " points, last at step " + s.last_step;
      c.card.dataset.count = String(s.count);
      c.card.dataset.last = String(s.last_value);
    }

    function xValues(c) {
      if (opts.x === "step") return c.data.steps;
      var t0 = c.summary.first_time;
      return c.data.times.map(function (t) { return t - t0; });
    }

    // The arrays uPlot draws: x, the raw values (faint) and the smoothed ones.
    function plotData(c) {
      var ys = opts.log ? c.data.values.map(function (v) { return v > 0 ? v : null; }) : c.data.values;
      var xs = xValues(c);
      if (opts.x === "time") {
        // Wall time need not grow with the step (a resumed run): uPlot wants x ascending.
        var order = xs.map(function (_, i) { return i; });
        var sorted = true;
        for (var i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) { sorted = false; break; }
        if (!sorted) {
          order.sort(function (a, b) { return xs[a] - xs[b]; });
          xs = order.map(function (i) { return xs[i]; });
          ys = order.map(function (i) { return ys[i]; });
        }
      }
      var sm = smooth(ys, opts.smoothing);
      var lastSmoothed = null;
      for (var j = sm.length - 1; j >= 0; j--) if (sm[j] !== null) { lastSmoothed = sm[j]; break; }
      c.card.dataset.smoothedLast = lastSmoothed === null ? "" : String(lastSmoothed);
      c.card.dataset.points = String(xs.length);
      return [xs, ys, sm];
    }

    function chartOptions(c, width) {
      var colour = cssVar("--accent"), muted = cssVar("--muted"), line = cssVar("--line");
      var axis = {
        stroke: muted,
        grid: { stroke: line, width: 1 },
        ticks: { stroke: line, width: 1, size: 4 },
        font: "11px system-ui, sans-serif",
      };
      return {
        width: width,
        height: CHART_HEIGHT,
        legend: { show: false },
        cursor: {
          drag: { x: true, y: false, setScale: false },
          points: { size: 6, fill: colour },
        },
        select: { show: true },
        scales: {
          x: { time: false },
          y: opts.log ? { distr: 3 } : { auto: true },
        },
        axes: [
          Object.assign({}, axis, {
            size: 34,
            values: tickLabels(opts.x === "time" ? fmtDuration : fmt),
          }),
          Object.assign({}, axis, {
            size: 56,
            values: tickLabels(fmt),
          }),
        ],
        series: [
          {},
          { label: "raw", stroke: colour, alpha: 0.25, width: 1, points: { show: false } },
          { label: "smoothed", stroke: colour, width: 1.6, points: { show: false } },
        ],
        hooks: {
          setSelect: [function (u) {
            if (u.select.width < 3) return;
            var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoomTo(c, lo, hi);
          }],
          setCursor: [function (u) {
            var i = u.cursor.idx;
            if (i === null || i === undefined || !u.data[0].length) { c.readout.textContent = ""; return; }
            var x = u.data[0][i];
            var where = opts.x === "time" ? fmtDuration(x) : "step " + fmt(x);
            var raw = u.data[1][i], sm = u.data[2][i];
            c.readout.textContent = where + ": " + fmt(raw) + (opts.smoothing ? " (smoothed " + fmt(sm) + ")" : "");
          }],
        },
      };
    }

    function plotWidth(c) {
      return Math.max(200, Math.floor(c.plotBox.clientWidth || c.card.clientWidth - 24));
    }

    function draw(c) {
      if (!c.data) return;
      var data = plotData(c);
      if (c.plot) c.plot.destroy();
      c.plotBox.textContent = "";
      c.plot = new uPlot(chartOptions(c, plotWidth(c)), data, c.plotBox);
      c.card.uplot = c.plot;  // for tests and the console
      c.card.dataset.log = String(opts.log);
      c.card.dataset.x = opts.x;
      c.card.dataset.smoothing = String(opts.smoothing);
      c.card.dataset.zoomed = String(!!c.zoom);
      var shown = c.data.total;
      c.note.textContent = (c.zoom ? "zoomed: steps " + fmt(c.zoom.min) + "–" + fmt(c.zoom.max) + " · " : "") +
        (c.data.downsampled ? c.data.steps.length + " of " + shown + " points (min/max per bucket)" : shown + " points");
    }

    // The steps of the points between lo and hi on the x axis (step or relative time).
    function zoomTo(c, lo, hi) {
      var min, max;
      if (opts.x === "step") {
        min = Math.floor(lo);
        max = Math.ceil(hi);
      } else {
        var t0 = c.summary.first_time, steps = [];
        for (var i = 0; i < c.data.times.length; i++) {
          var x = c.data.times[i] - t0;
          if (x >= lo && x <= hi) steps.push(c.data.steps[i]);
        }
        if (!steps.length) return;
        min = Math.min.apply(null, steps);
        max = Math.max.apply(null, steps);
      }
      if (max <= min) max = min + 1;
      c.zoom = { min: min, max: max };
      loadHistory(c);
    }

    function loadHistory(c) {
      var seq = ++c.seq;
      var want = Math.min(MAX_POINTS, Math.max(3, Math.round(2 * plotWidth(c))));
      var q = new URLSearchParams({ max_points: String(want) });
      if (c.zoom) {
        q.append("min_step", String(c.zoom.min));
        q.append("max_step", String(c.zoom.max));
      }
      c.card.setAttribute("aria-busy", "true");
      return getJson(api + "/metrics/" + keyPath(c.key) + "?" + q).then(function (h) {
        if (seq !== c.seq) return;
        c.data = {
          steps: h.points.map(function (p) { return p[0]; }),
          times: h.points.map(function (p) { return p[1]; }),
          values: h.points.map(function (p) { return p[2]; }),
          total: h.total,
          downsampled: h.downsampled,
        };
        draw(c);
        c.card.removeAttribute("aria-busy");
      }, function (err) {
        if (seq !== c.seq) return;
        c.note.textContent = "could not load: " + err.message;
        c.card.removeAttribute("aria-busy");
      });
    }

    // --- the whole tab -----------------------------------------------------------------
    function place(c) {
      // Keep the cards in key order.
      var after = null;
      Array.prototype.some.call(userGrid.children, function (el) {
        if (el.dataset.key > c.key) { after = el; return true; }
        return false;
      });
      userGrid.insertBefore(c.card, after);
    }

    function showParams(params) {
      var keys = Object.keys(params).sort();
      paramsBox.hidden = !keys.length;
      paramsBody.textContent = "";
      keys.forEach(function (k) {
        var tr = document.createElement("tr");
        var th = document.createElement("th");
        th.scope = "row";
        th.textContent = k;
        var td = document.createElement("td");
        var code = document.createElement("code");
        code.textContent = params[k];
        td.appendChild(code);
        tr.append(th, td);
        paramsBody.appendChild(tr);
      });
    }

    function refresh() {
      if (busy) return Promise.resolve();
      busy = true;
      var reads = [getJson(api + "/metrics"), getJson(api + "/params")];
      if (active && loadedOnce) reads.push(getJson(api));
      return Promise.all(reads).then(function (res) {
        var items = res[0].items;
        var user = items.filter(function (s) { return s.key.indexOf("system/") !== 0; });
        empty.hidden = user.length > 0;
        // Resource charts below: the hint keeps its words and drops its example.
        empty.classList.toggle("compact", user.length < items.length);
        bar.hidden = !user.length;
        if (res[2] && ["complete", "error", "stopped"].indexOf(res[2].status) >= 0) {
          active = false;
          root.dataset.active = "false";
        }
        if (system) system.update(items, res[2] || null, active);
        user.forEach(function (s) {
          var c = charts[s.key];
          if (!c) {
            c = charts[s.key] = makeCard(s.key);
            place(c);
          }
          c.summary = s;
          showStats(c);
          var seen = s.count + ":" + s.last_step + ":" + s.last_value;
          // New points: re-read the series unless the user is looking at a zoomed window.
          if (seen !== c.seen && !c.zoom) loadHistory(c);
          c.seen = seen;
        });
        showParams(res[1].params || {});
        loadedOnce = true;
        live.textContent = active ? "live · updated every 3 s" : "";
        state.textContent = "";
      }, function (err) {
        state.textContent = "could not read metrics: " + err.message;
      }).then(function () { busy = false; });
    }

    function redrawAll() {
      Object.keys(charts).forEach(function (k) { draw(charts[k]); });
      if (system) system.redraw();
    }

    function poll() {
      if (timer) return;
      timer = setInterval(function () {
        if (!active) { clearInterval(timer); timer = null; return; }
        if (visible()) refresh();
      }, POLL_MS);
    }

    function onShow() {
      if (!visible()) return;
      if (!loadedOnce) refresh();
      else { redrawAll(); if (active) refresh(); }
      if (active) poll();
    }

    // --- options -----------------------------------------------------------------------
    logButton.addEventListener("click", function () {
      opts.log = !opts.log;
      logButton.setAttribute("aria-pressed", String(opts.log));
      root.dataset.log = String(opts.log);
      redrawAll();
    });
    smoothInput.addEventListener("input", function () {
      opts.smoothing = Number(smoothInput.value);
      smoothOut.textContent = opts.smoothing.toFixed(2);
      Object.keys(charts).forEach(function (k) {
        var c = charts[k];
        if (!c.plot || !c.data) return;
        c.plot.setData(plotData(c), false);  // same scales, new smoothed line
        c.card.dataset.smoothing = String(opts.smoothing);
      });
    });
    xSelect.addEventListener("change", function () {
      opts.x = xSelect.value;
      redrawAll();
    });

    // The tab is hidden at first: draw once it is shown (uPlot needs a width).
    new MutationObserver(onShow).observe(pane, { attributes: true, attributeFilter: ["hidden"] });
    // Charts take their colours from the theme: redraw when it changes.
    new MutationObserver(function () { if (visible()) redrawAll(); })
      .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
      if (visible()) redrawAll();
    });
    var lastWidth = 0;
    new ResizeObserver(function () {
      var w = userGrid.clientWidth;
      if (!visible() || !w || w === lastWidth) return;
      lastWidth = w;
      Object.keys(charts).forEach(function (k) {
        var c = charts[k];
        if (c.plot) c.plot.setSize({ width: plotWidth(c), height: CHART_HEIGHT });
      });
    }).observe(root);
    onShow();
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
