// feature-lens explorer: the browser side of `feature-lens serve`.
// Draws the graph view model (feature_lens/serve/view.py) on a canvas: x = token position, y = site.
// Every string from the model, tokenizer or user reaches the page through textContent or a canvas
// fillText, never as HTML. No inline code (the server's CSP forbids it); no request leaves the server.
(function () {
  "use strict";

  var ROW_H = 64, COL_MIN = 80, SPACING = 22, PAD = 14, LEFT = 96, BOTTOM = 40;
  var KIND_FILL = { feature: "#f3c04f", error: "#b9bec8", token: "#8fd19e", logit: "#c79be6" };
  var SUPER_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

  var S = {
    info: null, graphId: null, meta: null, data: null,
    ann: { pinned: [], supernodes: [], labels: {} },
    nodeT: 0.8, edgeT: 0.95, selected: null, hover: -1,
    view: { x: 0, y: 0, k: 1 }, world: { w: 1, h: 1 },
    px: null, py: null, nodeOn: null, visible: [], edgesOn: [], paths: null, maxW: 1, maxInf: 1,
    idIndex: {}, incident: null, dirty: true, version: 0, interacting: false, viewFromUrl: false,
    stats: { draws: [], frames: [] }
  };

  // ------------------------------------------------------------------ small helpers
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text, parent) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function fmt(x) {
    if (x === null || x === undefined || !isFinite(x)) { return String(x); }
    var a = Math.abs(x);
    return a >= 1000 || (a < 0.001 && a !== 0) ? x.toExponential(2) : x.toPrecision(3);
  }
  function api(method, path, body) {
    var opts = { method: method, headers: {} };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return { error: r.status + " " + r.statusText }; }).then(function (j) {
        if (!r.ok) { throw new Error(j && j.error ? j.error : r.status + " " + r.statusText); }
        return j;
      });
    });
  }
  function setProgress(text, isError) {
    var p = $("progress");
    p.textContent = text;
    p.className = isError ? "error" : "muted";
  }

  // ------------------------------------------------------------------ URL state
  function readUrl() {
    var q = new URLSearchParams(location.hash.slice(1));
    var v = q.get("v");
    return {
      graph: q.get("g"), node: q.get("n"),
      nt: q.has("nt") ? Number(q.get("nt")) / 100 : null,
      et: q.has("et") ? Number(q.get("et")) / 100 : null,
      view: v ? v.split(",").map(Number) : null
    };
  }
  var urlTimer = null;
  function writeUrl() {
    if (urlTimer) { clearTimeout(urlTimer); }
    urlTimer = setTimeout(function () {
      if (!S.graphId) { return; }
      var q = new URLSearchParams();
      q.set("g", S.graphId);
      if (S.selected !== null) { q.set("n", S.selected); }
      q.set("nt", String(Math.round(S.nodeT * 100)));
      q.set("et", String(Math.round(S.edgeT * 100)));
      q.set("v", [S.view.x.toFixed(1), S.view.y.toFixed(1), S.view.k.toFixed(3)].join(","));
      history.replaceState(null, "", "#" + q.toString());
    }, 150);
  }

  // ------------------------------------------------------------------ graphs list and jobs
  function loadList() {
    return api("GET", "/api/graphs").then(function (list) {
      var ul = $("graph-list");
      clear(ul);
      list.forEach(function (m) {
        var li = el("li", m.id === S.graphId ? "active" : "", null, ul);
        li.setAttribute("data-graph", m.id);
        li.title = m.prompt + "\n" + m.method + ", " + m.metric + ", " + m.n_nodes + " nodes";
        el("span", "", m.prompt, li);
        li.addEventListener("click", function () { openGraph(m.id, null); });
      });
    });
  }

  function submitPrompt(ev) {
    ev.preventDefault();
    var answers = [$("answer-a").value, $("answer-b").value].filter(function (a) { return a.length > 0; });
    var body = {
      prompt: $("prompt").value, method: $("method").value,
      max_nodes: Number($("max-nodes").value) || 64, answers: answers
    };
    if ($("corrupted").value) { body.corrupted = $("corrupted").value; }
    $("compute").disabled = true;
    setProgress("queued");
    api("POST", "/api/graphs", body).then(pollJob).catch(function (e) {
      $("compute").disabled = false;
      setProgress(e.message, true);
    });
  }

  function pollJob(job) {
    if (job.status === "running") {
      setProgress(job.stage + " \u00b7 " + job.elapsed.toFixed(1) + " s");
      setTimeout(function () { api("GET", "/api/jobs/" + job.id).then(pollJob).catch(function (e) { setProgress(e.message, true); $("compute").disabled = false; }); }, 120);
      return;
    }
    $("compute").disabled = false;
    if (job.status === "error") { setProgress(job.error, true); return; }
    setProgress("graph computed in " + job.elapsed.toFixed(2) + " s");
    openGraph(job.graph, null).then(loadList);
  }

  function openGraph(id, urlState) {
    return api("GET", "/api/graphs/" + encodeURIComponent(id)).then(function (res) {
      S.graphId = id; S.meta = res.meta; S.data = res.view; S.ann = res.annotations;
      S.selected = null; S.hover = -1;
      S.idIndex = {};
      S.data.nodes.forEach(function (n, i) { S.idIndex[n.id] = i; });
      buildIncidence();
      if (urlState && urlState.nt) { S.nodeT = urlState.nt; }
      if (urlState && urlState.et) { S.edgeT = urlState.et; }
      $("node-threshold").value = String(Math.round(S.nodeT * 100));
      $("edge-threshold").value = String(Math.round(S.edgeT * 100));
      showHead();
      relayout();
      if (urlState && urlState.view && urlState.view.length === 3 && urlState.view.every(isFinite)) {
        S.view = { x: urlState.view[0], y: urlState.view[1], k: urlState.view[2] };
      } else { fitView(); }
      renderSide();
      Array.prototype.forEach.call(document.querySelectorAll("#graph-list li"), function (li) {
        li.className = li.getAttribute("data-graph") === id ? "active" : "";
      });
      if (urlState && urlState.node && (urlState.node in S.idIndex || urlState.node.indexOf("super:") === 0)) { select(urlState.node); }
      else { showPanel(null); }
      S.dirty = true;
      writeUrl();
      $("canvas-box").setAttribute("data-graph", id);
    }).catch(function (e) { setProgress(e.message, true); });
  }

  function showHead() {
    var m = S.meta, d = S.data;
    var t = $("graph-title");
    t.className = "";
    t.textContent = m.prompt + "  \u2014  " + d.method + ", " + d.metricLabel + " (" + d.nodes.length + " nodes, " + d.edges.w.length + " edges)";
    var out = $("outputs");
    clear(out);
    if (m.outputs && m.outputs.length) {
      el("span", "", "next token: ", out);
      m.outputs.slice(0, 6).forEach(function (o, i) {
        el("code", "", JSON.stringify(o.token), out);
        el("span", "", " " + (o.prob * 100).toFixed(1) + "%" + (i < 5 ? ", " : ""), out);
      });
    }
  }

  function buildIncidence() {
    var n = S.data.nodes.length, e = S.data.edges;
    S.incident = [];
    for (var i = 0; i < n; i++) { S.incident.push([]); }
    for (var j = 0; j < e.s.length; j++) { S.incident[e.s[j]].push(j); S.incident[e.t[j]].push(j); }
    S.maxInf = 0;
    S.data.nodes.forEach(function (nd) { if (nd.kind !== "logit") { S.maxInf = Math.max(S.maxInf, nd.influence); } });
    if (!(S.maxInf > 0)) { S.maxInf = 1; }
  }

  // ------------------------------------------------------------------ layout
  function isPinned(id) { return S.ann.pinned.indexOf(id) >= 0; }

  function relayout() {
    var d = S.data, nodes = d.nodes, e = d.edges;
    var visible = [], on = new Uint8Array(nodes.length);
    nodes.forEach(function (n, i) {
      if (n.kind === "logit" || n.rank < S.nodeT || isPinned(n.id)) { visible.push(i); on[i] = 1; }
    });
    var nPos = d.tokens.length, hasAll = nodes.some(function (n) { return n.pos < 0 && n.kind !== "logit"; });
    var nCols = nPos + (hasAll ? 1 : 0);
    function col(n) { return n.kind === "logit" ? Math.max(0, nPos - 1) : (n.pos < 0 ? nPos : n.pos); }
    var groups = {};
    visible.forEach(function (i) {
      var n = nodes[i], key = col(n) + ":" + n.row;
      (groups[key] = groups[key] || []).push(i);
    });
    var maxCount = [];
    for (var c = 0; c < nCols; c++) { maxCount.push(0); }
    Object.keys(groups).forEach(function (key) {
      var cc = Number(key.split(":")[0]);
      maxCount[cc] = Math.max(maxCount[cc], groups[key].length);
    });
    var starts = [], widths = [], x = LEFT;
    for (c = 0; c < nCols; c++) {
      var w = Math.max(COL_MIN, maxCount[c] * SPACING + 2 * PAD);
      starts.push(x); widths.push(w); x += w;
    }
    var nRows = d.rows.length;
    S.world = { w: x + 20, h: nRows * ROW_H + BOTTOM, starts: starts, widths: widths, nCols: nCols, hasAll: hasAll };
    var px = new Float64Array(nodes.length), py = new Float64Array(nodes.length);
    Object.keys(groups).forEach(function (key) {
      var members = groups[key].slice().sort(function (a, b) { return nodes[b].influence - nodes[a].influence; });
      var cc = Number(key.split(":")[0]), inner = widths[cc] - 2 * PAD, step = inner / members.length;
      members.forEach(function (i, k) {
        px[i] = starts[cc] + PAD + (k + 0.5) * Math.min(step, SPACING * 2) + Math.max(0, inner - members.length * Math.min(step, SPACING * 2)) / 2;
        py[i] = (nRows - 1 - nodes[i].row) * ROW_H + ROW_H / 2;
      });
    });
    S.px = px; S.py = py; S.visible = visible; S.nodeOn = on;
    // Edges: between visible nodes, within the top fraction of edge influence.
    var edgesOn = [], maxW = 0;
    for (var j = 0; j < e.s.length; j++) {
      if (on[e.s[j]] && on[e.t[j]] && e.rank[j] < S.edgeT) { edgesOn.push(j); maxW = Math.max(maxW, Math.abs(e.w[j])); }
    }
    S.edgesOn = edgesOn; S.maxW = maxW || 1;
    // Edge paths in world coordinates, bucketed by sign and strength: panning redraws them as is.
    var paths = [];
    for (var b = 0; b < 8; b++) { paths.push(new Path2D()); }
    edgesOn.forEach(function (j) {
      var level = Math.min(3, Math.floor(4 * Math.sqrt(Math.abs(e.w[j]) / S.maxW)));
      var p = paths[(e.w[j] >= 0 ? 0 : 4) + level];
      p.moveTo(px[e.s[j]], py[e.s[j]]);
      p.lineTo(px[e.t[j]], py[e.t[j]]);
    });
    S.paths = paths;
    S.version += 1;
    $("node-label").textContent = Math.round(S.nodeT * 100) + "% of influence: " + visible.length + " of " + nodes.length;
    $("edge-label").textContent = Math.round(S.edgeT * 100) + "%: " + edgesOn.length + " of " + e.s.length;
    S.dirty = true;
  }

  function fitView() {
    var c = $("graph-canvas"), w = c.clientWidth || 800, h = c.clientHeight || 500;
    var k = Math.min(w / S.world.w, (h - 10) / S.world.h);
    k = Math.max(0.05, Math.min(k, 2));
    S.view = { k: k, x: (w - S.world.w * k) / 2, y: Math.max(0, (h - S.world.h * k) / 2) };
    S.dirty = true;
  }

  // ------------------------------------------------------------------ drawing
  function superOf(id) {
    for (var s = 0; s < S.ann.supernodes.length; s++) { if (S.ann.supernodes[s].members.indexOf(id) >= 0) { return s; } }
    return -1;
  }

  function radius(n) { return n.kind === "logit" ? 8 : 2.5 + 6 * Math.sqrt(Math.max(0, n.influence) / S.maxInf); }

  // The scene (bands, edges, nodes, rings, labels) for view `v` on a context of CSS size w x h.
  function drawScene(g, dpr, w, h, v) {
    var d = S.data, nodes = d.nodes;
    g.setTransform(dpr * v.k, 0, 0, dpr * v.k, dpr * v.x, dpr * v.y);
    for (var r = 0; r < d.rows.length; r++) {
      g.fillStyle = r % 2 ? "#ffffff" : "#f6f5f0";
      g.fillRect(0, (d.rows.length - 1 - r) * ROW_H, S.world.w, ROW_H);
    }
    var colours = ["rgba(47,111,208,", "rgba(210,67,58,"];
    for (var b = 0; b < 8; b++) {
      var level = b % 4;
      g.strokeStyle = colours[b < 4 ? 0 : 1] + (0.18 + 0.2 * level) + ")";
      g.lineWidth = (0.6 + 1.2 * level) / v.k;
      g.stroke(S.paths[b]);
    }
    // Nodes at screen size, batched by fill.
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    var batches = {};
    S.visible.forEach(function (i) {
      var n = nodes[i], sx = S.px[i] * v.k + v.x, sy = S.py[i] * v.k + v.y;
      if (sx < -20 || sy < -20 || sx > w + 20 || sy > h + 20) { return; }
      var rad = radius(n), fill = KIND_FILL[n.kind] || "#ddd";
      var p = batches[fill] || (batches[fill] = new Path2D());
      p.moveTo(sx + rad, sy); p.arc(sx, sy, rad, 0, 2 * Math.PI);
    });
    Object.keys(batches).forEach(function (fill) { g.fillStyle = fill; g.fill(batches[fill]); g.strokeStyle = "rgba(0,0,0,.35)"; g.lineWidth = 0.7; g.stroke(batches[fill]); });
    S.ann.supernodes.forEach(function (sn, k) {
      sn.members.forEach(function (id) { if (id in S.idIndex) { ring(g, v, S.idIndex[id], SUPER_COLOURS[k % SUPER_COLOURS.length], 3, 5); } });
    });
    S.ann.pinned.forEach(function (id) { if (id in S.idIndex) { ring(g, v, S.idIndex[id], "#222", 2, 2); } });
    // Labels: the strongest nodes, pinned ones, and all when zoomed in enough.
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#222";
    var labelled = 0, all = v.k * SPACING > 60;
    S.visible.forEach(function (i) {
      var n = nodes[i];
      if (!(all || n.kind === "logit" || n.kind === "token" || isPinned(n.id) || n.rank < 0.3) || labelled > 400) { return; }
      var sx = S.px[i] * v.k + v.x, sy = S.py[i] * v.k + v.y;
      if (sx < -50 || sy < -20 || sx > w + 50 || sy > h + 20) { return; }
      label(g, n, sx, sy);
      labelled += 1;
    });
  }

  function ring(g, v, i, colour, width, extra) {
    var sx = S.px[i] * v.k + v.x, sy = S.py[i] * v.k + v.y;
    g.strokeStyle = colour; g.lineWidth = width; g.beginPath(); g.arc(sx, sy, radius(S.data.nodes[i]) + extra, 0, 2 * Math.PI); g.stroke();
  }

  function label(g, n, sx, sy) {
    var text = n.label.length > 22 ? n.label.slice(0, 21) + "\u2026" : n.label;
    g.fillText(text, sx + 9, sy - 6);
  }

  // The scene is rendered into an offscreen canvas one margin larger than the view on every side;
  // while the user pans or zooms, frames only copy it (scaled when zooming) and the focus is drawn
  // on top, so a frame costs one image copy however many edges there are. It is redrawn when the
  // interaction pauses, the view leaves the margin, or what it shows changes (`S.version`).
  var cache = null;
  function cacheUsable(v, w, h) {
    if (!cache || cache.version !== S.version || cache.w !== w || cache.h !== h) { return false; }
    if (S.interacting) { return true; }
    return cache.k === v.k && Math.abs(v.x - cache.x) <= cache.m && Math.abs(v.y - cache.y) <= cache.m;
  }

  function renderCache(dpr, w, h, v) {
    var m = Math.round(Math.max(w, h) / 2);
    var off = (cache && cache.canvas) || document.createElement("canvas");
    off.width = Math.round((w + 2 * m) * dpr); off.height = Math.round((h + 2 * m) * dpr);
    var g = off.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, off.width, off.height);
    drawScene(g, dpr, w + 2 * m, h + 2 * m, { x: v.x + m, y: v.y + m, k: v.k });
    cache = { canvas: off, version: S.version, w: w, h: h, m: m, x: v.x, y: v.y, k: v.k };
  }

  function draw() {
    var t0 = performance.now();
    var c = $("graph-canvas"), dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    var g = c.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, c.width, c.height);
    if (!S.data) { return; }
    var v = S.view, d = S.data, nodes = d.nodes, e = d.edges;
    if (!cacheUsable(v, w, h)) { renderCache(dpr, w, h, v); }
    var s = v.k / cache.k;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.drawImage(cache.canvas, (-cache.x - cache.m) * s + v.x, (-cache.y - cache.m) * s + v.y, (w + 2 * cache.m) * s, (h + 2 * cache.m) * s);
    // The focus (hovered or selected node): its edges, its ring, its label.
    var focus = S.hover >= 0 ? S.hover : (S.selected !== null && S.selected in S.idIndex ? S.idIndex[S.selected] : -1);
    if (focus >= 0 && S.nodeOn[focus]) {
      g.setTransform(dpr * v.k, 0, 0, dpr * v.k, dpr * v.x, dpr * v.y);
      S.incident[focus].forEach(function (j) {
        if (!S.nodeOn[e.s[j]] || !S.nodeOn[e.t[j]]) { return; }
        g.strokeStyle = e.w[j] >= 0 ? "#1d5bc0" : "#c0281d";
        g.lineWidth = (1 + 3 * Math.sqrt(Math.abs(e.w[j]) / S.maxW)) / v.k;
        g.beginPath(); g.moveTo(S.px[e.s[j]], S.py[e.s[j]]); g.lineTo(S.px[e.t[j]], S.py[e.t[j]]); g.stroke();
      });
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      ring(g, v, focus, "#e4572e", 2.5, 3);
      g.font = "bold 11px system-ui, sans-serif";
      g.fillStyle = "#000";
      label(g, nodes[focus], S.px[focus] * v.k + v.x, S.py[focus] * v.k + v.y);
    }
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.font = "11px system-ui, sans-serif";
    var r;
    // Axes: row labels on the left, tokens along the bottom.
    g.fillStyle = "rgba(250,250,250,.92)";
    g.fillRect(0, 0, LEFT * 0.9, h);
    g.fillStyle = "#445";
    for (r = 0; r < d.rows.length; r++) {
      var y = ((d.rows.length - 1 - r) * ROW_H + ROW_H / 2) * v.k + v.y;
      if (y > -10 && y < h + 10) { g.fillText(d.rows[r].label.slice(0, 14), 4, y + 4); }
    }
    g.fillStyle = "rgba(250,250,250,.92)";
    g.fillRect(0, h - 22, w, 22);
    g.fillStyle = "#223";
    for (var cc = 0; cc < S.world.nCols; cc++) {
      var x0 = (S.world.starts[cc] + S.world.widths[cc] / 2) * v.k + v.x;
      if (x0 < LEFT * 0.9 || x0 > w + 40) { continue; }
      var tok = cc < d.tokens.length ? d.tokens[cc] : "all";
      var text = JSON.stringify(tok).slice(1, -1);
      var maxChars = Math.max(3, Math.floor(S.world.widths[cc] * v.k / 7));
      if (text.length > maxChars) { text = text.slice(0, maxChars - 1) + "\u2026"; }
      g.textAlign = "center";
      g.fillText(text, x0, h - 7);
      g.textAlign = "start";
    }
    var dt = performance.now() - t0;
    S.stats.draws.push(dt);
    if (S.stats.draws.length > 600) { S.stats.draws.shift(); }
  }

  var lastFrame = 0;
  function frame(t) {
    if (S.dirty) {
      S.dirty = false;
      draw();
      // Time between successive frames that drew: includes rasterising the previous one.
      if (lastFrame) { S.stats.frames.push(t - lastFrame); if (S.stats.frames.length > 600) { S.stats.frames.shift(); } }
      lastFrame = t;
    } else { lastFrame = 0; }
    requestAnimationFrame(frame);
  }

  // ------------------------------------------------------------------ interaction
  function nearest(mx, my) {
    var best = -1, bestD = 12 * 12, v = S.view;
    if (!S.data) { return -1; }
    for (var k = 0; k < S.visible.length; k++) {
      var i = S.visible[k], dx = S.px[i] * v.k + v.x - mx, dy = S.py[i] * v.k + v.y - my, dd = dx * dx + dy * dy;
      if (dd < bestD) { bestD = dd; best = i; }
    }
    return best;
  }

  function hoverText(n) {
    var lines = [n.label, n.id];
    if (n.pos >= 0 && n.pos < S.data.tokens.length) { lines.push("token " + JSON.stringify(S.data.tokens[n.pos]) + " at position " + n.pos); }
    if (n.kind === "logit") { lines.push(S.data.metricLabel); }
    lines.push("activation " + fmt(n.act) + ", effect " + fmt(n.effect));
    lines.push("influence " + fmt(n.influence));
    return lines.join("\n");
  }

  // While panning or zooming, frames reuse the cached scene; 150 ms after the last move it is redrawn.
  var idleTimer = null;
  function interact() {
    S.interacting = true; S.dirty = true;
    if (idleTimer) { clearTimeout(idleTimer); }
    idleTimer = setTimeout(function () { S.interacting = false; S.dirty = true; }, 150);
  }

  function installCanvas() {
    var c = $("graph-canvas"), card = $("hover-card");
    var drag = null;
    c.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, y: ev.clientY, vx: S.view.x, vy: S.view.y, moved: false }; c.className = "dragging"; });
    window.addEventListener("mouseup", function (ev) {
      if (!drag) { return; }
      var wasDrag = drag.moved;
      drag = null; c.className = "";
      if (wasDrag || ev.target !== c) { writeUrl(); return; }
      var r = c.getBoundingClientRect(), i = nearest(ev.clientX - r.left, ev.clientY - r.top);
      if (i < 0) { return; }
      var id = S.data.nodes[i].id;
      if (ev.shiftKey || ev.ctrlKey || ev.metaKey) { togglePin(id); } else { select(id); }
    });
    c.addEventListener("mousemove", function (ev) {
      var r = c.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      if (drag) {
        var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; }
        S.view.x = drag.vx + dx; S.view.y = drag.vy + dy; interact();
        card.hidden = true;
        return;
      }
      var i = nearest(mx, my);
      if (i !== S.hover) { S.hover = i; S.dirty = true; }
      if (i >= 0) {
        card.textContent = hoverText(S.data.nodes[i]);
        card.hidden = false;
        card.style.left = Math.min(mx + 14, c.clientWidth - 240) + "px";
        card.style.top = (my + 14) + "px";
      } else { card.hidden = true; }
    });
    c.addEventListener("mouseleave", function () { card.hidden = true; if (S.hover !== -1) { S.hover = -1; S.dirty = true; } });
    c.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = c.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      var f = Math.exp(-ev.deltaY * 0.0015), k = Math.max(0.02, Math.min(20, S.view.k * f));
      S.view.x = mx - (mx - S.view.x) * k / S.view.k;
      S.view.y = my - (my - S.view.y) * k / S.view.k;
      S.view.k = k; interact(); writeUrl();
    }, { passive: false });
    window.addEventListener("resize", function () { S.dirty = true; });
  }

  // ------------------------------------------------------------------ annotations
  function saveAnnotations() {
    if (!S.graphId) { return Promise.resolve(); }
    return api("POST", "/api/graphs/" + S.graphId + "/annotations", S.ann).then(function () {
      setProgress("saved");
    }).catch(function (e) { setProgress(e.message, true); });
  }

  function togglePin(id) {
    var k = S.ann.pinned.indexOf(id);
    if (k >= 0) { S.ann.pinned.splice(k, 1); } else { S.ann.pinned.push(id); }
    relayout();
    renderSide();
    if (S.selected === id) { showPanel(id); }
    return saveAnnotations();
  }

  function makeSupernode() {
    var name = $("supernode-name").value.trim();
    if (!S.ann.pinned.length) { setProgress("pin nodes first (shift-click)", true); return; }
    if (!name) { name = "group " + (S.ann.supernodes.length + 1); }
    S.ann.supernodes.push({ name: name, members: S.ann.pinned.slice() });
    $("supernode-name").value = "";
    renderSide();
    S.version += 1; S.dirty = true;
    saveAnnotations();
  }

  function renderSide() {
    var ul = $("pinned-list");
    clear(ul);
    S.ann.pinned.forEach(function (id) {
      var i = S.idIndex[id];
      var li = el("li", "", null, ul);
      li.setAttribute("data-node", id);
      el("span", "", i === undefined ? id : S.data.nodes[i].label + "  " + (S.data.nodes[i].pos >= 0 ? "@" + S.data.nodes[i].pos : ""), li);
      var un = el("button", "", "unpin", li);
      un.type = "button";
      un.addEventListener("click", function (ev) { ev.stopPropagation(); togglePin(id); });
      li.addEventListener("click", function () { select(id); });
    });
    var sl = $("supernode-list");
    clear(sl);
    S.ann.supernodes.forEach(function (sn, k) {
      var li = el("li", S.selected === "super:" + k ? "active" : "", null, sl);
      li.setAttribute("data-supernode", String(k));
      var sw = el("span", "", "\u25cf ", li);
      sw.style.color = SUPER_COLOURS[k % SUPER_COLOURS.length];
      el("span", "", sn.name + " (" + sn.members.length + ")", li);
      var del = el("button", "", "delete", li);
      del.type = "button";
      del.addEventListener("click", function (ev) {
        ev.stopPropagation();
        S.ann.supernodes.splice(k, 1);
        if (S.selected === "super:" + k) { select(null); }
        renderSide(); S.version += 1; S.dirty = true; saveAnnotations();
      });
      li.addEventListener("click", function () { select("super:" + k); });
    });
  }

  // ------------------------------------------------------------------ side panel
  function select(id) {
    S.selected = id;
    S.dirty = true;
    renderSide();
    showPanel(id);
    writeUrl();
  }

  function section(parent, title) { el("h3", "", title, parent); return parent; }

  function showPanel(id) {
    var body = $("panel-body"), empty = $("panel-empty");
    clear(body);
    if (id === null || !S.data) { body.hidden = true; empty.hidden = false; return; }
    body.hidden = false; empty.hidden = true;
    if (id.indexOf("super:") === 0) { supernodePanel(body, Number(id.slice(6))); return; }
    var i = S.idIndex[id];
    if (i === undefined) { return; }
    var n = S.data.nodes[i];
    el("h2", "", n.label, body);
    el("div", "muted small", n.id, body);
    var facts = el("div", "", null, body);
    if (n.pos >= 0 && n.pos < S.data.tokens.length) { el("div", "", "token " + JSON.stringify(S.data.tokens[n.pos]) + " at position " + n.pos, facts); }
    el("div", "", "activation " + fmt(n.act) + " \u00b7 effect on metric " + fmt(n.effect) + " \u00b7 influence " + fmt(n.influence), facts);
    var row = el("div", "row", null, body);
    var pin = el("button", "", isPinned(n.id) ? "Unpin" : "Pin", row);
    pin.type = "button"; pin.id = "pin-button";
    pin.addEventListener("click", function () { togglePin(n.id); });
    if (n.kind !== "feature") { return; }
    var labelRow = el("div", "row", null, body);
    var input = el("input", "", null, labelRow);
    input.id = "label-input"; input.maxLength = 200; input.placeholder = "label this feature";
    input.value = S.ann.labels[n.feature] || "";
    var save = el("button", "", "Save label", labelRow);
    save.type = "button";
    save.addEventListener("click", function () {
      var text = input.value.trim();
      if (text) { S.ann.labels[n.feature] = text; } else { delete S.ann.labels[n.feature]; }
      saveAnnotations().then(function () { return openGraph(S.graphId, { node: n.id, nt: S.nodeT, et: S.edgeT, view: [S.view.x, S.view.y, S.view.k] }); });
    });
    interventionForm(body, [{ site: n.site, index: n.index, pos: n.pos >= 0 ? n.pos : null }]);
    var holder = el("div", "", "loading feature card\u2026", body);
    holder.className = "muted";
    api("GET", "/api/graphs/" + S.graphId + "/feature?node=" + encodeURIComponent(n.id)).then(function (f) {
      if (S.selected !== id) { return; }
      holder.className = "";
      holder.textContent = "";
      featureCard(holder, f);
    }).catch(function (e) { holder.textContent = e.message; holder.className = "error"; });
  }

  function featureCard(box, f) {
    box.setAttribute("data-feature", f.feature);
    el("div", "muted small", f.feature + " \u00b7 active on " + (f.density * 100).toFixed(2) + "% of " + f.nTokens + " corpus tokens \u00b7 max " + fmt(f.maxAct), box);
    section(box, "Top activating examples");
    f.examples.forEach(function (ex) {
      var line = el("div", "example tokens", null, box);
      ex.tokens.forEach(function (t, k) {
        var s = el("span", "tok" + (k === ex.at ? " max" : ""), t, line);
        var a = f.maxAct > 0 ? Math.max(0, Math.min(1, ex.acts[k] / f.maxAct)) : 0;
        s.style.backgroundColor = "rgba(255,138,0," + a.toFixed(3) + ")";
        s.title = fmt(ex.acts[k]);
      });
    });
    if (!f.examples.length) { el("div", "muted", "never active on the corpus", box); }
    section(box, "Activation histogram (positive activations)");
    var hist = el("div", "hist", null, box);
    var maxC = Math.max.apply(null, f.hist.counts.concat([1]));
    f.hist.counts.forEach(function (cnt, k) {
      var bar = el("div", "", null, hist);
      bar.style.height = (100 * cnt / maxC).toFixed(1) + "%";
      bar.title = fmt(f.hist.edges[k]) + "\u2013" + fmt(f.hist.edges[k + 1]) + ": " + cnt;
    });
    section(box, "Direct logit effect");
    var cols = el("div", "cols", null, box);
    [["promotes", f.topLogits, "pos"], ["suppresses", f.bottomLogits, "neg"]].forEach(function (spec) {
      var t = el("table", "small-table", null, cols);
      var hr = el("tr", "", null, t); el("th", "", spec[0], hr); el("th", "", "", hr);
      spec[1].forEach(function (pair) { var tr = el("tr", "", null, t); el("td", "", JSON.stringify(pair[0]), tr); el("td", "num " + spec[2], fmt(pair[1]), tr); });
    });
    section(box, "Upstream and downstream in this graph" + (f.edgeMethod ? " (" + f.edgeMethod + ")" : ""));
    var cols2 = el("div", "cols", null, box);
    [["upstream", f.upstream], ["downstream", f.downstream]].forEach(function (spec) {
      var t = el("table", "small-table", null, cols2);
      var hr = el("tr", "", null, t); el("th", "", spec[0], hr); el("th", "", "weight", hr);
      spec[1].forEach(function (link) {
        var i = S.idIndex[link.id], tr = el("tr", "", null, t);
        var name = el("td", "link", i === undefined ? link.id : S.data.nodes[i].label + (S.data.nodes[i].pos >= 0 ? " @" + S.data.nodes[i].pos : ""), tr);
        name.title = link.id;
        name.addEventListener("click", function () { select(link.id); });
        el("td", "num " + (link.weight >= 0 ? "pos" : "neg"), fmt(link.weight), tr);
      });
    });
    acrossTables(box, f);
  }

  function acrossTables(box, f) {
    if (!f.acrossUp.length && !f.acrossDown.length) { return; }
    section(box, "Across layers, on its top " + f.acrossPrompts + " corpus prompts");
    var cols = el("div", "cols", null, box);
    [["upstream", f.acrossUp], ["downstream", f.acrossDown]].forEach(function (spec) {
      var t = el("table", "small-table", null, cols);
      t.setAttribute("data-across", spec[0]);
      var hr = el("tr", "", null, t); el("th", "", spec[0], hr); el("th", "", "weight", hr);
      spec[1].forEach(function (link) {
        var tr = el("tr", "", null, t);
        var name = link.kind === "feature" ? link.site.replace(/^blocks\./, "L").replace(/\.hook_/, " ") + " #" + link.index
          : link.kind === "logit" ? JSON.stringify(link.site) : link.kind + " " + link.site;
        var td = el("td", "", name, tr);
        td.title = link.method;
        el("td", "num " + (link.weight >= 0 ? "pos" : "neg"), fmt(link.weight), tr);
      });
    });
  }

  function supernodePanel(body, k) {
    var sn = S.ann.supernodes[k];
    if (!sn) { return; }
    el("h2", "", sn.name, body);
    el("div", "muted small", "supernode of " + sn.members.length + " nodes", body);
    var ul = el("ul", "list", null, body);
    var targets = [];
    sn.members.forEach(function (id) {
      var i = S.idIndex[id];
      var n = i === undefined ? null : S.data.nodes[i];
      var li = el("li", "", n ? n.label + (n.pos >= 0 ? " @" + n.pos : "") + "  (" + n.kind + ")" : id, ul);
      li.addEventListener("click", function () { select(id); });
      if (n && n.kind === "feature") { targets.push({ site: n.site, index: n.index, pos: n.pos >= 0 ? n.pos : null }); }
    });
    if (targets.length) { interventionForm(body, targets); } else { el("div", "muted", "no feature nodes to intervene on", body); }
  }

  function interventionForm(body, targets) {
    var fs = el("fieldset", "", null, body);
    el("legend", "", "Intervene" + (targets.length > 1 ? " on " + targets.length + " features" : ""), fs);
    var modeL = el("label", "", "mode ", fs);
    var mode = el("select", "", null, modeL);
    mode.id = "iv-mode";
    ["zero", "scale", "clamp"].forEach(function (m) { var o = el("option", "", m, mode); o.value = m; });
    var valL = el("label", "", "value ", fs);
    var value = el("input", "", null, valL);
    value.id = "iv-value"; value.type = "number"; value.step = "any"; value.value = "0";
    mode.addEventListener("change", function () { value.value = mode.value === "scale" ? "2" : "0"; });
    var frL = el("label", "", null, fs);
    var freeze = el("input", "", null, frL);
    freeze.id = "iv-freeze"; freeze.type = "checkbox";
    frL.appendChild(document.createTextNode(" freeze attention"));
    var genL = el("label", "", "tokens ", fs);
    var gen = el("input", "", null, genL);
    gen.id = "iv-tokens"; gen.type = "number"; gen.min = "0"; gen.max = "32"; gen.value = "8";
    var run = el("button", "", "Run", fs);
    run.type = "button"; run.id = "iv-run";
    var out = el("div", "", null, fs);
    out.id = "iv-result";
    run.addEventListener("click", function () {
      out.textContent = "running\u2026";
      out.className = "muted";
      api("POST", "/api/graphs/" + S.graphId + "/intervene", {
        targets: targets, mode: mode.value, value: Number(value.value) || 0,
        freeze_attention: freeze.checked, max_new_tokens: Math.max(0, Math.min(32, Number(gen.value) || 0))
      }).then(function (res) { out.className = ""; out.textContent = ""; interventionResult(out, res); })
        .catch(function (e) { out.className = "error"; out.textContent = e.message; });
    });
  }

  function interventionResult(box, res) {
    var t = el("table", "small-table", null, box);
    t.setAttribute("data-result", "top");
    var hr = el("tr", "", null, t);
    ["token", "clean p", "new p", "\u0394 logit"].forEach(function (h) { el("th", "", h, hr); });
    var seen = {};
    res.newTop.concat(res.cleanTop).forEach(function (r) {
      if (seen[r.token]) { return; }
      seen[r.token] = true;
      var tr = el("tr", "", null, t);
      el("td", "", JSON.stringify(r.token), tr);
      el("td", "num", (r.clean * 100).toFixed(1) + "%", tr);
      el("td", "num", (r.new * 100).toFixed(1) + "%", tr);
      el("td", "num " + (r.logitChange >= 0 ? "pos" : "neg"), fmt(r.logitChange), tr);
    });
    if (res.cleanContinuation.length || res.newContinuation.length) {
      el("div", "muted small", "greedy continuation, clean:", box);
      el("div", "continuation", res.cleanText, box);
      el("div", "muted small", "with the intervention:", box);
      var c = el("div", "continuation", res.newText, box);
      c.setAttribute("data-result", "continuation");
    }
  }

  // ------------------------------------------------------------------ start
  function start() {
    $("prompt-form").addEventListener("submit", submitPrompt);
    $("make-supernode").addEventListener("click", makeSupernode);
    $("reset-view").addEventListener("click", function () { fitView(); writeUrl(); });
    $("node-threshold").addEventListener("input", function () { S.nodeT = Number(this.value) / 100; if (S.data) { relayout(); writeUrl(); } });
    $("edge-threshold").addEventListener("input", function () { S.edgeT = Number(this.value) / 100; if (S.data) { relayout(); writeUrl(); } });
    installCanvas();
    requestAnimationFrame(frame);
    api("GET", "/api/info").then(function (info) {
      S.info = info;
      $("model").textContent = "model: " + info.model + " \u00b7 " + info.sites.length + " dictionaries";
      var sel = $("method");
      info.methods.forEach(function (m) { var o = el("option", "", m, sel); o.value = m; if (m === "attribution") { o.selected = true; } });
      return loadList();
    }).then(function () {
      var u = readUrl();
      if (u.graph) { return openGraph(u.graph, u); }
    }).catch(function (e) { setProgress(e.message, true); });
    window.addEventListener("hashchange", function () {
      var u = readUrl();
      if (u.graph && u.graph !== S.graphId) { openGraph(u.graph, u); }
    });
    document.documentElement.setAttribute("data-ready", "1");
  }

  // For the benchmarks and browser tests: read-only access to the state and draw timings.
  window.featureLensExplorer = { state: S, stats: S.stats, draw: draw };
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
