// The backprop explorer. All numbers come from Python (chainrule.viz.html.graph_data):
// this script lays the graph out with Graphviz-in-WebAssembly, replays the recorded backward
// steps, and explains a clicked node. It computes no derivatives of its own.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("graph-data").textContent);
  const V = D.values, S = D.steps, G = D.groups;
  // A step is [node, parent, slot, upstream, local, contribution, after, afterFloat, edgeId].
  const NODE = 0, PARENT = 1, SLOT = 2, UP = 3, LOC = 4, CON = 5, AFTER = 6, AFTERF = 7, EDGE = 8;
  // Forward mode (D.forward): the same positions, for tangents: 0 all zero; 1: the seed ṫ(input) = 1;
  // 1 + k: k nodes done. A forward step is [node, terms, tangent, tangentFloat], a term [input, edgeId,
  // local, tangent(input)].
  const F = D.forward;
  const LAST = (F ? F.steps.length : S.length) + 1; // position 0: all zero; 1: seed grad(root) = 1; 1 + k: k steps done
  // backward() not called yet: every .grad is 0, so the page opens on that (position 0) and its last
  // position shows the replayed grads (what backward() would give) instead of the engine's .grad fields.
  const RAN = D.ran !== false;
  const X = D.exercise; // exercise mode's questions (null: the normal explorer)

  const $ = (id) => document.getElementById(id);
  const graphBox = $("graph");
  let svg = null, base = null, scale = 1, pos = RAN && !F ? LAST : 0, timer = null, selected = null;
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
  const biggest = Math.max(0, ...(F ? [1, ...F.steps.map((s) => Math.abs(s[3]))] : V.map((v) => Math.abs(v.g)))
    .filter(Number.isFinite));
  const WORD = F ? "ṫ " : "grad "; // what a box's grad field shows
  const stepOf = {}; // forward mode: node -> its step
  if (F) F.steps.forEach((s, k) => { stepOf[s[0]] = k; });

  // ---- state at a position: grads as text, straight from the recorded steps --------------------
  function gradsAt(p) {
    const text = V.map(() => "0.0000"), num = V.map(() => 0);
    if (p >= 1) { text[D.root] = "1.0000"; num[D.root] = 1; }
    for (let k = 0; k < p - 1; k++) { text[S[k][PARENT]] = S[k][AFTER]; num[S[k][PARENT]] = S[k][AFTERF]; }
    if (p === LAST && RAN) V.forEach((v, i) => { text[i] = v.grad; num[i] = v.g; }); // the engine's own
    return { text, num };
  }

  // Forward mode: each node's tangent ṫ = d(node)/d(input) at position p, from the recorded steps.
  function tangentsAt(p) {
    const text = V.map(() => "0.0000"), num = V.map(() => 0);
    if (p >= 1) { text[F.wrt] = "1.0000"; num[F.wrt] = 1; }
    for (let k = 0; k < p - 1; k++) { const s = F.steps[k]; text[s[0]] = s[2]; num[s[0]] = s[3]; }
    return { text, num };
  }

  // ---- exercise mode: the learner finds each grad, in the order backward makes them final ------------
  // Python chose the questions (X.ask, in backward's order) and their answers (the replayed grads);
  // here we only compare what is typed with them. `q` is the current question (X.ask.length: done).
  const ex = X && { q: 0, tries: 0, how: false, first: 0, revealed: 0 };
  const askAt = {}; // value index -> its question number
  if (X) X.ask.forEach((a, k) => { askAt[a.i] = k; });
  function known(i) {
    if (ex.q >= X.ask.length || i === X.seed) return true;
    if (i in askAt) return askAt[i] < ex.q;
    return i in X.given && X.given[i] <= ex.q; // a collapsed neuron's output: shown once backward passes it
  }
  function exerciseGrads() {
    const text = V.map((v, i) => (known(i) ? v.r : "?")), num = V.map((v, i) => (known(i) ? v.rg : 0));
    return { text, num };
  }
  // What the learner may type: a plain decimal or exponent number ("4", "-2.0", ".5", "1e-3"), a
  // typographic minus allowed. null for anything else (not counted as a try).
  function parseAnswer(txt) {
    const t = txt.trim().replace(/^\u2212/, "-");
    if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return /^[+-]?(inf|nan)$/i.test(t) ? t.toLowerCase() : null;
    return Number(t);
  }
  // The page shows 4 decimals, so an answer within rounding of the shown grad is right.
  function isRight(typed, a) {
    if (a.answer === null) return typeof typed === "string" && a.text.toLowerCase().startsWith(typed.replace("+", ""));
    return typeof typed === "number" && Math.abs(typed - a.answer) <= 1e-4 * Math.max(1, Math.abs(a.answer)) + 5e-5;
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
    const { text, num } = X ? exerciseGrads() : F ? tangentsAt(pos) : gradsAt(pos);
    for (const id in shown) {
      const s = shown[id];
      if (id.endsWith("op")) continue;
      for (const t of s.texts) {
        const fresh = t.kind === "grad" ? WORD + text[t.value]
          : t.prefix + "data " + V[t.value].data + " " + WORD + text[t.value];
        if (t.el.textContent !== fresh) t.el.textContent = fresh;
        t.el.setAttribute("fill", num[t.value] > 0 ? "#166534" : num[t.value] < 0 ? "#991b1b" : "#111827");
      }
      if (s.texts.length && s.texts[0].kind === "grad") outline(s, num[s.texts[0].value]);
    }
    highlight();
    if (X) { exercise(); if (selected) panel(selected); return; }
    explain(text);
    $("counter").textContent = pos <= 1 ? (pos === 0 ? (F ? "all tangents 0" : "all grads 0") : "seeded")
      : "step " + (pos - 1) + " of " + (LAST - 1);
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
    if (X) {
      if (ex.q >= X.ask.length) return;
      const i = X.ask[ex.q].i;
      focus = mark(V[i].el, "cur");
      // The edges its grad comes back along: dashed while asked, lit once "Show how" shows the terms.
      termsOf[i].forEach((k) => { if (S[k][EDGE]) mark(S[k][EDGE], ex.how ? "flow" : "feed"); });
      if (focus && follow) focus.scrollIntoView({ block: "nearest", inline: "nearest" });
      return;
    }
    if (!follow) return; // the opening view: the engine's result, nothing being processed
    if (F) {
      if (pos === 1) focus = mark(V[F.wrt].el, "cur");
      if (pos >= 2) {
        const s = F.steps[pos - 2], node = s[0];
        focus = mark(V[node].el, "cur");
        if (V[node].el === "v" + node) mark("v" + node + "op", "cur");
        s[1].forEach((t) => { if (t[1]) mark(t[1], "flow"); }); // the tangents it reads come along these
      }
      if (focus) focus.scrollIntoView({ block: "nearest", inline: "nearest" });
      return;
    }
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
    if (F) { box.innerHTML = explainForward(); return; }
    if (!follow && !RAN) {
      box.innerHTML = "<h2>Backprop explorer</h2><p><b><code>backward()</code> has not been called</b> on this " +
        "graph, so every box shows <b>grad 0</b>: each Value's <code>.grad</code> is still 0.</p><p>Press " +
        `<b>Step</b> (or →) to replay what <code>backward()</code> would compute, edge by edge, ${S.length} ` +
        `step${S.length === 1 ? "" : "s"} in all. Click any box for its chain rule.</p>`;
    } else if (!follow) {
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
        (pos === LAST ? done() : "");
    }
  }

  // ---- forward mode: the explanation of the current node -------------------------------------
  function explainForward() {
    const x = esc(name(F.wrt)), root = esc(name(D.root)), n = F.steps.length;
    if (!follow || pos === 0) {
      return `<h2>Forward mode: d/d${esc(dname(F.wrt))}</h2><p>Each box shows its <b>tangent</b> ṫ: how fast ` +
        `the value moves when ${x} moves (d value / d${esc(dname(F.wrt))}). Forward mode pushes tangents from ` +
        `the inputs to the output, in the order the graph was built: ṫ(${x}) = 1, the other inputs 0, then ` +
        "each node ṫ = Σ local × ṫ(input), reading the same local derivatives as backward.</p>" +
        `<p>Press <b>Step</b> (or →): ${n} node${n === 1 ? "" : "s"} to go.</p>`;
    }
    if (pos === 1) {
      return `<h2>Seed</h2><p>${x} moves at rate 1 with itself; the other inputs are held still:</p>` +
        `<div class="math">ṫ(${x}) = 1, every other input ṫ = 0</div>`;
    }
    const s = F.steps[pos - 2], node = s[0], v = V[node];
    const names = s[1].map((t) => `${t[2]} × ṫ(${esc(name(t[0]))})`);
    const nums = s[1].map((t) => `${t[2]} × ${t[3]}`);
    let h = `<h2>Step ${pos - 1} of ${n}</h2><p><b>${esc(name(node))}</b> = ${esc(v.op)}(` +
      `${v.parents.map(name).map(esc).join(", ")}): its tangent from its inputs' tangents.</p>` +
      `<div class="math">ṫ(${esc(name(node))}) = Σ local × ṫ(input)<br>= ${names.join(" + ")}<br>= ` +
      `${nums.join(" + ")} = ${s[2]}</div><p>local = ∂${esc(dname(node))}/∂(input), from the rule ` +
      `<span class="formula">${esc(v.formula)}</span></p>`;
    if (pos === LAST) {
      const c = F.counts, k = F.inputs;
      h += `<p><b>Done.</b> One forward pass gave one derivative: d${esc(dname(D.root))}/d${esc(dname(F.wrt))} = ` +
        `${s[2]}, as backward's grad(${x}) = ${V[F.wrt].r}.</p><p>For the whole gradient over the ${k} input` +
        `${k === 1 ? "" : "s"}, forward mode takes ${k} pass${k === 1 ? "" : "es"} × ${c.per_pass} = <b>${c.forward}` +
        `</b> multiply-adds; reverse mode (<code>${/^[A-Za-z_]\w*$/.test(name(D.root)) ? root : "L"}.backward()` +
        `</code>) gives them all in one pass of <b>${c.reverse}</b>.</p>`;
    }
    return h;
  }

  function forwardPanel(i) {
    const v = V[i], now = tangentsAt(pos).text[i];
    let h = `<h3>${esc(v.label || "(unnamed)")}<span class="badge ${v.kind}">${kindName(v.kind)}</span></h3>` +
      `<table><tr><th>data</th><td class="num">${v.data}</td></tr>` +
      `<tr><th>ṫ now (d/d${esc(dname(F.wrt))})</th><td class="num ${signClass(now)}">${now}</td></tr></table>`;
    if (i === F.wrt) return h + `<p class="hint">The input we differentiate by: its tangent is 1.</p>`;
    if (!v.op) return h + `<p class="hint">${v.kind === "const" ? "A constant" : "Another input, held still"}: ` +
      "its tangent is 0.</p>";
    if (!(i in stepOf)) return h + `<p class="hint">It does not depend on ${esc(name(F.wrt))}: tangent 0.</p>`;
    const s = F.steps[stepOf[i]], done = stepOf[i] < pos - 1;
    return h + `<h2>Forward chain rule</h2><div class="math">ṫ(${esc(name(i))}) = ` +
      s[1].map((t) => `∂${esc(dname(i))}/∂${esc(dname(t[0]))} × ṫ(${esc(name(t[0]))})`).join(" + ") + "<br>= " +
      s[1].map((t) => `${t[2]} × ${t[3]}`).join(" + ") + ` = ${s[2]}</div>` +
      (done ? "" : `<p class="hint">Not computed yet at this step.</p>`);
  }

  // ---- exercise mode: the question card ------------------------------------------------------
  // Built once (so typing is never interrupted by a repaint), then its parts are updated.
  function exerciseCard() {
    const box = $("explain"), root = esc(name(X.seed)), n = X.ask.length;
    box.innerHTML = "<h2>Exercise: backprop by hand</h2>" +
      `<p>Find every grad, from the output back to the inputs, in the order <code>backward()</code> does: ` +
      `each value's grad is final once every value that uses it has its own.</p>` +
      `<p class="seed">Given: <b>grad(${root}) = 1</b>, the seed. ${root} is the output, and its gradient with ` +
      `respect to itself is 1 (nudge ${root} by h and ${root} moves by h).</p>` +
      `<form id="ex-form" autocomplete="off"><label for="ex-answer" id="ex-q"></label> ` +
      `<input id="ex-answer" type="text" inputmode="decimal" spellcheck="false" size="10" aria-label="your answer"> ` +
      `<button id="ex-check" type="submit">Check</button></form>` +
      `<div class="ex-buttons"><button id="ex-how" type="button">Show how</button>` +
      `<button id="ex-reveal" type="button">Reveal</button></div>` +
      `<p id="ex-feedback" aria-live="polite"></p><div id="ex-how-box"></div>` +
      `<p id="ex-score" class="score"></p>` +
      `<p id="ex-done"></p><button id="ex-again" type="button">Start over</button>` +
      `<p class="hint">${n} value${n === 1 ? "" : "s"} to find${Object.keys(X.given).length
        ? "; collapsed neurons are not asked (their grads appear when backward reaches them)" : ""}. ` +
      `Click a box with a grad for its chain rule. Answers are checked to the 4 decimals shown.</p>`;
    $("ex-form").onsubmit = (e) => { e.preventDefault(); check(); };
    $("ex-how").onclick = () => { ex.how = true; paint(); $("ex-answer").focus(); };
    $("ex-reveal").onclick = () => {
      const a = X.ask[ex.q];
      ex.revealed += 1;
      next(`Revealed: grad(${esc(name(a.i))}) = ${a.text}.`, "");
    };
    $("ex-again").onclick = () => {
      Object.assign(ex, { q: 0, tries: 0, how: false, first: 0, revealed: 0 });
      $("ex-feedback").textContent = "";
      paint();
      $("ex-answer").focus();
    };
  }

  function next(note, cls) {
    ex.q += 1; ex.tries = 0; ex.how = false;
    follow = true; // from now on, keep the question's box in view
    const fb = $("ex-feedback");
    fb.innerHTML = note; fb.className = cls;
    $("ex-answer").value = "";
    paint();
    if (ex.q < X.ask.length) $("ex-answer").focus();
  }

  function check() {
    if (ex.q >= X.ask.length) return;
    const a = X.ask[ex.q], typed = parseAnswer($("ex-answer").value), fb = $("ex-feedback");
    if (typed === null) {
      fb.innerHTML = "Type a number, like <b>4</b>, <b>-2.0</b>, <b>0.5</b> or <b>1e-3</b>.";
      fb.className = "wrong";
      return;
    }
    const who = esc(name(a.i));
    if (isRight(typed, a)) {
      if (ex.tries === 0) ex.first += 1;
      next(`Right: grad(${who}) = ${a.text}${ex.tries ? "" : ", first try"}.`, "right");
    } else {
      ex.tries += 1;
      fb.innerHTML = `Wrong: grad(${who}) is not ${esc($("ex-answer").value.trim())}. Try again` +
        (ex.how ? ", or press <b>Reveal</b>." : ", or press <b>Show how</b>.");
      fb.className = "wrong";
      $("ex-answer").select();
    }
  }

  // The chain-rule sum for value i, with every number but the total: what "Show how" reveals. The terms
  // are valuePanel's (upstream × local for each use), from the recorded steps.
  function howTerms(i) {
    const who = esc(dname(i)), ks = termsOf[i];
    const uses = ks.map((k) => `dL/d${esc(dname(S[k][NODE]))} · ∂${esc(dname(S[k][NODE]))}/∂${who}`);
    const nums = ks.map((k) => `${S[k][UP]} × ${S[k][LOC]}`);
    const rules = [...new Set(ks.map((k) => S[k][NODE]))].map((n) =>
      `<li><b>${esc(name(n))}</b> = ${esc(V[n].op)}(${V[n].parents.map(name).map(esc).join(", ")}): ` +
      `rule <span class="formula">${esc(V[n].formula)}</span></li>`).join("");
    return `<p>${esc(name(i))} is used ${ks.length === 1 ? "once" : ks.length + " times"}; each use sends back ` +
      "upstream × local:</p>" +
      `<div class="math">dL/d${who} = ${uses.join(" + ")}<br>= ${nums.join(" + ")}<br>= ?</div><ul class="rules">${rules}</ul>`;
  }

  function exercise() {
    if (!$("ex-form")) exerciseCard();
    const n = X.ask.length, over = ex.q >= n, a = X.ask[ex.q];
    $("counter").textContent = over ? "exercise done" : `question ${ex.q + 1} of ${n}`;
    $("ex-form").hidden = $("ex-how").parentNode.hidden = over;
    $("ex-done").hidden = $("ex-again").hidden = !over;
    if (!over) $("ex-q").innerHTML = `grad(<b>${esc(name(a.i))}</b>) = `;
    $("ex-how-box").innerHTML = !over && ex.how ? howTerms(a.i) : "";
    $("ex-how").disabled = !over && ex.how;
    const finished = over ? n : ex.q;
    $("ex-score").textContent = (finished ? `Score: ${ex.first} of ${finished} right first try` +
      (ex.revealed ? ` · ${ex.revealed} revealed` : "") : "Score: none answered yet") +
      (over ? "" : ` · ${n - ex.q} to go`);
    $("ex-done").innerHTML = over ? `<b>Done.</b> ${n ? "Every box now shows its grad: exactly what " +
      "<code>backward()</code> computes, one chain-rule sum per value." : "The graph is only its output."}` : "";
  }

  function done() {
    if (RAN) return "<p><b>Done.</b> Every grad shown is now the engine's <code>backward()</code> result.</p>";
    const root = name(D.root), call = /^[A-Za-z_]\w*$/.test(root) ? `${esc(root)}.backward()` : "backward()";
    return "<p><b>Done.</b> These are the grads <code>backward()</code> would give; the Values themselves " +
      `still hold 0 until you call <code>${call}</code>.</p>`;
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
    box.innerHTML = F ? forwardPanel(i) : valuePanel(i);
  }

  function valuePanel(i) {
    const v = V[i], hidden = X && !known(i), cur = X ? (hidden ? "?" : v.r) : gradsAt(pos).text[i];
    let h = `<h3>${esc(v.label || "(unnamed)")}<span class="badge ${v.kind}">${kindName(v.kind)}</span></h3>`;
    h += `<table><tr><th>data</th><td class="num">${v.data}</td></tr>` +
      `<tr><th>grad ${X ? "" : "now"}</th><td class="num ${signClass(cur)}">${cur}</td></tr>` +
      (X ? "" : RAN ? `<tr><th>grad (engine)</th><td class="num ${signClass(v.grad)}">${v.grad}</td></tr>`
        : `<tr><th>.grad (no backward yet)</th><td class="num">${v.grad}</td></tr>` +
          `<tr><th>backward() would give</th><td class="num ${signClass(v.r)}">${v.r}</td></tr>`) + "</table>";
    if (v.op) {
      const args = v.parents.map(name).map(esc);
      h += `<h2>Made by op ${esc(v.op)}</h2><p>${esc(name(i))} = ${esc(v.op)}(${args.join(", ")})</p>` +
        `<p>Local derivative rule: <span class="formula">${esc(v.formula)}</span></p><table>` +
        v.parents.map((p, s) => `<tr><th>∂${esc(dname(i))}/∂${esc(dname(p))}</th><td class="num">${s < v.locals.length ? v.locals[s] : "none (no gradient passes)"}</td></tr>`).join("") +
        "</table>";
    } else {
      h += `<p class="hint">A leaf: no op made it, so backward stops here.</p>`;
    }
    h += "<h2>Chain rule</h2>";
    if (hidden) {
      h += `<p class="hint">Not found yet: ${X.ask[ex.q] && X.ask[ex.q].i === i ? "this is the exercise's question"
        : "the exercise asks for it later"}.</p>`;
    } else if (i === D.root) {
      h += `<div class="math">dL/d${esc(dname(i))} = 1 (the output; L is ${esc(name(i))} itself)</div>`;
    } else if (!termsOf[i].length) {
      // Every node of the page leads to the output, so a used node no step reaches is behind a detach.
      h += V.some((v) => v.parents.includes(i))
        ? `<p class="hint">No gradient reaches this value: what uses it lies behind a detach (no gradient passes one), so its grad stays 0.</p>`
        : `<p class="hint">Nothing uses this value, so its grad stays 0.</p>`;
    } else {
      const terms = termsOf[i].map((k) => {
        const s = S[k], done = X || k < pos - 1;
        return `<span class="${done ? "" : "pending"}">${s[UP]} × ${s[LOC]}</span>`;
      });
      const who = termsOf[i].map((k) => `dL/d${esc(dname(S[k][NODE]))} · d${esc(dname(S[k][NODE]))}/d${esc(dname(i))}`);
      h += `<div class="math">dL/d${esc(dname(i))} = Σ dL/dout · dout/d${esc(dname(i))}<br>= ${who.join(" + ")}<br>= ` +
        `${terms.join(" + ")}<br>= ${v.r}</div>`;
      if (!X && termsOf[i].some((k) => k >= pos - 1)) h += `<p class="hint">Grey terms are not added yet at this step.</p>`;
    }
    return h;
  }

  function groupPanel(g) {
    const params = g.members.filter((i) => V[i].kind === "param");
    const open = !X || g.outputs.every(known), gradOf = (i) => (open ? (X ? V[i].r : V[i].grad) : "?");
    let h = `<h3>${esc(g.name)}<span class="badge group">collapsed</span></h3>` +
      `<p>${g.members.length} values inside, ${params.length} of them parameters. Draw it in full with ` +
      `<code>expand=["${esc(g.name)}"]</code>.</p><table>`;
    g.outputs.forEach((o, j) => {
      h += `<tr><th>output ${g.outputs.length > 1 ? j : ""}</th><td class="num">data ${V[o].data}</td><td class="num ${signClass(gradOf(o))}">grad ${gradOf(o)}</td></tr>`;
    });
    h += "</table>";
    if (X) h += `<p class="hint">The exercise does not ask for collapsed neurons: their grads show once backward reaches them.</p>`;
    if (params.length) {
      h += "<h2>Parameters</h2><table>" + params.slice(0, 40).map((i) =>
        `<tr><th>${esc(V[i].label || "?")}</th><td class="num">data ${V[i].data}</td><td class="num ${signClass(gradOf(i))}">grad ${gradOf(i)}</td></tr>`).join("") + "</table>";
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
    if (e.target.tagName === "INPUT" || X) return;
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
  const fitWidth = () => (graphBox.clientWidth - pad()[0]) / base.w;
  const fit = () => Math.min(1.5, fitWidth(), (graphBox.clientHeight - pad()[1]) / base.h);
  // Below this zoom 12pt labels are under ~9.5px: the first view scrolls rather than shrink further.
  const READABLE = 0.6;
  // The first view: the whole graph if it fits at a readable zoom; else its whole width (a tall graph
  // scrolls down only); else readable, scrolled to the output.
  function firstZoom() {
    const whole = fit(), wide = Math.min(1.25, fitWidth());
    if (whole >= READABLE) return Math.min(1.25, whole);
    return wide >= READABLE ? wide : Math.max(READABLE, 0.7);
  }
  // Scroll the graph (and only the graph, never the page) so that box `id` is level with the middle,
  // and far enough sideways that all of it shows (the output is the rightmost box: without this a wide
  // graph would open on its inputs, the output cut off at the side panel).
  function level(id) {
    const el = shown[id] && shown[id].g;
    if (!el) return;
    const r = el.getBoundingClientRect(), b = graphBox.getBoundingClientRect(), margin = 12;
    graphBox.scrollTop += r.top + r.height / 2 - (b.top + b.height / 2);
    const right = b.left + graphBox.clientWidth - margin;
    if (r.right > right) graphBox.scrollLeft += Math.min(r.right - right, r.left - (b.left + margin));
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
  if (X) document.body.classList.add("exercise");
  paint();
  const t0 = performance.now();
  Viz.instance().then((viz) => {
    svg = viz.renderSVGElement(measured(D.dot));
    const vb = svg.viewBox.baseVal;
    base = { w: vb.width * 4 / 3, h: vb.height * 4 / 3 }; // Graphviz works in points; 1pt = 4/3 px
    graphBox.replaceChildren(svg);
    indexSvg();
    drawBundles();
    zoom(firstZoom());
    level(V[D.root].el); // a tall graph opens at its output, where backward starts
    paint();
    document.body.dataset.ready = "1";
    document.body.dataset.layoutMs = String(Math.round(performance.now() - t0));
  }).catch((err) => {
    graphBox.innerHTML = `<p class="error">Could not lay out the graph: ${esc(err && err.message || err)}</p>`;
    document.body.dataset.ready = "error";
  });
})();
