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
      data.tokens.forEach(function (t, i) {
        var span = document.createElement("span");
        span.className = "tok";
        span.title = "position " + i;
        span.textContent = t;
        line.appendChild(span);
      });
      box.appendChild(line);
    }
    var columns = {}, colKeys = [];
    data.nodes.forEach(function (n) { if (!(n.column in columns)) { columns[n.column] = []; colKeys.push(n.column); } columns[n.column].push(n); });
    colKeys.sort(function (a, b) { return a - b; });
    var maxRows = 1;
    colKeys.forEach(function (c) { columns[c].sort(function (a, b) { return a.row - b.row; }); maxRows = Math.max(maxRows, columns[c].length); });
    var colW = options.colWidth || 150, rowH = options.rowHeight || 22, top = 30, left = 70;
    var width = left + colKeys.length * colW, height = top + maxRows * rowH + 20;
    var svg = el("svg", { width: width, height: height, role: "img" }, box);
    var pos = {};
    colKeys.forEach(function (c, ci) {
      var nodes = columns[c], x = left + ci * colW + colW / 2;
      var label = el("text", { x: x, y: 14, "text-anchor": "middle" }, svg);
      label.textContent = nodes[0].columnLabel || String(c);
      var offset = top + (maxRows - nodes.length) * rowH / 2;
      nodes.forEach(function (n, ri) { pos[n.id] = { x: x, y: offset + ri * rowH + rowH / 2 }; });
    });
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
    data.nodes.forEach(function (n) {
      var p = pos[n.id];
      var g = el("g", { "class": "node" + (n.href ? " link" : ""), transform: "translate(" + p.x + "," + p.y + ")" }, nodeLayer);
      if (n.cluster !== undefined && n.cluster !== null) { g.setAttribute("data-cluster", String(n.cluster)); }
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
    });
    function setThreshold(t) {
      var shown = 0;
      paths.forEach(function (q) { var on = Math.abs(q.edge.w) >= t; q.path.style.display = on ? "" : "none"; if (on) { shown += 1; } });
      return shown;
    }
    return { setThreshold: setThreshold, maxWeight: maxW, edgeCount: paths.length };
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
  function start() { mountGraphs(); mountCircuitsVis(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
