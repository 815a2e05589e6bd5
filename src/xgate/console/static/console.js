// xgate console: the hour's chart (uPlot) and the live stream (server-sent events). No inline scripts (CSP).
"use strict";
(function () {
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function time(at) { return new Date(at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }

  function chart() {
    var el = document.getElementById("hour-chart"), data = document.getElementById("hour-data");
    if (!el || !data || !window.uPlot) return;
    var d = JSON.parse(data.textContent);
    var opts = {
      width: el.clientWidth || 600, height: 220,
      series: [{}, { label: "stored", stroke: "#3b5bdb", width: 2, points: { show: false } },
               { label: "delivered", stroke: "#137333", width: 2, points: { show: false } }, { label: "dead", stroke: "#b3261e", width: 2, points: { show: false } }],
      axes: [{}, { size: 40 }], scales: { x: { time: true } }, points: { show: false }, cursor: { points: { show: false } }
    };
    var plot = new uPlot(opts, [d.minutes, d.stored, d.delivered, d.dead], el);
    window.addEventListener("resize", function () { plot.setSize({ width: el.clientWidth, height: 220 }); });
  }

  function live() {
    var body = document.getElementById("live-rows");
    if (!body || !window.EventSource) return;
    var form = document.getElementById("filters"), status = document.getElementById("live-status");
    var pause = document.getElementById("live-pause"), paused = false, held = [];
    var prefix = document.querySelector(".brand").getAttribute("href");
    function wanted(r) {
      var f = new FormData(form);
      return (!f.get("destination") || f.get("destination") === r.destination) &&
             (!f.get("state") || f.get("state") === r.state) &&
             (!f.get("event_name") || f.get("event_name") === r.event_name);
    }
    function cell(tr, value, cls) { var td = document.createElement("td"); if (cls) td.className = cls;
      if (value instanceof Node) td.appendChild(value); else td.textContent = text(value); tr.appendChild(td); }
    function show(r) {
      var tr = document.createElement("tr"), a, badge, sig;
      tr.dataset.id = r.id || ""; tr.className = "fresh";
      if (r.id) { a = document.createElement("a"); a.href = prefix + "/events/" + r.id; a.textContent = r.id; } else { a = "—"; }
      badge = document.createElement("span"); badge.className = "badge state-" + r.state; badge.textContent = r.state;
      sig = document.createElement("span");
      (r.match_signals || []).forEach(function (s) { var p = document.createElement("span"); p.className = "pill"; p.textContent = s; sig.appendChild(p); });
      cell(tr, a); cell(tr, time(r.updated_at || r.at)); cell(tr, r.event_name); cell(tr, r.destination || r.source);
      cell(tr, badge); cell(tr, r.attempts); cell(tr, sig, "signals"); cell(tr, r.last_error || r.error, "err");
      var old = r.id ? body.querySelector('tr[data-id="' + r.id + '"]') : null;
      if (old) old.remove();
      body.insertBefore(tr, body.firstChild);
      while (body.children.length > 200) body.removeChild(body.lastChild);
    }
    function take(r) { if (!wanted(r)) return; if (paused) { held.push(r); status.textContent = "paused, " + held.length + " waiting"; } else show(r); }
    pause.addEventListener("click", function () {
      paused = !paused; pause.setAttribute("aria-pressed", String(paused)); pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) { held.forEach(show); held = []; status.textContent = "live"; }
    });
    var source = new EventSource(prefix + "/api/stream");
    source.addEventListener("open", function () { if (!paused) status.textContent = "live"; });
    source.addEventListener("error", function () { status.textContent = "reconnecting…"; });
    source.addEventListener("conversion", function (e) { take(JSON.parse(e.data)); });
    source.addEventListener("rejected", function (e) { take(JSON.parse(e.data)); });
  }

  document.addEventListener("DOMContentLoaded", function () { chart(); live(); });
})();
