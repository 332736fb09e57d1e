// The Operator's node page: the whole node's CPU and memory, then each GPU's four charts,
// over the chosen window (timecharts.js), from GET /api/v1/nodes/{node}/metrics; refreshed
// every few seconds while the page is visible. A node without GPUs shows one "no GPU" card,
// a simulated GPU says it is simulated: never charts of zeros.
(function () {
  "use strict";

  var POLL_MS = 5000;

  function setup() {
    var root = document.getElementById("node-metrics");
    if (!root || !window.uPlot || !window.TyTimeCharts) return;
    var T = window.TyTimeCharts;
    var node = root.dataset.node;
    var memoryMb = Number(root.dataset.memoryMb) || undefined;
    var gpuMemory = JSON.parse(root.dataset.gpuMemory || "{}");
    var list = root.querySelector(".sysgroups");
    var live = root.querySelector(".syslive");
    var state = document.getElementById("node-metrics-state");
    var charts = {};   // key -> Chart
    var shape = "", seq = 0;
    var controls = new T.Controls(root.querySelector(".sysbar"), { prefix: "node", initial: 3600 },
      function () { load(); });

    function chart(key, spec) {
      if (!charts[key]) charts[key] = new T.Chart(Object.assign({ key: key }, spec));
      return charts[key];
    }

    function measured(g, byKey) {
      return g.measured || T.GPU_METRICS.some(function (m) { return byKey["gpu/" + g.index + "/" + m]; });
    }

    // The cards: CPU and memory, then per GPU a heading and its charts (or one note).
    function layout(resp, byKey) {
      var gpus = resp.gpus || [];
      var next = JSON.stringify(gpus.map(function (g) {
        return [g.index, g.uuid, g.product, g.simulated, measured(g, byKey)];
      })) + "|" + resp.gpu_error;
      if (next === shape) return;
      shape = next;
      list.textContent = "";
      var grid = T.el("div", "tgrid");
      grid.append(
        chart("cpu_percent", { title: "CPU usage (%)", unit: "%", colour: "--accent", max: 100, wide: true }).card,
        chart("memory_mb", { title: "Memory usage (MB)", unit: "MB", colour: "--ok", max: memoryMb, wide: true }).card
      );
      if (!gpus.length) {
        var why = resp.gpu_error ? " (" + resp.gpu_error + ")" : "";
        grid.append(T.note("no-gpu", "no GPU", [
          node + " has no GPU" + why + ", so there are no GPU charts. To try GPU scheduling without one, " +
          "simulate some: ", { code: "trainyard node simulate-gpus --count 2 --node " + node }, "."]));
      }
      gpus.forEach(function (g) {
        var tag = g.simulated ? T.el("span", "badge off", "simulated") : null;
        var h = T.gpuHeading(g.index, g.product, g.uuid, tag);
        h.dataset.gpu = String(g.index);
        grid.append(h);
        if (g.simulated) {
          grid.append(T.note("simulated", "simulated GPU — nothing to measure", [
            "GPU " + g.index + " was added with ", { code: "trainyard node simulate-gpus" },
            " for scheduling tests: there is no hardware behind it to sample."]));
        } else if (measured(g, byKey)) {
          T.GPU_METRICS.forEach(function (m) {
            var kind = T.gpuKind(m);
            var top = m === "memory_mb" ? gpuMemory[String(g.index)] : kind.max;
            grid.append(chart("gpu/" + g.index + "/" + m, {
              title: kind.title, unit: kind.unit, colour: kind.colour, max: top,
            }).card);
          });
        } else {
          grid.append(T.note("no-gpu-samples", "no GPU samples in this window", resp.gpu_error
            ? "This node's server cannot read its GPUs: " + resp.gpu_error + ". Install the NVIDIA driver (NVML) on " + node + " and restart its server."
            : "GPU " + g.index + " has not been measured in this window: pick a longer one, or check that " + node + "'s trainyard server is running."));
        }
      });
      list.append(grid);
    }

    function render(resp) {
      var byKey = {};
      resp.series.forEach(function (s) { byKey[s.key] = s.points; });
      layout(resp, byKey);
      var range = { since: resp.since, until: resp.until };
      Object.keys(charts).forEach(function (key) {
        var c = charts[key];
        if (!c.card.isConnected) return;
        if (byKey[key]) c.show(byKey[key], range, { interval: resp.interval });
        else if (key.indexOf("gpu/") === 0) c.message("Not reported by this GPU (NVML has no such reading for it).", "unsupported");
        else c.show([], range, { interval: resp.interval });
      });
      root.dataset.window = String(resp.window);
      root.dataset.interval = String(resp.interval);
      root.dataset.since = String(resp.since);
      root.dataset.until = String(resp.until);
      live.textContent = "live · updated every " + POLL_MS / 1000 + " s · one sample every " +
        T.fmt(resp.sample_interval) + " s, averaged per " + T.intervalLabel(resp.interval);
    }

    function load() {
      var mine = ++seq;
      var w = controls.window();
      var q = new URLSearchParams({
        window: String(w),
        interval: controls.auto() ? "auto" : String(controls.interval(w)),
      });
      return T.getJson("/api/v1/nodes/" + encodeURIComponent(node) + "/metrics?" + q).then(function (resp) {
        if (mine !== seq) return;
        state.textContent = "";
        render(resp);
      }, function (err) {
        if (mine !== seq) return;
        live.textContent = "";
        state.textContent = "Could not read the metrics of " + node + ": " + err.message + " (retried every " +
          POLL_MS / 1000 + " s).";
      });
    }

    setInterval(function () { if (document.visibilityState === "visible") load(); }, POLL_MS);
    document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") load(); });
    T.onTheme(function () { Object.keys(charts).forEach(function (k) { charts[k].draw(); }); });
    load();
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
