// gpuwarden console: draws the node page's charts with uPlot from /ui/nodes/{id}/history.json.
// Everything else works without this script (and without htmx).
(function () {
  "use strict";
  function fmt(unit, v) {
    if (v == null) return "–";
    if (unit === "ratio") return (v * 100).toFixed(0) + " %";
    if (unit === "bytes") return (v / 1073741824).toFixed(1) + " GiB";
    return v.toFixed(0) + " " + unit;
  }
  function draw(box) {
    fetch(box.getAttribute("data-chart-src"), { credentials: "same-origin" })
      .then(function (r) {
        if (r.ok) return r.json();
        return r.json().then(
          function (e) { return Promise.reject(r.status + ": " + ((e.error && e.error.message) || "no reason given")); },
          function () { return Promise.reject(r.status); });
      })
      .then(function (d) {
        box.textContent = "";
        if (!d.times.length) { box.textContent = d.note || "No values yet."; return; }
        d.series.forEach(function (s) {
          var fig = document.createElement("figure");
          var cap = document.createElement("figcaption");
          cap.textContent = s.title + " (" + (s.unit === "ratio" ? "%" : s.unit === "bytes" ? "GiB" : s.unit) + "), last " + d.window;
          fig.appendChild(cap);
          box.appendChild(fig);
          var data = [d.times];
          var series = [{}];
          s.gpus.forEach(function (g, i) {
            data.push(g.values);
            series.push({
              label: "GPU " + g.index,
              stroke: "hsl(" + (i * 47 % 360) + ",65%,40%)",
              dash: i % 2 ? [6, 3] : undefined,
              value: function (u, v) { return fmt(s.unit, v); }
            });
          });
          new uPlot({
            width: Math.min(560, box.clientWidth || 560), height: 180, series: series,
            scales: { x: { time: true, range: [d.start, d.end] } },
            axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return fmt(s.unit, v); }); }, size: 70 }]
          }, data, fig);
        });
        if (d.note) { var p = document.createElement("p"); p.textContent = d.note; box.appendChild(p); }
      })
      .catch(function (e) { box.textContent = "Charts unavailable (" + e + ")."; box.setAttribute("role", "alert"); });
  }
  function init() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("[data-chart-src]").forEach(draw);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
