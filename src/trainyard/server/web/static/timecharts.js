// Resource charts over wall time (CPU, memory, GPUs): the Window and Aggregation controls,
// one uPlot chart card per series, and muted cards for what cannot be charted ("no GPU").
// One implementation for the run view's System section (run_system.js) and the Operator's
// node page (node.js). Times are shown in UTC, like the rest of the UI; every text is set
// with textContent, never innerHTML.
(function () {
  "use strict";

  var WINDOWS = [
    [300, "Last 5 min"], [900, "Last 15 min"], [3600, "Last 1 h"], [21600, "Last 6 h"],
    [86400, "Last 1 day"],
  ];
  var INTERVALS = [10, 30, 60, 300, 900, 3600];
  var MAX_BUCKETS = 360;      // Auto: the smallest interval giving at most this many points
  var WEEK = 604800;
  var CHART_HEIGHT = 180;

  // What each series is, by the last part of its key (``cpu_percent``, ``gpu/0/power_w``).
  var KINDS = {
    cpu_percent: { title: "CPU usage (%)", unit: "%", colour: "--accent" },
    memory_mb: { title: "Memory usage (MB)", unit: "MB", colour: "--ok" },
    utilization_percent: { title: "GPU usage (%)", unit: "%", colour: "--accent", max: 100 },
    gpu_memory_mb: { title: "GPU memory (MB)", unit: "MB", colour: "--ok" },
    power_w: { title: "GPU power draw (W)", unit: "W", colour: "--wait" },
    temperature_c: { title: "GPU temperature (°C)", unit: "°C", colour: "--bad" },
  };
  var GPU_METRICS = ["utilization_percent", "memory_mb", "power_w", "temperature_c"];

  function gpuKind(metric) { return KINDS[metric === "memory_mb" ? "gpu_memory_mb" : metric]; }

  function intervalLabel(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return s / 60 + " min";
    return s / 3600 + " h";
  }

  function windowLabel(s) {
    if (s < 3600) return Math.round(s / 60) + " min";
    if (s < 86400) return Math.round(s / 360) / 10 + " h";
    return Math.round(s / 8640) / 10 + " d";
  }

  // Auto aggregation: the smallest interval that gives at most MAX_BUCKETS points over span.
  function autoInterval(span) {
    for (var i = 0; i < INTERVALS.length; i++) if (span / INTERVALS[i] <= MAX_BUCKETS) return INTERVALS[i];
    return INTERVALS[INTERVALS.length - 1];
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    if (a >= 100) return String(Math.round(v));
    if (a >= 10) return v.toFixed(1).replace(/\.0$/, "");
    return String(Number(v.toPrecision(3)));
  }

  // Axis ticks: 12k rather than 12000, so wide numbers keep the plot wide.
  function tick(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return Number((v / 1e6).toPrecision(3)) + "M";
    if (a >= 1e4) return Number((v / 1e3).toPrecision(3)) + "k";
    return fmt(v);
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // x ticks in UTC, 24-hour: "14:05" (with seconds when ticks are seconds apart), and the
  // date under the first tick and under each tick where the day changes.
  function timeTicks(u, splits, axis, space, incr) {
    var lastDay = null;
    return splits.map(function (t) {
      if (t === null || t === undefined) return "";
      var d = new Date(t * 1000);
      var label = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
      if (incr < 60) label += ":" + pad(d.getUTCSeconds());
      var day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
      if (day !== lastDay) { label += "\n" + day; lastDay = day; }
      return label;
    });
  }

  // "2030-01-02 13:04:05" in UTC.
  function clock(t) {
    var d = new Date(t * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  // ISO time from the API (naive means UTC, as the server stores it) -> epoch seconds.
  function epoch(iso) {
    if (!iso) return null;
    var s = String(iso);
    if (!/(Z|[+-]\d\d:?\d\d)$/.test(s)) s += "Z";
    var t = Date.parse(s);
    return isNaN(t) ? null : t / 1000;
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // "#3559d6" + alpha -> "rgba(...)", for the area under a line.
  function tint(hex, alpha) {
    var m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
    if (!m) return hex;
    return "rgba(" + parseInt(m[1], 16) + "," + parseInt(m[2], 16) + "," + parseInt(m[3], 16) + "," + alpha + ")";
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function getJson(url) {
    return fetch(url, { headers: { accept: "application/json" } }).then(function (r) {
      if (r.ok) return r.json();
      return r.json().then(function (body) {
        var msg = body && body.error && body.error.message;
        if (!msg && body && body.detail) msg = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
        throw new Error(msg || "HTTP " + r.status);
      }, function () { throw new Error("HTTP " + r.status); });
    });
  }

  // --- controls ------------------------------------------------------------------------
  // Window and Aggregation selects in ``box``. ``opts.whole``: label of an extra first window
  // ("Whole run", value "whole"); ``opts.initial``: the selected window. ``onChange`` runs
  // after either changes. ``interval(span)`` answers the aggregation in seconds.
  function Controls(box, opts, onChange) {
    var self = this;
    var prefix = opts.prefix || "tc";
    var wLabel = el("label", null, "Window ");
    var wSelect = el("select");
    wSelect.id = prefix + "-window";
    if (opts.whole) wSelect.append(new Option(opts.whole, "whole"));
    WINDOWS.forEach(function (w) { wSelect.append(new Option(w[1], String(w[0]))); });
    wSelect.value = String(opts.initial || (opts.whole ? "whole" : 3600));
    wLabel.append(wSelect);
    var iLabel = el("label", null, "Aggregation ");
    var iSelect = el("select");
    iSelect.id = prefix + "-interval";
    iSelect.append(new Option("Auto", "auto"));
    INTERVALS.forEach(function (s) { iSelect.append(new Option(intervalLabel(s), String(s))); });
    iSelect.title = "Points are the mean of the samples in each interval. Auto: the samples " +
      "themselves when the window holds at most " + MAX_BUCKETS + ", else the smallest " +
      "interval giving at most " + MAX_BUCKETS + " points";
    iLabel.append(iSelect);
    var utc = el("span", "muted small", "Times in UTC");
    box.prepend(wLabel, iLabel, utc);
    this.windowSelect = wSelect;
    this.intervalSelect = iSelect;
    [wSelect, iSelect].forEach(function (s) { s.addEventListener("change", function () { onChange(self); }); });
  }
  Controls.prototype.window = function () {
    var v = this.windowSelect.value;
    return v === "whole" ? "whole" : Number(v);
  };
  Controls.prototype.interval = function (span) {
    var v = this.intervalSelect.value;
    return v === "auto" ? autoInterval(span) : Number(v);
  };
  Controls.prototype.auto = function () { return this.intervalSelect.value === "auto"; };

  // --- one chart -----------------------------------------------------------------------
  // ``spec``: key, title, unit, colour (a CSS variable), max (a fixed top of the y axis,
  // e.g. 100 for a percentage that cannot exceed it), wide (spans two grid columns).
  function Chart(spec) {
    var self = this;
    this.spec = spec;
    var card = this.card = el("article", "chart tchart" + (spec.wide ? " wide" : ""));
    card.dataset.key = spec.key;
    var head = el("header");
    var title = el("h3", null, spec.title);
    this.stats = el("span", "stats");
    head.append(title, this.stats);
    this.plotBox = el("div", "plot");
    var foot = el("footer");
    this.readout = el("span", "readout");
    this.note = el("span", "note");
    foot.append(this.readout, this.note);
    card.append(head, this.plotBox, foot);
    this.plot = null;
    this.data = null;     // [times, values] as drawn
    this.range = null;    // {since, until}
    this.width = 0;
    new ResizeObserver(function () {
      var w = self.plotWidth();
      if (!self.plot || !w || w === self.width) return;
      self.width = w;
      self.plot.setSize({ width: w, height: CHART_HEIGHT });
    }).observe(card);
  }

  Chart.prototype.plotWidth = function () {
    return Math.floor(this.plotBox.clientWidth || 0);
  };

  // Shown in place of the plot: no samples in the window, or the request failed.
  Chart.prototype.message = function (text, state) {
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    this.data = null;
    this.plotBox.textContent = "";
    this.plotBox.append(el("p", "nodata", text));
    this.card.dataset.state = state || "empty";
    this.card.dataset.points = "0";
    this.stats.textContent = "";
    this.readout.textContent = "";
  };

  // points: [[time, value], ...] in time order; range: {since, until} (epoch seconds);
  // info: {interval: seconds or null (raw samples), samples: how many were aggregated}.
  Chart.prototype.show = function (points, range, info) {
    this.range = range;
    this.info = info || {};
    var card = this.card;
    card.dataset.since = String(range.since);
    card.dataset.until = String(range.until);
    card.dataset.interval = this.info.interval ? String(this.info.interval) : "raw";
    if (!points.length) {
      this.message("No samples in this window (" + windowLabel(range.until - range.since) +
        " to " + clock(range.until).slice(11) + " UTC) — pick a longer window.");
      this.note.textContent = "";
      return;
    }
    card.dataset.state = "data";
    card.dataset.points = String(points.length);
    var last = points[points.length - 1][1], max = -Infinity;
    points.forEach(function (p) { if (p[1] > max) max = p[1]; });
    var unit = this.spec.unit;
    var b = el("b", null, fmt(last) + " " + unit);
    this.stats.textContent = "";
    this.stats.append("last ", b);
    this.stats.title = "latest point at " + clock(points[points.length - 1][0]) + " UTC";
    card.dataset.last = String(last);
    card.dataset.max = String(max);
    var iv = this.info.interval;
    this.note.textContent = "max " + fmt(max) + " " + unit + " · " + points.length + " point" +
      (points.length === 1 ? "" : "s") + (iv ? " · mean per " + intervalLabel(iv) : " · raw samples");
    this.note.title = this.info.samples ? this.info.samples + " samples in the window" : "";
    this.data = withGaps(points, iv);
    this.draw();
  };

  // A missing stretch (the run paused, the server down) is drawn as a break in the line, not
  // as a straight line across it: null after any gap longer than the usual step.
  function withGaps(points, interval) {
    var diffs = [];
    for (var i = 1; i < points.length; i++) diffs.push(points[i][0] - points[i - 1][0]);
    diffs.sort(function (a, b) { return a - b; });
    var usual = diffs.length ? diffs[Math.floor(diffs.length / 2)] : 0;
    var gap = Math.max(2.5 * (interval || 0), 3 * usual);
    var xs = [], ys = [];
    points.forEach(function (p, j) {
      if (j && gap && p[0] - points[j - 1][0] > gap) { xs.push((p[0] + points[j - 1][0]) / 2); ys.push(null); }
      xs.push(p[0]);
      ys.push(p[1]);
    });
    return [xs, ys];
  }

  Chart.prototype.options = function (width) {
    var self = this;
    var colour = cssVar(this.spec.colour || "--accent");
    var muted = cssVar("--muted"), line = cssVar("--line");
    var axis = {
      stroke: muted,
      grid: { stroke: line, width: 1 },
      ticks: { stroke: line, width: 1, size: 4 },
      font: "11px system-ui, sans-serif",
    };
    var fixedMax = this.spec.max;
    return {
      width: width,
      height: CHART_HEIGHT,
      legend: { show: false },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      cursor: { drag: { x: false, y: false }, points: { size: 6, fill: colour } },
      select: { show: false },
      scales: {
        x: { time: true, range: function () { return [self.range.since, self.range.until]; } },
        y: {
          range: function (u, min, max) {
            var top = max > 0 ? max * 1.1 : 1;
            if (fixedMax && top < fixedMax) top = fixedMax;
            return [0, top];
          },
        },
      },
      axes: [
        Object.assign({}, axis, { size: 42, space: 70, values: timeTicks }),
        Object.assign({}, axis, {
          size: 44,
          values: function (u, splits) { return splits.map(function (v) { return v === null ? "" : tick(v); }); },
        }),
      ],
      series: [
        {},
        // Points are drawn only where they are sparse (uPlot's default), so a lone sample shows.
        { label: this.spec.title, stroke: colour, width: 1.6, fill: tint(colour, 0.12), spanGaps: false },
      ],
      hooks: {
        // The hovered point replaces the note in the footer (cards are narrow).
        setCursor: [function (u) {
          var i = u.cursor.idx;
          var none = i === null || i === undefined || u.data[1][i] === null || u.data[1][i] === undefined;
          self.readout.textContent = none ? "" : clock(u.data[0][i]).slice(5) + " UTC: " + fmt(u.data[1][i]) + " " + self.spec.unit;
          self.note.hidden = !none;
        }],
      },
    };
  };

  // (Re)draws with the theme's current colours; a hidden chart (no width) waits for show.
  Chart.prototype.draw = function () {
    if (!this.data) return;
    var w = this.plotWidth();
    if (!w) return;
    if (this.plot) this.plot.destroy();
    this.plotBox.textContent = "";
    this.width = w;
    this.plot = new uPlot(this.options(w), this.data, this.plotBox);
    this.card.uplot = this.plot;  // for tests and the console
  };

  // A moving window (a live run, "now") without new data: shift the x axis only.
  Chart.prototype.setRange = function (range) {
    this.range = range;
    this.card.dataset.since = String(range.since);
    this.card.dataset.until = String(range.until);
    if (this.plot) this.plot.setScale("x", { min: range.since, max: range.until });
  };

  // --- muted cards and headings --------------------------------------------------------
  // A card in place of charts that would only show zeros: "no GPU", "simulated GPU".
  function note(state, title, detail) {
    var card = el("article", "chart tnote");
    card.dataset.state = state;
    card.append(el("h3", null, title));
    if (detail) {
      var p = el("p", "muted small");
      (Array.isArray(detail) ? detail : [detail]).forEach(function (part) {
        p.append(typeof part === "string" ? part : el("code", null, part.code));
      });
      card.append(p);
    }
    return card;
  }

  // "GPU 0 · Tesla-V100-SXM3-32GB · GPU-1234…" above the four charts of one GPU.
  function gpuHeading(index, product, uuid, extra) {
    var h = el("h4", "tgpu");
    h.append(el("span", "gpuindex", "GPU " + index));
    if (product) h.append(el("span", "gpuproduct", product));
    if (extra) h.append(extra);
    if (uuid) {
      var u = el("span", "muted small tuuid", uuid);
      u.title = uuid;
      h.append(u);
    }
    return h;
  }

  // Redraw every chart when the theme changes (charts draw on canvas with its colours).
  function onTheme(redraw) {
    new MutationObserver(redraw)
      .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
  }

  window.TyTimeCharts = {
    WINDOWS: WINDOWS,
    INTERVALS: INTERVALS,
    WEEK: WEEK,
    MAX_BUCKETS: MAX_BUCKETS,
    KINDS: KINDS,
    GPU_METRICS: GPU_METRICS,
    gpuKind: gpuKind,
    autoInterval: autoInterval,
    intervalLabel: intervalLabel,
    windowLabel: windowLabel,
    epoch: epoch,
    clock: clock,
    fmt: fmt,
    el: el,
    getJson: getJson,
    Controls: Controls,
    Chart: Chart,
    note: note,
    gpuHeading: gpuHeading,
    onTheme: onTheme,
  };
})();
