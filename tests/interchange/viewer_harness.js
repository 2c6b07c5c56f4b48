// Runs circuit-tracer's own viewer data formatting (util-cg.js's formatData) on an exported graph
// under Node, with small stand-ins for the d3 helpers it calls, and prints what the viewer would
// hold. Usage: node viewer_harness.js UTIL_CG_JS GRAPH_JSON PRUNING_THRESHOLD
"use strict";
const fs = require("fs");
const vm = require("vm");

const [source, graphPath, threshold] = process.argv.slice(2);
const params = new Map();
const groupBy = (items, key) => {
  const groups = new Map();
  for (const item of items) {
    const k = key(item);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(item);
  }
  return [...groups.values()].map((group) => Object.assign(group, { key: group[0] && key(group[0]) }));
};
const d3 = {
  max: (xs, f) => {
    const vals = xs.map(f).filter((v) => v != null && !Number.isNaN(v));
    return vals.length ? Math.max(...vals) : undefined;
  },
  sum: (xs, f) => xs.reduce((a, x) => a + (+f(x) || 0), 0),
  sort: (xs, f) => [...xs].sort((a, b) => (f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0)),
  nestBy: groupBy,
};
const util = {
  params: { get: (k) => params.get(k), set: (k, v) => params.set(k, v) },
  ppToken: (t) => t,
};
const context = { console, d3, util };
context.window = context;
vm.createContext(context);
vm.runInContext(fs.readFileSync(source, "utf8"), context);

const data = JSON.parse(fs.readFileSync(graphPath, "utf8"));
const visState = { pinnedIds: [], clerps: new Map(), pruningThreshold: threshold };
context.window.utilCg.formatData(data, visState).then((out) => {
  const logit = out.nodes.find((d) => d.feature_type === "logit");
  process.stdout.write(
    JSON.stringify({
      nodes: out.nodes.map((d) => d.node_id),
      links: out.links.map((d) => [d.source, d.target, d.weight]),
      features: out.features.length,
      logitPct: logit ? logit.logitPct : null,
      logitToken: logit ? logit.logitToken : null,
      featureIds: out.nodes.map((d) => d.featureId),
      streams: out.nodes.map((d) => d.streamIdx),
    }),
  );
});
