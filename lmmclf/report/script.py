"""The gallery's script, written beside index.html as ``report.js``: vanilla JavaScript, no framework.

It reads the gallery data that ``data/items.js`` assigns to ``window.LMMCLF`` (script files,
not ``fetch``: a page opened from ``file://`` may not fetch files), filters it (class, split,
right or wrong for a chosen method, failed descriptions, a text search over the descriptions)
and draws one page of cards at a time, thumbnails loading lazily. A raw answer is read on
demand from its chunk ``data/raw-NNNN.js``, added as a script element the first time one of
its images asks.

Item fields, in order: id, class index, split, thumbnail path (or null), descriptions (or null:
not described), the describe failure's reason (or null), and one predicted class per method (-1:
not tested by that method).
"""

JS = r"""
(function () {
  "use strict";
  var D = window.LMMCLF;
  var PAGE = 48;
  var state = { page: 0, matches: [] };
  var haystack = null;  // lower-cased descriptions per item, made on the first search
  var rawChunks = {};    // chunk index -> its raw answers, once its file has run
  var rawWaiting = {};   // chunk index -> callbacks waiting for its file

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function option(select, value, text) { var o = el("option", null, text); o.value = value; select.appendChild(o); }

  function setup() {
    var cls = $("filter-class"), split = $("filter-split"), method = $("filter-method");
    option(cls, "", "all classes");
    D.classes.forEach(function (name, i) { option(cls, String(i), name); });
    option(split, "", "all splits");
    D.splits.forEach(function (name) { option(split, name, name); });
    if (D.methods.length) {
      D.methods.forEach(function (m, i) { option(method, String(i), m.name); });
    } else {
      option(method, "", "no trained method");
      method.disabled = true; $("filter-outcome").disabled = true;
    }
    ["filter-class", "filter-split", "filter-method", "filter-outcome", "filter-failed"].forEach(function (id) {
      $(id).addEventListener("change", function () { state.page = 0; apply(); });
    });
    var timer = null;
    $("search").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { state.page = 0; apply(); }, 150);
    });
    $("page-prev").addEventListener("click", function () { if (state.page > 0) { state.page--; draw(); } });
    $("page-next").addEventListener("click", function () {
      if ((state.page + 1) * PAGE < state.matches.length) { state.page++; draw(); }
    });
    apply();
  }

  function searchText(i) {
    if (!haystack) {
      haystack = D.items.map(function (item) { return (item[4] || []).join("\n").toLowerCase(); });
    }
    return haystack[i];
  }

  function apply() {
    var cls = $("filter-class").value, split = $("filter-split").value;
    var method = $("filter-method").value, outcome = $("filter-outcome").value;
    var failedOnly = $("filter-failed").checked;
    var query = $("search").value.trim().toLowerCase();
    var m = method === "" ? -1 : Number(method), c = cls === "" ? -1 : Number(cls);
    var out = [];
    for (var i = 0; i < D.items.length; i++) {
      var item = D.items[i];
      if (c >= 0 && item[1] !== c) continue;
      if (split && item[2] !== split) continue;
      if (failedOnly && item[5] === null) continue;
      if (m >= 0 && outcome) {
        var pred = item[6][m];
        if (pred < 0) continue;  // not tested by this method
        if (outcome === "right" && pred !== item[1]) continue;
        if (outcome === "wrong" && pred === item[1]) continue;
      }
      if (query && searchText(i).indexOf(query) < 0) continue;
      out.push(i);
    }
    state.matches = out;
    draw();
  }

  function card(i) {
    var item = D.items[i];
    var node = el("div", "card");
    node.dataset.id = item[0];
    if (item[3]) {
      var img = el("img"); img.loading = "lazy"; img.src = item[3]; img.alt = item[0]; node.appendChild(img);
    } else {
      node.appendChild(el("div", "failed", "no thumbnail (the image could not be read)"));
    }
    var meta = el("div", "meta", D.classes[item[1]] + " ");
    meta.appendChild(el("span", "split", item[2]));
    node.appendChild(meta);
    node.appendChild(el("div", "split", item[0]));
    var preds = el("div", "preds");
    D.methods.forEach(function (method, m) {
      var p = item[6][m];
      if (p < 0) return;
      var right = p === item[1];
      var line = el("div", right ? "right" : "wrong", (right ? "\u2713 " : "\u2717 ") + method.name + ": " + D.classes[p]);
      line.dataset.method = method.name; line.dataset.outcome = right ? "right" : "wrong";
      preds.appendChild(line);
    });
    node.appendChild(preds);
    if (item[5] !== null) node.appendChild(el("div", "failed", "describe failed: " + item[5]));
    if (item[4] && item[4].length) {
      var list = el("ol");
      item[4].forEach(function (text) { list.appendChild(el("li", null, text)); });
      node.appendChild(list);
    } else if (item[4] === null && item[5] === null) {
      node.appendChild(el("div", "split", "not described"));
    }
    if (D.hasRaw && (item[4] !== null || item[5] !== null)) {
      var button = el("button", null, "raw answer");
      var pre = el("pre"); pre.hidden = true;
      button.addEventListener("click", function () {
        if (!pre.hidden) { pre.hidden = true; return; }
        raw(i, function (text) { pre.textContent = text || "(no answer)"; pre.hidden = false; });
      });
      node.appendChild(button); node.appendChild(pre);
    }
    return node;
  }

  function raw(i, done) {
    var chunk = Math.floor(i / D.rawChunk), offset = i % D.rawChunk;
    if (rawChunks[chunk]) { done(rawChunks[chunk][offset]); return; }
    var first = !rawWaiting[chunk];
    (rawWaiting[chunk] = rawWaiting[chunk] || []).push(function (error) {
      done(error || rawChunks[chunk][offset]);
    });
    if (!first) return;
    var script = document.createElement("script");
    script.src = "data/raw-" + String(chunk).padStart(4, "0") + ".js";
    script.onerror = function () {
      var waiting = rawWaiting[chunk] || [];
      delete rawWaiting[chunk];
      waiting.forEach(function (f) { f("(the file " + script.src + " could not be read)"); });
    };
    document.body.appendChild(script);
  }

  window.LMMCLF_RAW = function (chunk, answers) {
    rawChunks[chunk] = answers;
    var waiting = rawWaiting[chunk] || [];
    delete rawWaiting[chunk];
    waiting.forEach(function (f) { f(null); });
  };

  function draw() {
    var total = state.matches.length, pages = Math.max(1, Math.ceil(total / PAGE));
    if (state.page >= pages) state.page = pages - 1;
    $("gallery-count").textContent = String(total);
    $("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page + 1 >= pages;
    var grid = $("gallery-grid");
    grid.textContent = "";
    var start = state.page * PAGE, fragment = document.createDocumentFragment();
    state.matches.slice(start, start + PAGE).forEach(function (i) { fragment.appendChild(card(i)); });
    grid.appendChild(fragment);
    document.body.dataset.ready = "1";
  }

  if (D) setup();
})();
"""
