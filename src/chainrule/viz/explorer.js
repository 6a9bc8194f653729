// The backprop explorer. All numbers come from Python (chainrule.viz.html.graph_data):
// this script lays the graph out with Graphviz-in-WebAssembly, replays the recorded backward
// steps, and explains a clicked node. It computes no derivatives of its own.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("graph-data").textContent);
  const V = D.values, S = D.steps, G = D.groups;
  // A step is [node, parent, slot, upstream, local, contribution, after, afterFloat, edgeId].
  const NODE = 0, PARENT = 1, SLOT = 2, UP = 3, LOC = 4, CON = 5, AFTER = 6, AFTERF = 7, EDGE = 8;
  const LAST = S.length + 1; // position 0: all zero; 1: seed grad(root) = 1; 1 + k: k steps done

  const $ = (id) => document.getElementById(id);
  const graphBox = $("graph");
  let svg = null, base = null, scale = 1, pos = LAST, timer = null, selected = null;
  let follow = false; // scroll the processed node into view once the user starts stepping
  const shown = {};   // element id -> {shape, texts: [{el, value, kind}]}
  const lit = [];     // elements currently highlighted
  const B = D.bundles || [], bundleOf = {}; // edge id -> the bundle drawn in its place
  B.forEach((b, k) => b.edges.forEach((e) => { bundleOf[e] = k; }));

  const name = (i) => V[i].label || (V[i].op ? V[i].op + ":" + V[i].data : V[i].data);
  // After ∂ or d, a name like "x1*w1 + x2*w2" needs brackets: ∂n/∂(x1*w1 + x2*w2), not ∂n/∂x1*w1 + x2*w2.
  const dname = (i) => (/^[\w.]+$/.test(name(i)) ? name(i) : "(" + name(i) + ")");
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const signClass = (txt) => (parseFloat(txt) > 0 ? "pos" : parseFloat(txt) < 0 ? "neg" : "");

  // Per-node index of the steps that feed it (its chain-rule terms), computed once.
  const termsOf = V.map(() => []);
  S.forEach((s, k) => termsOf[s[PARENT]].push(k));
  const biggest = Math.max(0, ...V.map((v) => Math.abs(v.g)).filter(Number.isFinite));

  // ---- state at a position: grads as text, straight from the recorded steps --------------------
  function gradsAt(p) {
    const text = V.map(() => "0.0000"), num = V.map(() => 0);
    if (p >= 1) { text[D.root] = "1.0000"; num[D.root] = 1; }
    for (let k = 0; k < p - 1; k++) { text[S[k][PARENT]] = S[k][AFTER]; num[S[k][PARENT]] = S[k][AFTERF]; }
    if (p === LAST) V.forEach((v, i) => { text[i] = v.grad; num[i] = v.g; }); // the engine's own
    return { text, num };
  }

  // ---- drawing -----------------------------------------------------------------------------
  function indexSvg() {
    svg.querySelectorAll("title").forEach((t) => t.remove()); // graphviz's hover titles are node ids
    svg.querySelectorAll("g.node").forEach((g) => {
      const texts = [];
      const group = G[g.id];
      g.querySelectorAll("text").forEach((t) => {
        const s = t.textContent;
        if (group && group.outputs.length > 1) {
          const m = /^(\d+): /.exec(s);
          if (m) texts.push({ el: t, value: group.outputs[+m[1]], kind: "row", prefix: m[0] });
        } else if (s.startsWith("grad ")) {
          const i = group ? group.outputs[0] : +g.id.slice(1);
          texts.push({ el: t, value: i, kind: "grad" });
        }
      });
      // Only the last "grad ..." text of a box is its grad field (a label could start with "grad").
      const grads = texts.filter((t) => t.kind === "grad");
      const keep = texts.filter((t) => t.kind !== "grad").concat(grads.slice(-1));
      shown[g.id] = { g, shape: g.querySelector(":scope > polygon, :scope > path, :scope > ellipse"), texts: keep };
      g.addEventListener("click", () => select(g.id));
    });
  }

  function outline(s, g) {
    if (!s.shape) return;
    const share = biggest > 0 ? Math.min(1, Math.sqrt(Math.abs(g) / biggest)) : 0;
    const color = g > 0 ? "#15803d" : g < 0 ? "#b91c1c" : "#6b7280";
    s.shape.setAttribute("stroke", color);
    s.shape.setAttribute("stroke-width", (1 + 2.5 * (g === 0 ? 0 : share)).toFixed(2));
    // The lines between a record's fields: same colour, thin, so the outline stands out.
    s.g.querySelectorAll(":scope > polyline").forEach((l) => {
      l.setAttribute("stroke", color); l.setAttribute("stroke-width", "1");
    });
  }

  function paint() {
    const { text, num } = gradsAt(pos);
    for (const id in shown) {
      const s = shown[id];
      if (id.endsWith("op")) continue;
      for (const t of s.texts) {
        const fresh = t.kind === "grad" ? "grad " + text[t.value]
          : t.prefix + "data " + V[t.value].data + " grad " + text[t.value];
        if (t.el.textContent !== fresh) t.el.textContent = fresh;
        t.el.setAttribute("fill", num[t.value] > 0 ? "#166534" : num[t.value] < 0 ? "#991b1b" : "#111827");
      }
      if (s.texts.length && s.texts[0].kind === "grad") outline(s, num[s.texts[0].value]);
    }
    highlight();
    explain(text);
    $("counter").textContent = pos <= 1 ? (pos === 0 ? "all grads 0" : "seeded")
      : "step " + (pos - 1) + " of " + S.length;
    $("reset").disabled = $("back").disabled = pos === 0;
    $("step").disabled = pos === LAST;
    $("play").disabled = pos === LAST && !timer;
    if (selected) panel(selected);
  }

  function mark(id, cls) {
    // An edge hidden in a closed bundle lights up its bundle instead.
    const bundle = id in bundleOf && !B[bundleOf[id]].open ? B[bundleOf[id]].el : null;
    const el = bundle || (id && (shown[id] ? shown[id].g : svg.getElementById(id)));
    if (bundle && bundle.classList.contains(cls)) return el;
    if (el) { el.classList.add(cls); lit.push([el, cls]); }
    return el;
  }

  function highlight() {
    while (lit.length) { const [el, cls] = lit.pop(); el.classList.remove(cls); }
    if (!svg) return;
    let focus = null;
    if (!follow) return; // the opening view: the engine's result, nothing being processed
    if (pos === 1) focus = mark(V[D.root].el, "cur");
    if (pos >= 2) {
      const s = S[pos - 2], node = s[NODE];
      focus = mark(V[node].el, "cur");
      if (V[node].el === "v" + node) mark("v" + node + "op", "cur");
      S.forEach((t) => { if (t[NODE] === node && t !== s && t[EDGE]) mark(t[EDGE], "feed"); });
      if (s[EDGE]) mark(s[EDGE], "flow");
      if (V[s[PARENT]].el !== V[node].el) mark(V[s[PARENT]].el, "tgt");
    }
    if (focus && follow) focus.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  // ---- the explanation of the current step --------------------------------------------------
  function explain(text) {
    const box = $("explain");
    if (!follow) {
      box.innerHTML = "<h2>Backprop explorer</h2><p>Every box shows its value's <b>data</b> and its <b>grad</b> " +
        "after the engine's <code>backward()</code>.</p><p>Press <b>Reset</b>, then <b>Step</b> (or →) to replay " +
        `backward edge by edge, ${S.length} step${S.length === 1 ? "" : "s"} in all. Click any box for its chain rule.</p>`;
    } else if (pos === 0) {
      box.innerHTML = "<h2>Backward, step by step</h2><p>Every grad is 0. Press <b>Step</b> to start at the output.</p>";
    } else if (pos === 1) {
      box.innerHTML = "<h2>Seed</h2><p>The output's gradient with respect to itself is 1:</p>" +
        `<div class="math">grad(${esc(name(D.root))}) = 1.0000</div>` +
        "<p>From here each step sends a gradient back along one edge.</p>";
    } else {
      const s = S[pos - 2], n = s[NODE], p = s[PARENT], k = pos - 1;
      const twice = V[n].parents.filter((q) => q === p).length > 1;
      box.innerHTML = `<h2>Step ${k} of ${S.length}</h2>` +
        `<p>Processing <b>${esc(name(n))}</b> = ${esc(V[n].op)}(${V[n].parents.map(name).map(esc).join(", ")}): ` +
        `its grad goes back to input ${s[SLOT] + 1}, <b>${esc(name(p))}</b>.</p>` +
        `<div class="math">grad(${esc(name(p))}) += local × upstream<br>= ${s[LOC]} × ${s[UP]} = ${s[CON]}<br>→ grad(${esc(name(p))}) = ${s[AFTER]}</div>` +
        `<p>local = ∂${esc(dname(n))}/∂${esc(dname(p))}, from the rule <span class="formula">${esc(V[n].formula)}</span></p>` +
        (twice ? `<p><b>${esc(name(p))}</b> is used twice by this op, so it receives two contributions that add up.</p>` : "") +
        (pos === LAST ? "<p><b>Done.</b> Every grad shown is now the engine's <code>backward()</code> result.</p>" : "");
    }
  }

  // ---- the node panel -----------------------------------------------------------------------
  function select(id) {
    if (selected && shown[selected]) shown[selected].g.classList.remove("selected");
    selected = id;
    if (shown[id]) shown[id].g.classList.add("selected");
    panel(id);
  }

  function panel(id) {
    const box = $("panel");
    if (G[id] && G[id].collapsed) { box.innerHTML = groupPanel(G[id]); return; }
    const i = +id.replace(/^v/, "").replace(/op$/, "");
    box.innerHTML = valuePanel(i);
  }

  function valuePanel(i) {
    const v = V[i], cur = gradsAt(pos).text[i];
    let h = `<h3>${esc(v.label || "(unnamed)")}<span class="badge ${v.kind}">${kindName(v.kind)}</span></h3>`;
    h += `<table><tr><th>data</th><td class="num">${v.data}</td></tr>` +
      `<tr><th>grad now</th><td class="num ${signClass(cur)}">${cur}</td></tr>` +
      `<tr><th>grad (engine)</th><td class="num ${signClass(v.grad)}">${v.grad}</td></tr></table>`;
    if (v.op) {
      const args = v.parents.map(name).map(esc);
      h += `<h2>Made by op ${esc(v.op)}</h2><p>${esc(name(i))} = ${esc(v.op)}(${args.join(", ")})</p>` +
        `<p>Local derivative rule: <span class="formula">${esc(v.formula)}</span></p><table>` +
        v.parents.map((p, s) => `<tr><th>∂${esc(dname(i))}/∂${esc(dname(p))}</th><td class="num">${v.locals[s]}</td></tr>`).join("") +
        "</table>";
    } else {
      h += `<p class="hint">A leaf: no op made it, so backward stops here.</p>`;
    }
    h += "<h2>Chain rule</h2>";
    if (i === D.root) {
      h += `<div class="math">dL/d${esc(dname(i))} = 1 (the output; L is ${esc(name(i))} itself)</div>`;
    } else if (!termsOf[i].length) {
      h += `<p class="hint">Nothing uses this value, so its grad stays 0.</p>`;
    } else {
      const terms = termsOf[i].map((k) => {
        const s = S[k], done = k < pos - 1;
        return `<span class="${done ? "" : "pending"}">${s[UP]} × ${s[LOC]}</span>`;
      });
      const who = termsOf[i].map((k) => `dL/d${esc(dname(S[k][NODE]))} · d${esc(dname(S[k][NODE]))}/d${esc(dname(i))}`);
      h += `<div class="math">dL/d${esc(dname(i))} = Σ dL/dout · dout/d${esc(dname(i))}<br>= ${who.join(" + ")}<br>= ` +
        `${terms.join(" + ")}<br>= ${v.grad}</div>`;
      if (termsOf[i].some((k) => k >= pos - 1)) h += `<p class="hint">Grey terms are not added yet at this step.</p>`;
    }
    return h;
  }

  function groupPanel(g) {
    const params = g.members.filter((i) => V[i].kind === "param");
    let h = `<h3>${esc(g.name)}<span class="badge group">collapsed</span></h3>` +
      `<p>${g.members.length} values inside, ${params.length} of them parameters. Draw it in full with ` +
      `<code>expand=["${esc(g.name)}"]</code>.</p><table>`;
    g.outputs.forEach((o, j) => {
      h += `<tr><th>output ${g.outputs.length > 1 ? j : ""}</th><td class="num">data ${V[o].data}</td><td class="num ${signClass(V[o].grad)}">grad ${V[o].grad}</td></tr>`;
    });
    h += "</table>";
    if (params.length) {
      h += "<h2>Parameters</h2><table>" + params.slice(0, 40).map((i) =>
        `<tr><th>${esc(V[i].label || "?")}</th><td class="num">data ${V[i].data}</td><td class="num ${signClass(V[i].grad)}">grad ${V[i].grad}</td></tr>`).join("") + "</table>";
      if (params.length > 40) h += `<p class="hint">… and ${params.length - 40} more.</p>`;
    }
    return h;
  }

  const kindName = (k) => ({ param: "parameter", input: "input", const: "constant", value: "computed" }[k] || k);

  // ---- controls -----------------------------------------------------------------------------
  function go(p) { pos = Math.max(0, Math.min(LAST, p)); follow = true; paint(); }
  function stop() { if (timer) { clearInterval(timer); timer = null; } $("play").textContent = "▶▶ Play"; }
  $("reset").onclick = () => { stop(); go(0); };
  $("back").onclick = () => { stop(); go(pos - 1); };
  $("step").onclick = () => { stop(); go(pos + 1); };
  $("play").onclick = () => {
    if (timer) { stop(); paint(); return; }
    if (pos === LAST) go(0);
    $("play").textContent = "‖ Pause";
    timer = setInterval(() => { if (pos >= LAST) { stop(); paint(); } else go(pos + 1); },
      1000 / +$("speed").value);
  };
  $("speed").oninput = () => { if (timer) { stop(); $("play").onclick(); } };
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT") return;
    if (e.key === "ArrowRight") $("step").click();
    if (e.key === "ArrowLeft") $("back").click();
  });

  function zoom(z) {
    if (!svg) return;
    scale = Math.max(0.05, Math.min(4, z));
    svg.setAttribute("width", (base.w * scale).toFixed(1));
    svg.setAttribute("height", (base.h * scale).toFixed(1));
  }
  const pad = () => { const c = getComputedStyle(graphBox); return [parseFloat(c.paddingLeft) + parseFloat(c.paddingRight),
    parseFloat(c.paddingTop) + parseFloat(c.paddingBottom)]; };
  const fit = () => { const [w, h] = pad();
    return Math.min(1.5, (graphBox.clientWidth - w) / base.w, (graphBox.clientHeight - h) / base.h); };
  // Scroll the graph (and only the graph, never the page) so that box `id` is level with the middle.
  function level(id) {
    const el = shown[id] && shown[id].g;
    if (!el) return;
    const r = el.getBoundingClientRect(), b = graphBox.getBoundingClientRect();
    graphBox.scrollTop += r.top + r.height / 2 - (b.top + b.height / 2);
  }
  $("zoom-in").onclick = () => zoom(scale * 1.25);
  $("zoom-out").onclick = () => zoom(scale / 1.25);
  $("zoom-fit").onclick = () => zoom(fit());

  // ---- bundles: many edges between two layers drawn as one band with a count --------------------
  // The edges stay in the layout (they rank the layers) but are hidden; the band covers the gap
  // between the two columns of boxes, and a click on it shows or hides the edges themselves.
  function drawBundles() {
    const NS = "http://www.w3.org/2000/svg", graph = svg.querySelector("g.graph");
    const extent = (ids) => {
      const boxes = ids.map((id) => shown[id].g.getBBox());
      const x0 = Math.min(...boxes.map((b) => b.x)), y0 = Math.min(...boxes.map((b) => b.y));
      return { x0, y0, x1: Math.max(...boxes.map((b) => b.x + b.width)),
        y1: Math.max(...boxes.map((b) => b.y + b.height)) };
    };
    B.forEach((b, k) => {
      const s = extent(b.from), t = extent(b.to);
      const g = document.createElementNS(NS, "g"), band = document.createElementNS(NS, "polygon");
      const label = document.createElementNS(NS, "text"), title = document.createElementNS(NS, "title");
      g.setAttribute("class", "bundle");
      g.id = "bundle" + k;
      band.setAttribute("points", `${s.x1},${s.y0} ${t.x0},${t.y0} ${t.x0},${t.y1} ${s.x1},${s.y1}`);
      const x = (s.x1 + t.x0) / 2, y = (Math.max(s.y0, t.y0) + Math.min(s.y1, t.y1)) / 2;
      label.setAttribute("transform", `translate(${x},${y}) rotate(-90)`);
      label.setAttribute("text-anchor", "middle");
      label.setAttribute("dominant-baseline", "central");
      title.textContent = `${b.edges.length} edges from ${b.from.length} boxes to ${b.to.length}`;
      g.append(title, band, label);
      graph.insertBefore(g, graph.querySelector("g.node, g.edge"));
      g.addEventListener("click", () => openBundle(k, !b.open));
      b.el = g; b.label = label;
      openBundle(k, false);
    });
  }

  function openBundle(k, open) {
    const b = B[k];
    b.open = open;
    b.el.classList.toggle("open", open);
    b.edges.forEach((e) => { const el = svg.getElementById(e); if (el) el.classList.toggle("shown", open); });
    b.label.textContent = `${b.edges.length} edges · click to ${open ? "hide" : "show"}`;
    highlight();
  }

  // ---- boxes as wide as their text ----------------------------------------------------------
  // Graphviz sizes a box from its own table of Helvetica's widths, but the browser draws the text in
  // whatever font it finds for "Helvetica" (DejaVu Sans, 10-15% wider, where Helvetica and its
  // metric twins are missing). So measure every line of every box in the font the SVG will use, and
  // ask Graphviz for boxes at least that wide (a node's width is a minimum; 72 points an inch).
  function measured(dot) {
    const NS = "http://www.w3.org/2000/svg";
    const probe = document.createElementNS(NS, "svg"), text = document.createElementNS(NS, "text");
    probe.setAttribute("style", "position: absolute; visibility: hidden; width: 0; height: 0");
    text.setAttribute("font-family", "Helvetica,sans-Serif"); // as Graphviz writes fontname=Helvetica
    probe.appendChild(text);
    document.body.appendChild(probe);
    const widths = [];
    for (const id in D.texts) {
      const [size, least, lines] = D.texts[id];
      text.setAttribute("font-size", size);
      let w = 0;
      for (const line of lines) { text.textContent = line; w = Math.max(w, text.getComputedTextLength()); }
      // A record's field has 8pt of padding each side (Graphviz's PAD). An op's oval must hold the
      // text's corners, not just its middle: about 1/0.8 of the text's width at these heights.
      const need = id.endsWith("op") ? w / 0.8 + 4 : w + 16 + 2;
      widths.push(`"${id}" [width=${Math.max(least, need / 72).toFixed(3)}]`);
    }
    probe.remove();
    return dot.replace(/\}\s*$/, widths.join("\n") + "\n}\n");
  }

  // ---- start ----------------------------------------------------------------------------------
  paint();
  const t0 = performance.now();
  Viz.instance().then((viz) => {
    svg = viz.renderSVGElement(measured(D.dot));
    const vb = svg.viewBox.baseVal;
    base = { w: vb.width * 4 / 3, h: vb.height * 4 / 3 }; // Graphviz works in points; 1pt = 4/3 px
    graphBox.replaceChildren(svg);
    indexSvg();
    drawBundles();
    // Readable first: fit the window, but never shrink 12pt labels below ~11px (scroll instead).
    zoom(Math.max(0.7, Math.min(1.25, fit())));
    level(V[D.root].el); // a tall graph opens at its output, where backward starts
    paint();
    document.body.dataset.ready = "1";
    document.body.dataset.layoutMs = String(Math.round(performance.now() - t0));
  }).catch((err) => {
    graphBox.innerHTML = `<p class="error">Could not lay out the graph: ${esc(err && err.message || err)}</p>`;
    document.body.dataset.ready = "error";
  });
})();
