/* sollama HTML report: maps the chart specs (JSON built by ollama_ops.services.html_report) onto uPlot options.
   No drawing here: uPlot draws; this file picks colours and path types and wires the legend values.
   window.sollamaCharts[id] records, after each draw, what uPlot drew (bars through its `each` callback, points
   and lines as the data points inside the drawn ranges), for the browser test and for anyone curious. */
(function () {
  "use strict";
  var COLORS = {
    ttft: "#1f77b4", e2el: "#ff7f0e", itl: "#2ca02c",
    "part:load": "#9467bd", "part:prompt_eval": "#17becf", "part:eval": "#2ca02c", "part:wait": "#ff7f0e",
    "part:queue": "#7f7f7f",
    regressed: "#d62728", improved: "#2ca02c", "no change": "#4c6ef5", "n/a": "#adb5bd",
    threshold: "#e8590c", slo: "#d62728", knee: "#000000",
    warmup: "#adb5bd", cooldown: "#868e96"
  };
  var registry = (window.sollamaCharts = {});
  document.documentElement.className += " js";

  function fmt(v) {
    if (v == null) return "-";
    var a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function seriesOptions(spec, s, record) {
    var color = COLORS[s.role] || "#333333";
    var opt = { label: s.label, stroke: color, width: 2 };
    if (s.style === "bars") {
      opt.fill = color + "cc";
      opt.width = 1;
      opt.paths = uPlot.paths.bars({ size: [0.9, 64], each: function () { record.bars[s.label] += 1; } });
      opt.points = { show: false };
    } else if (s.style === "points") {
      opt.paths = function () { return null; };
      var big = s.role === "knee" || spec.xTicks.length;
      opt.points = { show: true, size: big ? 12 : 5, stroke: big ? "#ffffff" : color, fill: color, width: big ? 2 : 1 };
    } else {
      opt.points = { show: true, size: 6, stroke: color, fill: color };
      if (s.role === "slo" || s.role === "threshold") {
        opt.dash = [8, 6];
        opt.points = { show: false };
      }
      if (spec.xTicks.length) {  // an interval: a thick bar between its ends, the change itself is a point series
        opt.width = 5;
        opt.points = { show: false };
      }
    }
    if (s.legend) {
      var legend = s.legend;
      opt.value = function (u, v, si, i) { return i == null ? "-" : fmt(legend[i]); };
    } else {
      opt.value = function (u, v) { return fmt(v); };
    }
    if (spec.facets) {
      opt.facets = [{ scale: "x", auto: true }, { scale: "y", auto: true }];
      if (opt.points.show) {
        // uPlot's default point filter reads the aligned x of mode 1; a facet series names its own points
        var own = [];
        s.y.forEach(function (v, i) { if (v != null) own.push(i); });
        opt.points.filter = function () { return own; };
      }
    }
    return opt;
  }

  function countDrawn(u, spec) {
    // data points uPlot placed inside the visible x and y ranges, per series
    var out = {};
    var sx = u.scales.x, sy = u.scales.y;
    spec.series.forEach(function (s, k) {
      var xs = spec.facets ? s.x : spec.x, n = 0;
      for (var i = 0; i < s.y.length; i++) {
        var x = xs[i], y = s.y[i];
        if (y != null && x >= sx.min && x <= sx.max && y >= sy.min && y <= sy.max && u.series[k + 1].show) n++;
      }
      out[s.label] = n;
    });
    return out;
  }

  function build(spec, el) {
    var record = { bars: {}, points: {}, draws: 0, width: 0, height: 0 };
    spec.series.forEach(function (s) { record.bars[s.label] = 0; });
    var data = spec.facets
      ? [null].concat(spec.series.map(function (s) { return [s.x, s.y]; }))
      : [spec.x].concat(spec.series.map(function (s) { return s.y; }));
    var xAxis = { label: spec.xLabel, stroke: "#333" };
    var scales = { x: { time: false } };
    if (spec.xTicks.length) {
      var ticks = spec.xTicks;
      scales.x.range = function () { return [-0.5, ticks.length - 0.5]; };
      xAxis.splits = function () { return ticks.map(function (_, i) { return i; }); };
      xAxis.values = function (u, splits) { return splits.map(function (i) { return ticks[i] || ""; }); };
      xAxis.size = 60;
    }
    var opts = {
      mode: spec.facets ? 2 : 1,
      width: Math.max(300, Math.min(el.clientWidth || 900, 1100)),
      height: 320,
      scales: scales,
      legend: { live: !spec.facets },
      cursor: spec.facets ? { drag: { x: true, y: true } } : { drag: { x: true, y: false } },
      axes: [xAxis, { label: spec.yLabel, stroke: "#333" }],
      series: [{ label: spec.xLabel, value: function (u, v) { return fmt(v); } }].concat(
        spec.series.map(function (s) { return seriesOptions(spec, s, record); })),
      hooks: {
        drawClear: [function () { spec.series.forEach(function (s) { record.bars[s.label] = 0; }); }],
        draw: [function (u) {
          record.draws += 1;
          record.points = countDrawn(u, spec);
          record.width = u.bbox.width;
          record.height = u.bbox.height;
        }]
      }
    };
    registry[spec.id] = record;
    return new uPlot(opts, data, el);
  }

  var specs = JSON.parse(document.getElementById("sollama-charts").textContent);
  specs.forEach(function (spec) {
    var el = document.querySelector('[data-chart="' + spec.id + '"]');
    if (el) build(spec, el);
  });
})();
