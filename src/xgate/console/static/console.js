// xgate console: charts (uPlot) and the live stream (server-sent events). No inline scripts (CSP).
"use strict";
(function () {
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function time(at) { return new Date(at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }

  // points drawn too: a bucket alone between empty ones is a dot, not an invisible line
  function line(label, stroke) { return { label: label, stroke: stroke, width: 2, points: { show: true, size: 5 } }; }
  function plot(el, series, data, percent) {
    var opts = {
      width: el.clientWidth || 600, height: 200, series: [{}].concat(series),
      axes: [{}, percent ? { size: 48, values: function (u, v) { return v.map(function (x) { return Math.round(x * 100) + "%"; }); } } : { size: 40 }],
      scales: percent ? { x: { time: true }, y: { range: [0, 1] } } : { x: { time: true } },
      cursor: { points: { show: false } }
    };
    var p = new uPlot(opts, data, el);
    window.addEventListener("resize", function () { p.setSize({ width: el.clientWidth, height: 200 }); });
  }

  function charts() {  // the overview: stored, delivered, retried, dead per bucket, one chart per window
    var data = document.getElementById("chart-data");
    if (!data || !window.uPlot) return;
    var all = JSON.parse(data.textContent);
    document.querySelectorAll(".timechart").forEach(function (el) {
      var d = all[el.dataset.window];
      plot(el, [line("stored", "#3b5bdb"), line("delivered", "#137333"), line("retried", "#b26a00"), line("dead", "#b3261e")],
           [d.t, d.stored, d.delivered, d.retried, d.dead], false);
    });
  }

  function quality() {  // match quality: each signal's share per bucket, one chart per destination and event
    var data = document.getElementById("quality-data");
    if (!data || !window.uPlot) return;
    var all = JSON.parse(data.textContent);
    document.querySelectorAll(".qchart").forEach(function (el) {
      var s = all.rows[Number(el.dataset.index)];
      plot(el, [line("twclid", "#3b5bdb"), line("e-mail", "#137333"), line("phone", "#7b1fa2"), line("ip + ua", "#b26a00"), line("delivered", "#555")],
           [all.t, s.twclid, s.email, s.phone, s.ip_ua, s.delivered], true);
    });
  }

  function live() {
    var body = document.getElementById("live-rows");
    if (!body || !window.EventSource) return;
    var form = document.getElementById("filters"), status = document.getElementById("live-status");
    var changed = document.getElementById("filters-changed");
    // held while paused: the latest of each conversion (its state changes are one wait, not several)
    var pause = document.getElementById("live-pause"), paused = false, held = new Map(), unnamed = 0;
    var prefix = document.querySelector(".brand").getAttribute("href");
    // the filters the rows shown were chosen by (the page's address): new rows are chosen by the same ones;
    // edits in the form apply when it is submitted (Filter), and say so until then
    var applied = new URLSearchParams(window.location.search);
    function formDiffers() {
      var f = new FormData(form);
      return ["destination", "state", "source", "event_name", "error"].some(function (k) {
        return (f.get(k) || "") !== (applied.get(k) || "");
      });
    }
    function noteChanges() { changed.hidden = !formDiffers(); }
    form.addEventListener("input", noteChanges); form.addEventListener("change", noteChanges);
    function wanted(r) {
      var f = applied;
      return (!f.get("destination") || f.get("destination") === r.destination) &&
             (!f.get("state") || f.get("state") === r.state) &&
             (!f.get("event_name") || f.get("event_name") === r.event_name) &&
             (!f.get("source") || f.get("source") === r.source) &&
             (!f.get("error") || (r.last_error || r.error || "").toLowerCase().indexOf(f.get("error").toLowerCase()) >= 0);
    }
    function cell(tr, value, cls) { var td = document.createElement("td"); if (cls) td.className = cls;
      if (value instanceof Node) td.appendChild(value); else td.textContent = text(value); tr.appendChild(td); }
    function shownRow(r) { return r.id ? body.querySelector('tr[data-id="' + r.id + '"]') : null; }
    function show(r) {
      var tr = document.createElement("tr"), a, badge, sig, old = shownRow(r);
      if (old && Number(old.dataset.updated) > (r.updated_at || 0)) return;  // an older state: the row is newer
      if (old && Number(old.dataset.updated) === r.updated_at && old.dataset.state === r.state) return;
      tr.dataset.id = r.id || ""; tr.dataset.state = r.state; tr.dataset.updated = text(r.updated_at || r.at); tr.className = "fresh";
      if (r.id) { a = document.createElement("a"); a.href = prefix + "/events/" + r.id; a.textContent = r.id; } else { a = "—"; }
      badge = document.createElement("span"); badge.className = "badge state-" + r.state; badge.textContent = r.state;
      sig = document.createElement("span");
      (r.match_signals || []).forEach(function (s) { var p = document.createElement("span"); p.className = "pill"; p.textContent = s; sig.appendChild(p); });
      cell(tr, a); cell(tr, time(r.updated_at || r.at)); cell(tr, r.event_name); cell(tr, r.source || "—"); cell(tr, r.destination || "—");
      cell(tr, badge); cell(tr, r.attempts); cell(tr, sig, "signals"); cell(tr, r.last_error || r.error, "err");
      if (old) { body.replaceChild(tr, old); return; }  // a conversion shown changed state: updated in place
      body.insertBefore(tr, body.firstChild);
      while (body.children.length > 200) body.removeChild(body.lastChild);
    }
    function take(r) {
      // a row shown takes its newer state even when that state is outside the filter (a replayed dead
      // letter is shown delivered, not left dead); a new row is shown when the filter wants it
      if (!shownRow(r) && !wanted(r)) return;
      if (!paused) { show(r); return; }
      var key = r.id ? "c" + r.id : "r" + (unnamed++);
      held.delete(key); held.set(key, r);  // the newest last
      status.textContent = pausedText();
    }
    function pausedText() { return held.size ? "paused, " + held.size + " waiting" : "paused"; }
    pause.addEventListener("click", function () {
      paused = !paused; pause.setAttribute("aria-pressed", String(paused)); pause.textContent = paused ? "Resume" : "Pause";
      if (paused) { status.textContent = pausedText(); return; }
      held.forEach(show); held.clear(); status.textContent = "live";
    });
    // the rows the page shows are watched by the stream: their changes come even when they are not the
    // newest. An EventSource reconnects with the address it was opened with, so the page opens each stream
    // itself, with the conversions it shows at that moment (the table's and those held while paused, at
    // most data-watch): when a stream's life ends (event renew) and after a failure (2 s, then longer)
    var watchMost = Number(body.dataset.watch) || 500, retry = 2000, wait = retry;
    function watching() {
      var ids = new Set();
      body.querySelectorAll("tr[data-id]").forEach(function (tr) { if (tr.dataset.id) ids.add(tr.dataset.id); });
      held.forEach(function (r) { if (r.id) ids.add(String(r.id)); });
      return Array.from(ids).slice(0, watchMost);
    }
    // a new stream sends the latest rejections again (50): each is shown once (the last 5000 are known)
    var rejections = new Set();
    function rejectedOnce(r) {
      var key = JSON.stringify([r.at, r.event_name, r.error, r.source]);
      if (rejections.has(key)) return;
      rejections.add(key); take(r);
      if (rejections.size > 5000) rejections.delete(rejections.values().next().value);
    }
    function connect() {
      var ids = watching(), stream = new EventSource(prefix + "/api/stream" + (ids.length ? "?watch=" + ids.join(",") : ""));
      stream.addEventListener("open", function () { wait = retry; status.textContent = paused ? pausedText() : "live"; });
      stream.addEventListener("error", function () {
        stream.close(); status.textContent = "reconnecting…";
        window.setTimeout(connect, wait); wait = Math.min(wait * 2, 30000);
      });
      stream.addEventListener("renew", function () { stream.close(); connect(); });
      stream.addEventListener("conversion", function (e) { take(JSON.parse(e.data)); });
      stream.addEventListener("rejected", function (e) { rejectedOnce(JSON.parse(e.data)); });
      // signed out (on this node or another): the stream ends; the pages are closed too
      stream.addEventListener("signed-out", function () { stream.close(); window.location.href = prefix + "/sign-in"; });
    }
    connect();
  }

  // a button whose action cannot be taken back asks first: its data-confirm is the question ({n}: how many
  // of its form's data-confirm-count are chosen; none chosen, nothing to ask). Listened to before htmx
  // (capture): a "no" stops the submit before htmx would send it. window.confirm is keyboard-accessible.
  function confirmFirst() {
    document.addEventListener("submit", function (e) {
      var b = e.submitter, question, n;
      if (!b || !b.dataset.confirm) return;
      question = b.dataset.confirm;
      if (b.dataset.confirmCount) {
        n = e.target.querySelectorAll(b.dataset.confirmCount).length;
        if (!n) return;
        question = question.replace("{n}", n).replace("{s}", n === 1 ? "" : "s");
      }
      if (!window.confirm(question)) { e.preventDefault(); e.stopPropagation(); }
    }, true);
  }

  // a phone's menu scrolls sideways in its own line: the current page's link and a link given focus
  // (Tab) are scrolled fully into it
  function menu() {
    var nav = document.querySelector(".top nav");
    if (!nav) return;
    function reveal(a) { if (a) a.scrollIntoView({ block: "nearest", inline: "nearest" }); }
    reveal(nav.querySelector("[aria-current]"));
    nav.addEventListener("focusin", function (e) { reveal(e.target); });
  }

  document.addEventListener("DOMContentLoaded", function () { menu(); charts(); quality(); live(); confirmFirst(); });
})();
