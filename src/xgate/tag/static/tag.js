/*! xgate tag: first-party conversion tag for X's Conversions API (https://github.com/xgate). Apache-2.0 */
(function (w, d) {
  "use strict";
  var stub = w.xgate;
  if (stub && stub.loaded) return;

  var TWCLID = /^[A-Za-z0-9_.~-]{1,256}$/;
  var DAY = 86400000;
  var SENT_KEY = "_xgate_sent";
  var CIDS_KEY = "_xgate_cids";
  var CONSENT_KEY = "_xgate_consent";
  var TWCLID_KEY = "_xgate_twclid";
  var MAX_SENT = 200;
  var script = d.currentScript;

  var cfg = {
    // where the gateway is: by default the origin tag.js was loaded from
    collector: script && script.src ? new URL(script.src, w.location.href).origin : w.location.origin,
    writeKey: null,
    // our event_name -> X pixel event id (tw-PIXEL-EVENT), for twq('event', ...)
    pixelEvents: {},
    // "none": send at once (each destination's consent.unknown decides);
    // "required": hold events in the page until xgate.consent(...) is called
    consent: "none",
    // the consent category the X pixel needs before the tag calls twq
    pixelConsentCategory: "advertising",
    twclidCookie: "_xgate_twclid",
    twclidDays: 30,
    // how long the tag remembers which conversions it already sent
    rememberDays: 30,
    consentDays: 180,
  };
  var ready = false;
  var held = [];
  var memory = {};

  function warn(message) {
    if (w.console && w.console.warn) w.console.warn("xgate: " + message);
  }

  // ---- storage that degrades to memory when the browser refuses it (private modes, quotas)
  function store(kind) {
    try {
      var s = w[kind];
      s.setItem("_xgate_probe", "1");
      s.removeItem("_xgate_probe");
      return s;
    } catch (e) {
      return null;
    }
  }
  var local = store("localStorage");
  var session = store("sessionStorage");

  function readJSON(s, key) {
    try {
      var raw = s ? s.getItem(key) : memory[key];
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }
  function writeJSON(s, key, value) {
    var raw = JSON.stringify(value);
    try {
      if (s) {
        s.setItem(key, raw);
        return;
      }
    } catch (e) {
      /* quota: fall through to memory */
    }
    memory[key] = raw;
  }

  function readCookie(name) {
    var parts = d.cookie ? d.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) {
        try {
          return decodeURIComponent(parts[i].slice(eq + 1));
        } catch (e) {
          return null;
        }
      }
    }
    return null;
  }
  function writeCookie(name, value, days) {
    d.cookie =
      name + "=" + encodeURIComponent(value) + "; Max-Age=" + Math.round(days * 86400) +
      "; Path=/; SameSite=Lax" + (w.location.protocol === "https:" ? "; Secure" : "");
  }

  // ---- twclid: the X click id from the landing URL, kept for cfg.twclidDays
  function urlTwclid() {
    try {
      var v = new URL(w.location.href).searchParams.get("twclid");
      return v && TWCLID.test(v) ? v : null;
    } catch (e) {
      return null;
    }
  }
  function keptTwclid() {
    var c = readCookie(cfg.twclidCookie);
    if (c && TWCLID.test(c)) return c;
    var kept = readJSON(local, TWCLID_KEY);
    return kept && kept.exp > Date.now() && TWCLID.test(kept.v) ? kept.v : null;
  }
  function captureTwclid() {
    var v = urlTwclid();
    if (!v) return;
    writeCookie(cfg.twclidCookie, v, cfg.twclidDays); // fallback: script cookies are capped by some browsers
    writeJSON(local, TWCLID_KEY, { v: v, exp: Date.now() + cfg.twclidDays * DAY });
    if (!cfg.writeKey || !w.fetch) return;
    // the gateway answers with a server-set cookie, which outlives script-set ones under ITP
    try {
      w.fetch(endpoint("/v1/twclid", "twclid=" + encodeURIComponent(v)), {
        credentials: "include",
        keepalive: true,
        mode: "cors",
      }).catch(function () {});
    } catch (e) {
      /* a blocked request must never break the page */
    }
  }

  // ---- consent: the visitor's choice, remembered in localStorage and a cookie the backend can read
  function consentState() {
    var kept = readJSON(local, CONSENT_KEY);
    if (kept && kept.exp > Date.now() && kept.categories instanceof Array) return kept.categories;
    var c = readCookie(CONSENT_KEY);
    return c === null ? null : c ? c.split(".") : [];
  }

  // ---- conversion ids: one per conversion, stable across reloads of the same order / page
  function orderId(props) {
    var v = props.id != null ? props.id : props.order_id != null ? props.order_id : props.transaction_id;
    return v == null || v === "" ? null : String(v);
  }
  function pageKey() {
    try {
      var u = new URL(w.location.href);
      u.searchParams.delete("twclid");
      return u.pathname + u.search;
    } catch (e) {
      return w.location.pathname;
    }
  }
  function newId() {
    if (w.crypto && w.crypto.randomUUID) return "xg-" + w.crypto.randomUUID();
    return "xg-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }
  function identity(name, props, once) {
    var order = orderId(props);
    if (order) return { id: order, key: name + "|id|" + order };
    if (!once) return { id: newId(), key: null };
    var key = name + "|page|" + pageKey();
    var cids = readJSON(session, CIDS_KEY) || {};
    if (!cids[key]) {
      cids[key] = newId();
      writeJSON(session, CIDS_KEY, cids);
    }
    return { id: cids[key], key: key };
  }
  function sentLog() {
    var log = readJSON(local, SENT_KEY) || {};
    var cutoff = Date.now() - cfg.rememberDays * DAY;
    for (var k in log) if (log[k] < cutoff) delete log[k];
    return log;
  }
  function alreadySent(key) {
    return key !== null && sentLog()[key] !== undefined;
  }
  function remember(key) {
    if (key === null) return;
    var log = sentLog();
    log[key] = Date.now();
    var keys = Object.keys(log);
    if (keys.length > MAX_SENT) {
      keys.sort(function (a, b) {
        return log[a] - log[b];
      });
      for (var i = 0; i < keys.length - MAX_SENT; i++) delete log[keys[i]];
    }
    writeJSON(local, SENT_KEY, log);
  }

  // ---- sending
  function endpoint(path, query) {
    return (
      cfg.collector.replace(/\/+$/, "") + path + "?write_key=" + encodeURIComponent(cfg.writeKey) +
      (query ? "&" + query : "")
    );
  }
  function beacon(event) {
    var url = endpoint("/v1/events");
    var body = JSON.stringify(event);
    try {
      // text/plain keeps it a "simple" request: no CORS preflight, and it survives the page unloading
      if (w.navigator.sendBeacon && w.navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return;
    } catch (e) {
      /* fall back to fetch */
    }
    if (!w.fetch) return;
    w.fetch(url, {
      method: "POST",
      body: body,
      keepalive: true,
      credentials: "include",
      mode: "cors",
      headers: { "Content-Type": "text/plain" },
    }).catch(function () {});
  }
  function pixelParams(event) {
    var p = { conversion_id: event.id };
    var value = event.value != null ? event.value : event.revenue;
    if (value != null) p.value = value;
    if (event.currency) p.currency = event.currency;
    if (event.type) p.description = event.type;
    if (event.search_term) p.search_string = event.search_term;
    if (event.items instanceof Array) {
      p.contents = event.items.map(function (it) {
        var pr = it.product || {};
        var c = {};
        if (it.id != null || pr.id != null) c.content_id = String(it.id != null ? it.id : pr.id);
        if (pr.name) c.content_name = pr.name;
        if (it.price != null || pr.price != null) c.content_price = it.price != null ? it.price : pr.price;
        if (it.quantity != null) c.num_items = it.quantity;
        if (pr.group_id) c.content_group_id = pr.group_id;
        return c;
      });
    }
    return p;
  }
  function send(item) {
    var event = item.event;
    var categories = consentState();
    if (categories !== null) {
      event.user = event.user || {};
      event.user.consent_categories = categories;
    }
    var pixelEvent = cfg.pixelEvents[event.event_name];
    var pixelAllowed = categories === null || categories.indexOf(cfg.pixelConsentCategory) >= 0;
    if (pixelEvent && pixelAllowed && typeof w.twq === "function") {
      try {
        w.twq("event", pixelEvent, pixelParams(event));
      } catch (e) {
        warn("the X pixel failed: " + e);
      }
    }
    beacon(event);
    remember(item.key);
  }

  // ---- the public API
  var api = {
    loaded: true,
    version: "1",
    init: function (options) {
      options = options || {};
      for (var k in options) if (Object.prototype.hasOwnProperty.call(cfg, k)) cfg[k] = options[k];
      if (!cfg.writeKey) warn("init: writeKey is missing; events cannot be sent");
      if (cfg.consent !== "none" && cfg.consent !== "required") {
        warn('init: consent must be "none" or "required", not ' + JSON.stringify(cfg.consent));
        cfg.consent = "required";
      }
      ready = true;
      captureTwclid();
    },
    // track(event_name, properties[, {once: false}]) -> the conversion_id, or null when not sent again
    track: function (name, props, options) {
      if (typeof name !== "string" || !name) {
        warn("track: event_name must be a non-empty string");
        return null;
      }
      props = props || {};
      var once = !(options && options.once === false);
      var ident = identity(name, props, once);
      if (alreadySent(ident.key)) return null;
      var event = JSON.parse(JSON.stringify(props));
      event.event_name = name;
      event.id = ident.id;
      delete event.order_id;
      delete event.transaction_id;
      event.context = event.context || {};
      event.context.page_url = event.context.page_url || w.location.href;
      event.context.event_timestamp = event.context.event_timestamp || Date.now();
      var twclid = urlTwclid() || keptTwclid();
      if (twclid && !(event.partners && event.partners.twitter && event.partners.twitter.twclid)) {
        event.partners = event.partners || {};
        event.partners.twitter = event.partners.twitter || {};
        event.partners.twitter.twclid = twclid;
      }
      var item = { event: event, key: ident.key };
      if (cfg.consent === "required" && consentState() === null) held.push(item);
      else send(item);
      return ident.id;
    },
    // consent({advertising: true, analytics: false}): remember the choice and release held events
    consent: function (choices) {
      var categories = [];
      for (var k in choices || {}) if (choices[k] === true && /^[A-Za-z0-9_-]+$/.test(k)) categories.push(k);
      writeJSON(local, CONSENT_KEY, { categories: categories, exp: Date.now() + cfg.consentDays * DAY });
      writeCookie(CONSENT_KEY, categories.join("."), cfg.consentDays);
      var release = held;
      held = [];
      for (var i = 0; i < release.length; i++) send(release[i]);
    },
    // the visitor's remembered choice: a list of granted categories, or null when none was made
    consentCategories: function () {
      return consentState();
    },
    pending: function () {
      return held.length;
    },
  };

  var queue = (stub && stub.q) || [];
  w.xgate = api;
  // replay what the page called before tag.js arrived; init first, wherever it was called
  for (var i = 0; i < queue.length; i++) if (queue[i][0] === "init") api.init(queue[i][1][0]);
  if (!ready) captureTwclid();
  for (var j = 0; j < queue.length; j++) {
    var call = queue[j];
    if (call[0] !== "init" && typeof api[call[0]] === "function") api[call[0]].apply(api, call[1]);
  }
})(window, document);
