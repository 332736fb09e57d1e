// The run view's System section (Metrics tab): the resource samples of each replica —
// `system/<replica>/cpu_percent`, `memory_mb` and `gpu/<i>/<metric>` — as charts over wall
// time, grouped per replica, with the Window and Aggregation controls of timecharts.js.
// A replica without a GPU gets one "no GPU" card rather than four charts of zeros. Older
// `system/...` keys without a replica part are charted under "Other system metrics".
// metrics.js owns the polling and hands every summary list to update().
(function () {
  "use strict";

  var MIN_SPAN = 60;  // a window shorter than this (a run a few seconds old) is widened

  function keyPath(key) {
    return key.split("/").map(encodeURIComponent).join("/");
  }

  function placementSig(list) {
    return JSON.stringify(list.map(function (p) { return [p.replica, p.node, p.gpus]; }).sort());
  }

  function RunSystem(box, runId, active) {
    var T = this.T = window.TyTimeCharts;
    var self = this;
    this.box = box;
    this.api = "/api/v1/runs/" + runId;
    var layout = JSON.parse(box.dataset.layout || "{}");
    this.replicas = layout.replicas || [];
    this.started = layout.started || null;
    this.finished = layout.finished || null;
    this.active = active;
    this.known = {};
    this.replicas.forEach(function (r) { self.known[r.name] = r; });
    this.placed = this.currentSig();
    this.summaries = {};
    this.entries = {};       // key -> {chart, seen, seq}
    this.groups = {};        // replica name (or "" for other keys) -> {section, grid, sig}
    this.list = box.querySelector(".sysgroups");
    this.live = box.querySelector(".syslive");
    this.state = box.querySelector(".sysstate");
    this.controls = new T.Controls(box.querySelector(".sysbar"), { prefix: "system", whole: "Whole run" },
      function () { self.loadAll(); });
    this.fetchingNodes = false;
  }

  RunSystem.prototype.currentSig = function () {
    var placed = [];
    this.replicas.forEach(function (r) {
      if (r.gpus) placed.push({ replica: r.name, node: r.node, gpus: r.gpus.map(function (g) { return g.uuid; }) });
    });
    return placementSig(placed);
  };

  // Every summary of the run (metrics.js polls them), and the run itself while it is active.
  RunSystem.prototype.update = function (items, run, active) {
    var T = this.T, self = this;
    this.active = active;
    if (run) {
      this.started = T.epoch(run.started_at) || this.started;
      this.finished = T.epoch(run.finished_at) || this.finished;
      // Opened while queued: the placement came later. Name its GPUs from the node list.
      if (run.placements && placementSig(run.placements) !== this.placed && !this.fetchingNodes) {
        this.fetchingNodes = true;
        T.getJson("/api/v1/nodes").then(function (nodes) {
          self.place(run.placements, nodes.items || []);
          self.placed = placementSig(run.placements);
          self.layout();
          self.loadAll();
        }, function () {}).then(function () { self.fetchingNodes = false; });
      }
    }
    var summaries = {};
    items.forEach(function (s) { if (s.key.indexOf("system/") === 0) summaries[s.key] = s; });
    this.summaries = summaries;
    var any = Object.keys(summaries).length > 0;
    this.box.hidden = !any;
    this.live.textContent = active ? "live · updated every 3 s" : "";
    if (!any) return;
    var changed = this.layout();
    var range = this.mark(this.range());
    Object.keys(this.entries).forEach(function (key) {
      var e = self.entries[key], s = summaries[key];
      var seen = s ? s.count + ":" + s.last_time : "";
      if (changed || seen !== e.seen || !e.loaded) self.load(key, range);
      else if (active) e.chart.setRange(range);
    });
  };

  RunSystem.prototype.place = function (placements, nodes) {
    var gpus = {};
    nodes.forEach(function (n) { (n.gpus || []).forEach(function (g) { gpus[g.uuid] = g; }); });
    var byReplica = {};
    placements.forEach(function (p) { byReplica[p.replica] = p; });
    this.replicas.forEach(function (r) {
      var p = byReplica[r.name];
      if (!p) return;
      r.node = p.node;
      r.gpus = p.gpus.map(function (uuid) {
        var g = gpus[uuid] || {};
        return { uuid: uuid, index: g.index, product: g.product || "", simulated: !!g.simulated, node: p.node };
      });
    });
  };

  // The window to show: it ends now for an active run, at the run's end for a finished one.
  RunSystem.prototype.range = function () {
    var first = Infinity, last = 0, self = this;
    Object.keys(this.summaries).forEach(function (k) {
      var s = self.summaries[k];
      first = Math.min(first, s.first_time);
      last = Math.max(last, s.last_time);
    });
    // Whole seconds, outwards: a bound rounded inwards would drop the first or last sample.
    var now = Date.now() / 1000;
    var until = Math.ceil(this.active ? now : Math.max(this.finished || 0, last) || now);
    var w = this.controls.window(), since;
    if (w === "whole") {
      since = Math.floor(Math.min(this.started || first, first));
      if (!isFinite(since)) since = until - MIN_SPAN;
      since = Math.max(since, until - this.T.WEEK);
      // A run younger than a minute fills the chart from the left as it goes.
      if (until - since < MIN_SPAN) until = since + MIN_SPAN;
    } else {
      since = until - w;
    }
    return { since: since, until: until };
  };

  // Builds (or keeps) one group per replica and the "other" group; true when it changed.
  RunSystem.prototype.layout = function () {
    var self = this, changed = false;
    var perReplica = {}, other = [];
    Object.keys(this.summaries).sort().forEach(function (key) {
      var parts = key.split("/");
      var r = parts.length >= 3 ? self.known[parts[1]] : null;
      if (!r) { other.push(key); return; }
      var g = perReplica[r.name] || (perReplica[r.name] = { plain: [], gpus: {} });
      if (parts.length === 3) g.plain.push(parts[2]);
      else if (parts.length === 5 && parts[2] === "gpu" && /^\d+$/.test(parts[3])) g.gpus[Number(parts[3])] = true;
      else other.push(key);
    });
    var wanted = [];
    this.replicas.forEach(function (r) {
      wanted.push(r.name);
      if (self.group(r.name, self.replicaPlan(r, perReplica[r.name]))) changed = true;
    });
    if (other.length) {
      wanted.push("");
      if (self.group("", { sig: "other:" + other.join(","), items: other.map(function (k) { return { chart: k }; }) })) changed = true;
    }
    // Keep the groups in order, drop the ones no longer wanted.
    Object.keys(this.groups).forEach(function (name) {
      if (wanted.indexOf(name) < 0) { self.groups[name].section.remove(); delete self.groups[name]; changed = true; }
    });
    wanted.forEach(function (name) { self.list.append(self.groups[name].section); });
    return changed;
  };

  // What one replica's group shows: [{chart: key} | {note: card} | {heading: el}].
  RunSystem.prototype.replicaPlan = function (r, seen) {
    var T = this.T, items = [], prefix = "system/" + r.name + "/";
    if (!seen) {
      var text = this.active
        ? "Resource samples appear a few seconds after " + r.name + " starts."
        : "No resource samples were recorded for " + r.name + " (it may never have started).";
      return { sig: "none:" + this.active, items: [{ note: ["waiting", "no samples yet", text] }] };
    }
    ["cpu_percent", "memory_mb"].concat(seen.plain.filter(function (m) {
      return m !== "cpu_percent" && m !== "memory_mb";
    })).forEach(function (m) { items.push({ chart: prefix + m }); });
    var indices = Object.keys(seen.gpus).map(Number).sort(function (a, b) { return a - b; });
    var sig = "plain:" + seen.plain.join(",");
    var gpus = r.gpus || [];
    if (indices.length) {
      indices.forEach(function (i) {
        var g = gpus[i] || {};
        items.push({ heading: [i, g, r] });
        T.GPU_METRICS.forEach(function (m) { items.push({ chart: prefix + "gpu/" + i + "/" + m }); });
      });
      sig += "|gpus:" + indices.join(",") + ":" + gpus.map(function (g) { return g.uuid; }).join(",");
    } else if (gpus.length && gpus.every(function (g) { return g.simulated; })) {
      var what = gpus.length + " × " + (gpus[0].product || "GPU");
      items.push({ note: ["simulated", "simulated GPU — nothing to measure", [
        r.name + " was placed on " + what + " simulated with ", { code: "trainyard node simulate-gpus" },
        ": there is no hardware to sample. CPU and memory above are real."]] });
      sig += "|sim";
    } else if (gpus.length || r.requested > 0) {
      items.push({ note: ["no-gpu-samples", "no GPU samples yet", [
        r.name + " has " + (gpus.length || r.requested) + " GPU" + ((gpus.length || r.requested) === 1 ? "" : "s") +
        " but none was measured" + (this.active ? " yet: samples come every few seconds. " : ". ") +
        "If none ever come, the node's server cannot read NVML (the NVIDIA driver): see docs/tracking.md."]] });
      sig += "|nosamples:" + this.active;
    } else {
      items.push({ note: ["no-gpu", "no GPU", [
        r.name + " was given no GPU, so there is nothing to chart. To train on one, ask for it in the manifest: ",
        { code: "resources: {requests: {gpu: 1}}" }, "."]] });
      sig += "|nogpu";
    }
    return { sig: sig, items: items };
  };

  RunSystem.prototype.group = function (name, plan) {
    var T = this.T, self = this;
    var g = this.groups[name];
    if (g && g.sig === plan.sig) return false;
    if (!g) {
      var section = T.el("section", "sysreplica");
      section.dataset.replica = name;
      var head = T.el("h3", name ? "sysname" : "sysname plain", name || "Other system metrics");
      var r = this.known[name];
      var sub = T.el("span", "muted small");
      head.append(" ", sub);
      var grid = T.el("div", "tgrid");
      section.append(head, grid);
      g = this.groups[name] = { section: section, grid: grid, sub: sub, sig: "" };
      if (!name) sub.textContent = "logged without a replica name";
      else if (r) g.replica = r;
    }
    if (g.replica) {
      var r2 = g.replica, n = (r2.gpus || []).length || r2.requested || 0;
      g.sub.textContent = (r2.node ? "on " + r2.node + " · " : "") + (n ? n + " GPU" + (n === 1 ? "" : "s") : "no GPU");
    }
    g.sig = plan.sig;
    g.grid.textContent = "";
    var keep = {};
    plan.items.forEach(function (item) {
      if (item.chart) {
        keep[item.chart] = true;
        g.grid.append(self.entry(item.chart, !!name).chart.card);
      } else if (item.note) {
        g.grid.append(T.note(item.note[0], item.note[1], item.note[2]));
      } else if (item.heading) {
        var i = item.heading[0], gpu = item.heading[1], rep = item.heading[2];
        var where = gpu.index !== undefined && gpu.index !== null
          ? T.el("span", "muted small", "GPU " + gpu.index + " of " + (gpu.node || rep.node)) : null;
        var h = T.gpuHeading(i, gpu.product, gpu.uuid, where);
        h.dataset.gpu = String(i);
        g.grid.append(h);
      }
    });
    // Charts of this group that are no longer in it.
    Object.keys(this.entries).forEach(function (key) {
      var e = self.entries[key];
      if (e.group === name && !keep[key]) delete self.entries[key];
    });
    Object.keys(keep).forEach(function (key) { self.entries[key].group = name; });
    return true;
  };

  // The chart of one key; titles by kind for a replica's keys, the key itself otherwise.
  RunSystem.prototype.entry = function (key, byKind) {
    var T = this.T;
    if (this.entries[key]) return this.entries[key];
    var parts = key.split("/"), metric = parts[parts.length - 1];
    var gpu = parts.length >= 3 && parts[parts.length - 3] === "gpu";
    var kind = (gpu ? T.gpuKind(metric) : T.KINDS[metric]) || { title: metric, unit: "", colour: "--accent" };
    var spec = {
      key: key,
      title: byKind ? kind.title : key,
      unit: kind.unit,
      colour: kind.colour,
      max: kind.max,
      wide: !gpu,
    };
    var e = this.entries[key] = { chart: new T.Chart(spec), seen: "", seq: 0, loaded: false };
    if (!byKind) e.chart.card.classList.add("keytitle");
    return e;
  };

  RunSystem.prototype.load = function (key, range) {
    var T = this.T, e = this.entries[key], s = this.summaries[key];
    if (!e) return;
    var seq = ++e.seq;
    e.seen = s ? s.count + ":" + s.last_time : "";
    e.loaded = true;
    if (!s) {
      e.chart.message("Not reported by this GPU (NVML has no such reading for it).", "unsupported");
      return;
    }
    var span = range.until - range.since;
    var interval = this.controls.interval(span);
    // Auto: the raw samples when the window holds few enough of them (a young or short run
    // sampled every few seconds), else the smallest interval giving few enough points.
    if (this.controls.auto() && s.count > 1) {
      var every = (s.last_time - s.first_time) / (s.count - 1);
      if (every > 0 && span / every <= this.T.MAX_BUCKETS) interval = null;
    }
    var width = e.chart.plotWidth() || 600;
    var q = new URLSearchParams({
      min_time: String(range.since),
      max_time: String(range.until),
      max_points: String(Math.max(100, 2 * width)),
    });
    if (interval) q.append("interval", String(interval));
    e.chart.card.setAttribute("aria-busy", "true");
    T.getJson(this.api + "/metrics/" + keyPath(key) + "?" + q).then(function (h) {
      if (seq !== e.seq) return;
      var aggregated = typeof h.interval === "number";
      var points = [];
      h.points.forEach(function (p) {
        // Raw points are cut to the window here; buckets start on a multiple of the
        // interval, so the first may start a little before it.
        if (aggregated || (p[1] >= range.since && p[1] <= range.until)) points.push([p[1], p[2]]);
      });
      points.sort(function (a, b) { return a[0] - b[0]; });
      e.chart.show(points, range, { interval: aggregated ? h.interval : null, samples: h.total });
      e.chart.card.removeAttribute("aria-busy");
    }, function (err) {
      if (seq !== e.seq) return;
      e.chart.message("Could not load " + key + ": " + err.message + " — it is retried on the next refresh.", "error");
      e.loaded = false;
      e.chart.card.removeAttribute("aria-busy");
    });
  };

  // The window on the section, for tests and the console.
  RunSystem.prototype.mark = function (range) {
    this.box.dataset.since = String(range.since);
    this.box.dataset.until = String(range.until);
    this.box.dataset.interval = String(this.controls.interval(range.until - range.since));
    return range;
  };

  RunSystem.prototype.loadAll = function () {
    var self = this, range = this.mark(this.range());
    Object.keys(this.entries).forEach(function (key) { self.load(key, range); });
  };

  RunSystem.prototype.redraw = function () {
    var self = this;
    Object.keys(this.entries).forEach(function (key) { self.entries[key].chart.draw(); });
  };

  window.TyRunSystem = RunSystem;
})();
