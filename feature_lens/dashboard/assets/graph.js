// feature-lens: layered graph view (connectome and feature neighbourhoods) and circuitsvis mounts.
// Reads data from <script type="application/json"> elements; builds the DOM with textContent and
// setAttribute only, so no string from the data is ever parsed as HTML.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function tooltip() {
    var tip = document.querySelector(".tip");
    if (!tip) { tip = document.createElement("div"); tip.className = "tip"; document.body.appendChild(tip); }
    return {
      show: function (text, ev) { tip.textContent = text; tip.style.display = "block"; tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; },
      hide: function () { tip.style.display = "none"; }
    };
  }

  function fmt(x) { return Math.abs(x) >= 1000 || (Math.abs(x) < 0.001 && x !== 0) ? x.toExponential(2) : x.toPrecision(3); }

  // data: {nodes: [{id, label, column, columnLabel, row, kind, href, info, fill?, cluster?}], edges: [{s, t, w}]}
  // A node's fill is its cluster's colour when it has one (edges stay coloured by sign).
  function renderGraph(box, data, options) {
    var tip = tooltip();
    if (data.tokens && data.tokens.length) {
      // Token strings are untrusted: textContent only.
      var line = document.createElement("p");
      line.className = "tokens";
      line.setAttribute("data-token-line", "1");
      data.tokens.forEach(function (t, i) {
        var span = document.createElement("span");
        span.className = "tok";
        span.title = "position " + i;
        span.textContent = t;
        line.appendChild(span);
      });
      box.appendChild(line);
    }
    var svg, pos = {}, axis = [];
    if (data.layout === "positions") {
      var laid = positionsLayout(data, options);
      svg = el("svg", { width: laid.width, height: laid.height, role: "img" }, box);
      laid.rowLabels.forEach(function (r) { var t = el("text", { x: 4, y: r.y + 4 }, svg); t.textContent = r.label; });
      laid.columns.forEach(function (c) {
        var t = el("text", { x: c.x, y: laid.height - 6, "text-anchor": "middle", "class": "axis-token" }, svg);
        t.textContent = c.label;
        axis.push({ text: t, pos: c.pos });
      });
      pos = laid.pos;
    } else {
      var columns = {}, colKeys = [];
      data.nodes.forEach(function (n) { if (!(n.column in columns)) { columns[n.column] = []; colKeys.push(n.column); } columns[n.column].push(n); });
      colKeys.sort(function (a, b) { return a - b; });
      var maxRows = 1;
      colKeys.forEach(function (c) { columns[c].sort(function (a, b) { return a.row - b.row; }); maxRows = Math.max(maxRows, columns[c].length); });
      var colW = options.colWidth || 150, rowH = options.rowHeight || 22, top = 30, left = 70;
      var width = left + colKeys.length * colW, height = top + maxRows * rowH + 20;
      svg = el("svg", { width: width, height: height, role: "img" }, box);
      colKeys.forEach(function (c, ci) {
        var nodes = columns[c], x = left + ci * colW + colW / 2;
        var label = el("text", { x: x, y: 14, "text-anchor": "middle" }, svg);
        label.textContent = nodes[0].columnLabel || String(c);
        var offset = top + (maxRows - nodes.length) * rowH / 2;
        nodes.forEach(function (n, ri) { pos[n.id] = { x: x, y: offset + ri * rowH + rowH / 2 }; });
      });
    }
    var maxW = 0;
    data.edges.forEach(function (e) { maxW = Math.max(maxW, Math.abs(e.w)); });
    var edgeLayer = el("g", {}, svg), nodeLayer = el("g", {}, svg);
    var paths = [], byNode = {};
    data.edges.forEach(function (e) {
      var a = pos[e.s], b = pos[e.t];
      if (!a || !b) { return; }
      var mid = (a.x + b.x) / 2;
      var p = el("path", {
        d: "M" + a.x + "," + a.y + " C" + mid + "," + a.y + " " + mid + "," + b.y + " " + b.x + "," + b.y,
        fill: "none", stroke: e.w >= 0 ? "#2f6fd0" : "#d2433a",
        "stroke-width": (0.4 + 4.6 * Math.abs(e.w) / (maxW || 1)).toFixed(2),
        "stroke-opacity": (0.25 + 0.6 * Math.abs(e.w) / (maxW || 1)).toFixed(2)
      }, edgeLayer);
      p.addEventListener("mousemove", function (ev) { tip.show(e.s + " \u2192 " + e.t + "\nweight " + fmt(e.w), ev); });
      p.addEventListener("mouseleave", tip.hide);
      paths.push({ path: p, edge: e });
      (byNode[e.s] = byNode[e.s] || []).push(paths[paths.length - 1]);
      (byNode[e.t] = byNode[e.t] || []).push(paths[paths.length - 1]);
    });
    var maxV = 0;
    data.nodes.forEach(function (n) { maxV = Math.max(maxV, Math.abs(n.value || 0)); });
    var colours = { feature: "#f3c04f", error: "#b9bec8", token: "#8fd19e", logit: "#c79be6" };
    var groups = [];
    data.nodes.forEach(function (n) {
      var p = pos[n.id];
      var g = el("g", { "class": "node" + (n.href ? " link" : ""), transform: "translate(" + p.x + "," + p.y + ")" }, nodeLayer);
      if (n.cluster !== undefined && n.cluster !== null) { g.setAttribute("data-cluster", String(n.cluster)); }
      g.setAttribute("data-id", n.id);
      el("circle", { r: (3 + 5 * Math.abs(n.value || 0) / (maxV || 1)).toFixed(2), fill: n.focus ? "#e4572e" : (n.fill || colours[n.kind] || "#ddd") }, g);
      var t = el("text", { x: 9, y: 3 }, g);
      t.textContent = n.label;
      g.addEventListener("mousemove", function (ev) {
        tip.show(n.info || n.id, ev);
        (byNode[n.id] || []).forEach(function (q) { q.path.setAttribute("stroke-opacity", "1"); });
      });
      g.addEventListener("mouseleave", function () {
        tip.hide();
        (byNode[n.id] || []).forEach(function (q) { q.path.setAttribute("stroke-opacity", (0.25 + 0.6 * Math.abs(q.edge.w) / (maxW || 1)).toFixed(2)); });
      });
      if (n.href) { g.addEventListener("click", function () { window.location.href = n.href; }); }
      groups.push({ g: g, node: n });
    });
    // Node pruning by influence: a node is shown when the nodes ranked above it hold less than
    // the chosen fraction of the total influence (`rank`, computed in Python); edges are shown
    // when both ends are and |weight| reaches the edge threshold.
    var hidden = {}, edgeT = 0;
    function setThreshold(t) {
      edgeT = t;
      var shown = 0;
      paths.forEach(function (q) {
        var on = Math.abs(q.edge.w) >= t && !hidden[q.edge.s] && !hidden[q.edge.t];
        q.path.style.display = on ? "" : "none";
        if (on) { shown += 1; }
      });
      return shown;
    }
    function setNodeFraction(f) {
      var shown = 0;
      hidden = {};
      groups.forEach(function (q) {
        var on = q.node.rank === undefined || q.node.kind === "logit" || q.node.rank < f;
        q.g.style.display = on ? "" : "none";
        if (on) { shown += 1; } else { hidden[q.node.id] = true; }
      });
      setThreshold(edgeT);
      return shown;
    }
    function setPrompt(k) {
      var tokens = (data.prompts || [])[k] || [];
      axis.forEach(function (a) { a.text.textContent = a.pos >= 0 && a.pos < tokens.length ? tokens[a.pos] : a.text.textContent; });
      var line = box.querySelector("[data-token-line]");
      if (line) { Array.prototype.forEach.call(line.children, function (span, i) { if (i < tokens.length) { span.textContent = tokens[i]; } }); }
    }
    return { setThreshold: setThreshold, setNodeFraction: setNodeFraction, setPrompt: setPrompt, maxWeight: maxW, edgeCount: paths.length, nodeCount: groups.length };
  }

  // Connectome layout: x = token position (the metric at the last one; summed-over-positions
  // nodes in a last "all" column), y = site in forward order (tokens at the bottom, the metric on
  // top). Nodes sharing a position and a site sit side by side, most influential first; a
  // column is as wide as its busiest site needs.
  function positionsLayout(data, options) {
    var rowH = options.rowHeight || 46, spacing = 26, pad = 12, left = 96, bottom = 26, top = 8;
    var nPos = (data.tokens || []).length, nRows = (data.rows || []).length || 1;
    var hasAll = data.nodes.some(function (n) { return n.pos < 0 && n.kind !== "logit"; });
    var nCols = Math.max(1, nPos + (hasAll ? 1 : 0));
    function col(n) { return n.kind === "logit" ? Math.max(0, nPos - 1) : (n.pos < 0 ? nPos : n.pos); }
    var cells = {}, maxCount = [];
    for (var c = 0; c < nCols; c++) { maxCount.push(0); }
    data.nodes.forEach(function (n) {
      var key = col(n) + ":" + n.siteRow;
      (cells[key] = cells[key] || []).push(n);
      maxCount[col(n)] = Math.max(maxCount[col(n)], cells[key].length);
    });
    var starts = [], widths = [], x = left;
    for (c = 0; c < nCols; c++) { var w = Math.max(64, maxCount[c] * spacing + 2 * pad); starts.push(x); widths.push(w); x += w; }
    var pos = {};
    Object.keys(cells).forEach(function (key) {
      var members = cells[key].sort(function (a, b) { return (b.value || 0) - (a.value || 0); });
      var cc = Number(key.split(":")[0]), inner = widths[cc] - 2 * pad, step = Math.min(spacing, inner / members.length);
      members.forEach(function (n, k) {
        pos[n.id] = { x: starts[cc] + pad + (inner - members.length * step) / 2 + (k + 0.5) * step, y: top + (nRows - 1 - n.siteRow) * rowH + rowH / 2 };
      });
    });
    var rowLabels = (data.rows || []).map(function (label, r) { return { label: label, y: top + (nRows - 1 - r) * rowH + rowH / 2 }; });
    var columns = [];
    for (c = 0; c < nCols; c++) { columns.push({ x: starts[c] + widths[c] / 2, pos: c < nPos ? c : -1, label: c < nPos ? data.tokens[c] : "all" }); }
    return { pos: pos, width: x + 10, height: top + nRows * rowH + bottom, rowLabels: rowLabels, columns: columns };
  }

  // Index: search, filter by site, sort by a column (numbers numerically).
  function mountIndex() {
    var search = document.getElementById("feature-search");
    var site = document.getElementById("feature-site");
    var tableEl = document.getElementById("feature-table");
    if (!search || !tableEl) { return; }
    var body = tableEl.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    function filter() {
      var q = search.value.toLowerCase(), s = site ? site.value : "", shown = 0;
      rows.forEach(function (r) {
        var on = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) && (!s || r.getAttribute("data-site") === s);
        r.style.display = on ? "" : "none";
        if (on) { shown += 1; }
      });
      var count = document.getElementById("feature-count");
      if (count) { count.textContent = shown + " of " + rows.length + " features"; }
    }
    search.addEventListener("input", filter);
    if (site) { site.addEventListener("change", filter); }
    Array.prototype.forEach.call(tableEl.tHead.rows[0].cells, function (th, k) {
      th.className = (th.className + " sortable").trim();
      var dir = -1;  // the first click sorts ascending
      th.addEventListener("click", function () {
        dir = -dir;
        rows.sort(function (a, b) {
          var x = a.cells[k].getAttribute("data-sort") || a.cells[k].textContent;
          var y = b.cells[k].getAttribute("data-sort") || b.cells[k].textContent;
          var nx = Number(x), ny = Number(y);
          var cmp = isFinite(nx) && isFinite(ny) && x !== "" && y !== "" ? nx - ny : x.localeCompare(y);
          return dir * cmp;
        });
        rows.forEach(function (r) { body.appendChild(r); });
        tableEl.setAttribute("data-sorted", k + ":" + dir);
      });
    });
    filter();
  }

  function mountGraphs() {
    var boxes = document.querySelectorAll("[data-graph]");
    Array.prototype.forEach.call(boxes, function (box) {
      var source = document.getElementById(box.getAttribute("data-graph"));
      if (!source) { return; }
      var data = JSON.parse(source.textContent);
      var view = renderGraph(box, data, { colWidth: Number(box.getAttribute("data-col-width")) || 150 });
      var slider = document.getElementById(box.getAttribute("data-slider") || "");
      var label = document.getElementById(box.getAttribute("data-slider-label") || "");
      if (slider) {
        var update = function () {
          // Quadratic scale: fine control near zero, where most edge weights are.
          var f = Number(slider.value) / 1000, t = view.maxWeight * f * f;
          var shown = view.setThreshold(t);
          if (label) { label.textContent = "|weight| \u2265 " + fmt(t) + ": " + shown + " of " + view.edgeCount + " edges"; }
        };
        slider.addEventListener("input", update);
        update();
      }
      var nodeSlider = document.getElementById(box.getAttribute("data-node-slider") || "");
      var nodeLabel = document.getElementById(box.getAttribute("data-node-label") || "");
      if (nodeSlider && view.setNodeFraction) {
        var updateNodes = function () {
          var f = Number(nodeSlider.value) / 100, shown = view.setNodeFraction(f);
          if (nodeLabel) { nodeLabel.textContent = "top " + Math.round(f * 100) + "% of influence: " + shown + " of " + view.nodeCount + " nodes"; }
          if (slider) { slider.dispatchEvent(new Event("input")); }
        };
        nodeSlider.addEventListener("input", updateNodes);
        updateNodes();
      }
      var switcher = document.getElementById(box.getAttribute("data-prompt-switch") || "");
      if (switcher) { switcher.addEventListener("change", function () { view.setPrompt(Number(switcher.value)); }); }
      box.setAttribute("data-rendered", String(view.edgeCount));
    });
  }

  function mountCircuitsVis() {
    var mounts = document.querySelectorAll("[data-cv]");
    Array.prototype.forEach.call(mounts, function (mount) {
      var source = document.getElementById(mount.getAttribute("data-cv"));
      var CV = window.CircuitsVis;
      if (!source || !CV) { return; }
      CV.render(mount.id, CV.ColoredTokens, JSON.parse(source.textContent));
    });
  }

  window.FeatureLens = { renderGraph: renderGraph };
  function start() { mountGraphs(); mountCircuitsVis(); mountIndex(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
