// Comparing runs. On the dashboard: the check box of each row picks runs to compare (kept in
// sessionStorage per project, so the pick survives the table's 2 s refresh and paging) and
// the Columns menu. On the compare page: one overlay chart per metric (uPlot; each run's
// history read from /api/v1/runs/{id}/metrics/{key}), the "show only differences" toggle of
// the params table, and the parallel coordinates (hand-written SVG).
// Keys, params and run names are only ever set with textContent, never innerHTML.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var CHART_HEIGHT = 240;

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3).replace(/\.?0+e/, "e");
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(5)));
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function keyPath(key) {
    return key.split("/").map(encodeURIComponent).join("/");
  }

  // --- dashboard: pick runs, columns menu ----------------------------------------------
  function setupSelection() {
    var form = document.getElementById("compare-form");
    if (!form) return;
    var button = document.getElementById("compare-button");
    var count = document.getElementById("compare-count");
    var clear = document.getElementById("compare-clear");
    var min = Number(form.dataset.min), max = Number(form.dataset.max);
    var storeKey = "trainyard-compare:" + form.dataset.project;
    var picked = [];
    try {
      var saved = JSON.parse(sessionStorage.getItem(storeKey) || "[]");
      if (Array.isArray(saved)) picked = saved.map(String);
    } catch (e) { picked = []; }

    function save() { sessionStorage.setItem(storeKey, JSON.stringify(picked)); }
    function sync() {
      document.querySelectorAll("input.pick").forEach(function (box) {
        box.checked = picked.indexOf(box.value) >= 0;
        var row = box.closest("tr");
        if (row) row.classList.toggle("picked", box.checked);
      });
      count.textContent = "(" + picked.length + ")";
      var ok = picked.length >= min && picked.length <= max;
      button.setAttribute("aria-disabled", ok ? "false" : "true");
      button.classList.toggle("inert", !ok);
      button.title = picked.length > max
        ? "At most " + max + " runs at a time: untick " + (picked.length - max)
        : picked.length < min
          ? "Tick " + min + " to " + max + " runs in the table to compare them"
          : "Compare the " + picked.length + " runs ticked";
      clear.hidden = picked.length === 0;
      form.dataset.picked = picked.join(",");
    }
    document.addEventListener("change", function (e) {
      var box = e.target;
      if (!box.matches || !box.matches("input.pick")) return;
      var at = picked.indexOf(box.value);
      if (box.checked && at < 0) picked.push(box.value);
      if (!box.checked && at >= 0) picked.splice(at, 1);
      save();
      sync();
    });
    // htmx replaces the table every 2 s: tick the picked rows again.
    document.body.addEventListener("htmx:afterSwap", sync);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (picked.length < min || picked.length > max) {
        button.focus();
        return;
      }
      var q = picked.map(function (id) { return "runs=" + encodeURIComponent(id); }).join("&");
      window.location.href = form.action + "?" + q;
    });
    clear.addEventListener("click", function () {
      picked = [];
      save();
      sync();
    });
    sync();
  }

  function setupColumns() {
    var picker = document.getElementById("col-picker");
    if (!picker) return;
    var marker = picker.querySelector("[data-cols-marker]");
    document.getElementById("run-filters").addEventListener("submit", function () {
      // The empty marker is only needed when no column is ticked ("no columns").
      marker.disabled = !!picker.querySelector('input[type="checkbox"][name="cols"]:checked');
    });
    document.addEventListener("click", function (e) {
      if (picker.open && !picker.contains(e.target)) picker.open = false;
    });
    picker.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { picker.open = false; picker.querySelector("summary").focus(); }
    });
  }

  // --- compare page: overlay charts ------------------------------------------------------
  // Aligns the runs' points on the union of their steps (null where a run has none there).
  function align(tables) {
    var steps = {};
    tables.forEach(function (t) { t.steps.forEach(function (s) { steps[s] = true; }); });
    var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var at = {};
    xs.forEach(function (x, i) { at[x] = i; });
    var out = [xs];
    tables.forEach(function (t) {
      var ys = new Array(xs.length).fill(null);
      for (var i = 0; i < t.steps.length; i++) ys[at[t.steps[i]]] = t.values[i];
      out.push(ys);
    });
    return out;
  }

  // The value of series ``s`` nearest to index ``i`` (runs log at different steps).
  function nearest(u, s, i) {
    var ys = u.data[s], xs = u.data[0];
    for (var d = 0; d < xs.length; d++) {
      var lo = i - d, hi = i + d;
      if (lo >= 0 && ys[lo] !== null && ys[lo] !== undefined) return [xs[lo], ys[lo]];
      if (hi < xs.length && ys[hi] !== null && ys[hi] !== undefined) return [xs[hi], ys[hi]];
      if (lo < 0 && hi >= xs.length) break;
    }
    return null;
  }

  function chartCard(key) {
    var card = document.createElement("article");
    card.className = "chart";
    card.dataset.key = key;
    var head = document.createElement("header");
    var title = document.createElement("h3");
    title.textContent = key;
    var note = document.createElement("span");
    note.className = "stats";
    head.append(title, note);
    var plot = document.createElement("div");
    plot.className = "plot";
    var foot = document.createElement("footer");
    var readout = document.createElement("span");
    readout.className = "readout";
    foot.append(readout);
    card.append(head, plot, foot);
    card.setAttribute("aria-busy", "true");
    return { key: key, card: card, plot: plot, note: note, readout: readout, u: null, data: null, runs: [], counts: [] };
  }

  function chartOptions(c, width) {
    var muted = cssVar("--muted"), line = cssVar("--line");
    var axis = {
      stroke: muted,
      grid: { stroke: line, width: 1 },
      ticks: { stroke: line, width: 1, size: 4 },
      font: "11px system-ui, sans-serif",
      values: function (u, splits) { return splits.map(function (v) { return v === null ? "" : fmt(v); }); },
    };
    var series = [{ label: "step" }];
    c.runs.forEach(function (r, k) {
      // A run with few points gets dots: a single point draws no line.
      var few = (c.counts[k] || 0) < 60;
      series.push({
        label: r.label, stroke: r.colour, width: 1.6, spanGaps: true,
        points: { show: few, size: 6, fill: r.colour, stroke: r.colour },
      });
    });
    return {
      width: width,
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      scales: { x: { time: false } },
      axes: [Object.assign({}, axis, { size: 34 }), Object.assign({}, axis, { size: 56 })],
      series: series,
      hooks: {
        setCursor: [function (u) {
          var i = u.cursor.idx;
          c.readout.textContent = "";
          if (i === null || i === undefined) return;
          c.runs.forEach(function (r, k) {
            var hit = nearest(u, k + 1, i);
            var item = document.createElement("span");
            item.className = "readitem";
            var dot = document.createElement("span");
            dot.className = "swatch";
            dot.style.background = r.colour;
            item.append(dot, r.label + " " + (hit ? fmt(hit[1]) + " @" + fmt(hit[0]) : "–"));
            c.readout.appendChild(item);
          });
        }],
      },
    };
  }

  function drawChart(c) {
    if (!c.data) return;
    if (c.u) c.u.destroy();
    c.plot.textContent = "";
    var width = Math.max(240, Math.floor(c.plot.clientWidth || c.card.clientWidth - 24));
    c.u = new uPlot(chartOptions(c, width), c.data, c.plot);
    c.card.uplot = c.u;  // for tests and the console
    c.card.dataset.series = String(c.runs.length);
  }

  function loadChart(c, runs) {
    c.runs = runs.filter(function (r) { return r.metrics[c.key]; });
    var want = Math.max(3, Math.min(2000, Math.round(1.5 * (c.plot.clientWidth || 600))));
    var reads = c.runs.map(function (r) {
      var url = "/api/v1/runs/" + r.id + "/metrics/" + keyPath(c.key) + "?max_points=" + want;
      return fetch(url, { headers: { accept: "application/json" } }).then(function (res) {
        if (!res.ok) throw new Error("run " + r.id + ": HTTP " + res.status);
        return res.json();
      });
    });
    return Promise.all(reads).then(function (histories) {
      var total = 0;
      c.counts = histories.map(function (h) { return h.points.length; });
      c.data = align(histories.map(function (h) {
        total += h.total;
        return {
          steps: h.points.map(function (p) { return p[0]; }),
          values: h.points.map(function (p) { return p[2]; }),
        };
      }));
      c.note.textContent = c.runs.length + " runs · " + total + " points";
      drawChart(c);
      c.card.removeAttribute("aria-busy");
      c.card.dataset.loaded = "true";
    }, function (err) {
      c.note.textContent = "could not load: " + err.message;
      c.card.removeAttribute("aria-busy");
    });
  }

  function setupCharts(data) {
    var grid = document.getElementById("compare-charts");
    if (!grid || !window.uPlot) return;
    var charts = data.chart_keys.map(function (key) {
      var c = chartCard(key);
      grid.appendChild(c.card);
      return c;
    });
    // Read a chart's histories when it comes into view: 10 runs × many keys stay cheap.
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        seen.unobserve(entry.target);
        var c = charts.find(function (x) { return x.card === entry.target; });
        if (c) loadChart(c, data.runs);
      });
    }, { rootMargin: "200px" });
    charts.forEach(function (c) { seen.observe(c.card); });
    function redraw() { charts.forEach(drawChart); }
    new MutationObserver(redraw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
    var lastWidth = grid.clientWidth;
    new ResizeObserver(function () {
      if (grid.clientWidth === lastWidth) return;
      lastWidth = grid.clientWidth;
      charts.forEach(function (c) {
        if (c.u) c.u.setSize({ width: Math.max(240, Math.floor(c.plot.clientWidth)), height: CHART_HEIGHT });
      });
    }).observe(grid);
  }

  // --- compare page: params toggle ---------------------------------------------------------
  function setupDiffToggle() {
    var toggle = document.getElementById("compare-only-diff");
    var table = document.getElementById("compare-params");
    if (!toggle || !table) return;
    toggle.addEventListener("change", function () { table.classList.toggle("onlydiff", toggle.checked); });
  }

  // --- compare page: parallel coordinates ------------------------------------------------
  var MAX_AXES = 15;
  var LOW = [69, 117, 180], MID = [160, 95, 176], HIGH = [232, 89, 12];  // blue, purple, orange

  function mix(a, b, t) {
    return a.map(function (v, i) { return Math.round(v + (b[i] - v) * t); });
  }
  function scaleColour(t) {
    var c = t < 0.5 ? mix(LOW, MID, t * 2) : mix(MID, HIGH, (t - 0.5) * 2);
    return "rgb(" + c.join(",") + ")";
  }

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function asNumber(text) {
    if (text === null || text === undefined || String(text).trim() === "") return null;
    var n = Number(text);
    return isFinite(n) ? n : null;
  }

  // An axis: where each run's value sits (y, or null when the run has none) and its ticks.
  function makeAxis(label, values, top, bottom) {
    var present = values.filter(function (v) { return v !== null && v !== undefined; });
    var numeric = present.length > 0 && present.every(function (v) { return asNumber(v) !== null; });
    var axis = { label: label, ticks: [], ys: [], missing: present.length < values.length };
    if (numeric) {
      var nums = present.map(asNumber);
      var lo = Math.min.apply(null, nums), hi = Math.max.apply(null, nums);
      var span = hi - lo;
      var y = function (v) { return span ? bottom - ((v - lo) / span) * (bottom - top) : (top + bottom) / 2; };
      axis.ys = values.map(function (v) { return v === null || v === undefined ? null : y(asNumber(v)); });
      var ticks = span ? [lo, lo + span / 2, hi] : [lo];
      axis.ticks = ticks.map(function (v) { return { y: y(v), text: fmt(v) }; });
      axis.kind = "numeric";
    } else {
      var cats = Array.from(new Set(present.map(String))).sort();
      var step = cats.length > 1 ? (bottom - top) / (cats.length - 1) : 0;
      var pos = function (v) { return cats.length > 1 ? bottom - cats.indexOf(String(v)) * step : (top + bottom) / 2; };
      axis.ys = values.map(function (v) { return v === null || v === undefined ? null : pos(v); });
      var every = Math.ceil(cats.length / 10);
      axis.ticks = cats.filter(function (_, i) { return i % every === 0 || i === cats.length - 1; })
        .map(function (v) { return { y: pos(v), text: v.length > 14 ? v.slice(0, 13) + "…" : v, full: v }; });
      axis.kind = "categorical";
    }
    return axis;
  }

  function drawParallel(box, data, metric) {
    box.textContent = "";
    var runs = data.runs;
    var params = data.axes.slice(0, MAX_AXES);
    var width = Math.max(480, box.clientWidth), height = 380 + Math.max(0, runs.length - 6) * 8;
    var top = 44, bottom = height - 46, left = 56, right = 150;
    var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    svg.setAttribute("aria-label", "Parallel coordinates: " + params.length + " params and " + metric + " for " + runs.length + " runs");
    box.appendChild(svg);
    var labels = params.map(function (p) { return p.source === "task" ? p.key + " (task)" : p.key; });
    var columns = params.map(function (p) { return p.values; });
    var metricValues = runs.map(function (r) { return r.metrics[metric] ? r.metrics[metric].last : null; });
    labels.push(metric);
    columns.push(metricValues);
    var gap = (width - left - right) / Math.max(1, columns.length - 1);
    var axes = columns.map(function (values, i) {
      var a = makeAxis(labels[i], values, top, bottom);
      a.x = columns.length === 1 ? (left + width - right) / 2 : left + i * gap;
      return a;
    });
    var metricAxis = axes[axes.length - 1];
    metricAxis.isMetric = true;
    var present = metricValues.filter(function (v) { return v !== null; });
    var lo = Math.min.apply(null, present), hi = Math.max.apply(null, present);
    var missingY = bottom + 22;

    var lines = el("g", { class: "pclines" }, svg);
    var tags = [];
    runs.forEach(function (r, k) {
      var points = axes.map(function (a) { return [a.x, a.ys[k] === null ? missingY : a.ys[k]]; });
      var v = metricValues[k];
      var colour = v === null ? "" : scaleColour(hi > lo ? (v - lo) / (hi - lo) : 0.5);
      var path = el("path", {
        d: "M" + points.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join("L"),
        class: "pcline" + (v === null ? " nometric" : ""),
        "data-run": String(r.id),
      }, lines);
      if (colour) path.style.stroke = colour;
      var title = el("title", {}, path);
      title.textContent = r.ref + " · " + metric + " " + (v === null ? "not logged" : fmt(v));
      var end = points[points.length - 1];
      tags.push({ x: end[0] + 8, y: end[1] + 4, run: r });
    });
    // Run names beside the metric axis, pushed apart so that none overlaps another.
    tags.sort(function (a, b) { return a.y - b.y; });
    for (var t = 1; t < tags.length; t++) tags[t].y = Math.max(tags[t].y, tags[t - 1].y + 13);
    tags.forEach(function (tag) {
      var text = el("text", { x: tag.x, y: tag.y, class: "pcrun" }, svg);
      text.textContent = tag.run.label;
      text.style.fill = tag.run.colour;
    });

    axes.forEach(function (a) {
      var g = el("g", { class: "pcaxis" + (a.isMetric ? " metric" : "") }, svg);
      el("line", { x1: a.x, x2: a.x, y1: top, y2: bottom }, g);
      var name = el("text", { x: a.x, y: top - 18, class: "pcname", "text-anchor": "middle" }, g);
      name.textContent = a.label.length > 18 ? a.label.slice(0, 17) + "…" : a.label;
      el("title", {}, name).textContent = a.label + (a.kind === "categorical" ? " (categories)" : "");
      a.ticks.forEach(function (t) {
        el("line", { x1: a.x - 4, x2: a.x, y1: t.y, y2: t.y }, g);
        var text = el("text", { x: a.x - 7, y: t.y + 4, class: "pctick", "text-anchor": "end" }, g);
        text.textContent = t.text;
        if (t.full) el("title", {}, text).textContent = t.full;
      });
      if (a.missing) {
        var none = el("text", { x: a.x - 7, y: missingY + 4, class: "pctick", "text-anchor": "end" }, g);
        none.textContent = "—";
        el("title", {}, none).textContent = "not logged";
      }
    });

    // The colour scale of the metric axis, lowest at the bottom.
    var defs = el("defs", {}, svg);
    var grad = el("linearGradient", { id: "pc-scale", x1: 0, x2: 0, y1: 1, y2: 0 }, defs);
    [[0, scaleColour(0)], [0.5, scaleColour(0.5)], [1, scaleColour(1)]].forEach(function (s) {
      el("stop", { offset: s[0], "stop-color": s[1] }, grad);
    });
    var barX = width - 24;
    el("rect", { x: barX, y: top, width: 8, height: bottom - top, rx: 3, fill: "url(#pc-scale)" }, svg);
    var high = el("text", { x: barX + 4, y: top - 6, class: "pctick", "text-anchor": "middle" }, svg);
    high.textContent = "high";
    var low = el("text", { x: barX + 4, y: bottom + 14, class: "pctick", "text-anchor": "middle" }, svg);
    low.textContent = "low";
    if (data.goal && metric === data.leaderboard_metric) {
      var better = el("text", { x: barX + 10, y: top - 22, class: "pcname", "text-anchor": "end" }, svg);
      better.textContent = data.goal === "max" ? "better ↑" : "better ↓";
    }
    box.dataset.lines = String(runs.length);
    box.dataset.axes = String(axes.length);
    box.dataset.metric = metric;
    if (data.axes.length > MAX_AXES) {
      var note = document.createElement("p");
      note.className = "muted small";
      note.textContent = "Showing the first " + MAX_AXES + " of " + data.axes.length + " params.";
      box.appendChild(note);
    }
  }

  function setupParallel(data) {
    var box = document.getElementById("parallel");
    var select = document.getElementById("parallel-metric");
    if (!box || !select) return;
    function draw() { drawParallel(box, data, select.value); }
    select.addEventListener("change", draw);
    var lastWidth = 0;
    new ResizeObserver(function () {
      if (box.clientWidth === lastWidth) return;
      lastWidth = box.clientWidth;
      draw();
    }).observe(box);
    draw();
  }

  function setupComparePage() {
    var source = document.getElementById("compare-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    setupDiffToggle();
    setupCharts(data);
    setupParallel(data);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupSelection();
    setupColumns();
    setupComparePage();
  });
})();
