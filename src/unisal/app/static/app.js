// The labelling page: one patch at a time, class buttons and keys, progress and rounds.
// Class names, file names, annotators, reasons and errors come from data: they reach the page
// only as text nodes (el(), textContent), never as markup, and the server's CSP forbids inline
// script besides.
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token") || sessionStorage.getItem("unisal-token") || "";
sessionStorage.setItem("unisal-token", token);
if (params.has("token")) history.replaceState(null, "", location.pathname);  // keep the token out of the address bar
const $ = (id) => document.getElementById(id);
let classes = [];
let current = null;
let grid = false;
let batch = [];
let selected = 0;

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", "X-Unisal-Token": token },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const detail = await response.json().catch(() => ({}));
    throw new Error(typeof detail.detail === "string" ? detail.detail : `HTTP ${response.status}`);
  }
  return response.json();
}

function annotator() {
  const name = $("annotator").value.trim();
  if (name) localStorage.setItem("unisal-annotator", name);
  return name;
}

function say(text) { $("message").textContent = text; }

// An element with attributes and children; a string child becomes a text node, never markup.
function build(node, attributes, children) {
  for (const [key, value] of Object.entries(attributes)) {
    if (/^on/i.test(key)) throw new Error(`no inline handlers: ${key}`);
    node.setAttribute(key, String(value));
  }
  node.append(...children.map((c) => (c instanceof Node ? c : String(c))));
  return node;
}
const el = (tag, attributes = {}, ...children) => build(document.createElement(tag), attributes, children);
const svgEl = (tag, attributes = {}, ...children) =>
  build(document.createElementNS("http://www.w3.org/2000/svg", tag), attributes, children);

function drawButtons() {
  $("buttons").replaceChildren(...classes.map((name, k) => {
    const b = el("button", {}, el("kbd", {}, k + 1), name);
    b.dataset.label = name;
    b.addEventListener("click", () => label(name));
    return b;
  }));
}

function drawCurve(rounds) {
  const svg = $("curve");
  const points = rounds.filter((r) => r.metrics && typeof r.metrics.accuracy === "number");
  if (!points.length) {
    svg.replaceChildren(svgEl("text", { x: 10, y: 80, "font-size": 12 }, "no metrics yet"));
    return;
  }
  const maxN = Math.max(...points.map((r) => r.n_labels), 1);
  const x = (n) => 30 + (260 * n) / maxN;
  const y = (a) => 140 - 120 * a;
  const path = points.map((r, i) => `${i ? "L" : "M"}${x(r.n_labels)},${y(r.metrics.accuracy)}`).join(" ");
  svg.replaceChildren(
    svgEl("line", { x1: 30, y1: 140, x2: 290, y2: 140, stroke: "#999" }),
    svgEl("line", { x1: 30, y1: 20, x2: 30, y2: 140, stroke: "#999" }),
    svgEl("text", { x: 2, y: 24, "font-size": 10 }, "1.0"),
    svgEl("text", { x: 2, y: 144, "font-size": 10 }, "0"),
    svgEl("text", { x: 240, y: 156, "font-size": 10 }, "labels"),
    svgEl("path", { d: path, fill: "none", stroke: "#1565c0", "stroke-width": 2 }),
    ...points.map((r) => svgEl("circle", { cx: x(r.n_labels), cy: y(r.metrics.accuracy), r: 3, fill: "#1565c0" },
      svgEl("title", {}, `${r.n_labels} labels: ${r.metrics.accuracy.toFixed(3)}`))),
  );
}

async function refresh() {
  const state = await api("/api/state");
  if (!classes.length) { classes = state.classes; drawButtons(); }
  const c = state.counts;
  $("progress").textContent = `${c.labelled} labelled of ${c.images} · ${c.queue} queued` + (c.disagreements ? ` · ${c.disagreements} to review` : "");
  $("per-class").replaceChildren(...Object.entries(c.per_class).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
  $("rounds").replaceChildren(...state.rounds.map((r) => {
    const mm = r.metrics || {};
    const m = (typeof mm.accuracy === "number" ? `, accuracy ${mm.accuracy.toFixed(3)}` : "")
      + (typeof mm.accuracy_low === "number" ? ` (95 % ${mm.accuracy_low.toFixed(3)}–${mm.accuracy_high.toFixed(3)}, ${mm.source})` : "")
      + (typeof mm.stop_kappa === "number" ? `, kappa vs previous round ${mm.stop_kappa.toFixed(3)}` : "");
    const g = r.metrics && r.metrics.guard_fallback ? " · the co-trained model looked degenerate: this round uses the supervised one" : "";
    return el("li", {}, `${r.status}, ${r.n_labels} labels${m}${g}${r.error ? " — " + r.error : ""}`);
  }));
  drawCurve(state.rounds);
  $("review-count").textContent = c.disagreements ? `(${c.disagreements})` : "";
  if (c.disagreements || $("review").childElementCount) await drawReview();
  $("round").disabled = state.round_running;
  const done = state.rounds.filter((r) => r.status === "done");
  const last = done.length ? (done[done.length - 1].metrics || {}) : {};
  const notes = [
    last.stopped_changing ? "the model has stopped changing: more labels of this kind are unlikely to change it much" : "",
    last.guard_fallback ? `the co-trained model looked degenerate (${last.guard_reason}): the last round uses the supervised one` : "",
  ].filter(Boolean);
  const p = state.round_progress;
  const where = p ? ` ${p.task}${p.total ? ` ${p.done}/${p.total}` : ""}` : "";
  $("round-status").textContent = state.round_running ? `training…${where}` : (state.last_error || notes.join(" · "));
  return state;
}

function imageUrl(item) { return `/api/image/${item.image_id}?token=${encodeURIComponent(token)}`; }
function pictureUrl(kind, item) { return `/api/${kind}/${item.image_id}?token=${encodeURIComponent(token)}`; }

// A tile of a slide is shown with its surroundings and its place on the slide; the map of the
// slide (the latest model's predicted classes and query scores) on request.
function showSlide(item) {
  const tile = !!item && item.tile;
  $("slide").hidden = !tile;
  $("map").hidden = true;
  $("map").removeAttribute("src");
  if (!tile) return;
  $("context").src = pictureUrl("context", item);
  $("overview").src = pictureUrl("overview", item);
}

async function loadGrid() {
  batch = await api("/api/batch", { annotator: annotator(), count: 9 });
  selected = Math.min(selected, Math.max(batch.length - 1, 0));
  $("grid").replaceChildren(...batch.map((item, k) => {
    const figure = el("figure", { class: k === selected ? "selected" : "" },
      el("img", { alt: `patch ${item.image_id}`, src: imageUrl(item) }),
      el("figcaption", {}, (item.guess ? `guess ${item.guess} · ` : "") + item.reason));
    figure.addEventListener("click", () => { selected = k; show(); });
    return figure;
  }));
  show();
}

function show() {
  document.querySelectorAll("#grid figure").forEach((f, k) => f.classList.toggle("selected", k === selected));
  current = batch[selected] || null;
  showSlide(current);
  $("why").textContent = current ? `Why: ${current.reason}` : "The queue is empty: run a round to queue the next batch.";
  $("guess").textContent = current && current.guess ? `Model's guess: ${current.guess} (${(100 * current.guess_confidence).toFixed(0)} %)` : "";
  document.querySelectorAll("#buttons button").forEach((b) => b.classList.toggle("guess", !!current && b.dataset.label === current.guess));
}

// The kept label may be gone (its annotator undid it): the case stays open, with real classes only.
function kept(d) { return d.current === null ? "no label" : `${d.current} (${d.current_annotator})`; }
function choices(d) { return [...new Set([d.current, d.other])].filter((c) => c !== null); }

async function drawReview() {
  const cases = await api("/api/disagreements");
  $("review").replaceChildren(...cases.map((d) => el("div", { class: "case" },
    el("img", { alt: `patch ${d.image_id}`, src: imageUrl(d) }),
    el("span", {}, `${kept(d)} or ${d.other} (${d.other_annotator})?`),
    ...choices(d).map((choice) => {
      const b = el("button", {}, choice);
      b.addEventListener("click", () => resolve(d.id, choice));
      return b;
    }))));
}

async function resolve(id, choice) {
  const name = annotator();
  if (!name) {  // a resolution is someone's decision: no shared fallback name
    say("Type your name (annotator) to resolve a case.");
    $("annotator").focus();
    return;
  }
  try { await api("/api/resolve", { disagreement_id: id, label: choice, annotator: name }); }
  catch (error) { say(error.message); }
  await refresh();
}

async function next() {
  if (!annotator()) {  // leases are personal: no name, no lease
    current = null;
    $("why").textContent = "Type your name (annotator) to start.";
    $("annotator").focus();
    return;
  }
  if (grid) return loadGrid();
  current = await api("/api/next", { annotator: annotator() });
  showSlide(current);
  document.querySelectorAll("#buttons button").forEach((b) => b.classList.toggle("guess", !!current && b.dataset.label === current.guess));
  if (!current) {
    $("patch").removeAttribute("src");
    $("why").textContent = "The queue is empty: run a round to queue the next batch.";
    $("guess").textContent = "";
    return;
  }
  $("patch").src = `/api/image/${current.image_id}?token=${encodeURIComponent(token)}`;
  $("why").textContent = `Why: ${current.reason}`;
  $("guess").textContent = current.guess ? `Model's guess: ${current.guess} (${(100 * current.guess_confidence).toFixed(0)} %)` : "";
}

async function label(name) {
  if (!current) return;
  try {
    const result = await api("/api/label", { image_id: current.image_id, label: name, annotator: annotator() });
    say(result.status === "disagreement" ? `Kept for review: another annotator chose differently.` : `${name} ✓`);
    await next();
    await refresh();
  } catch (error) { say(error.message); }
}

async function skip() {
  if (!current) return;
  try {  // the item may have left the queue meanwhile (a round replaced it): say so
    await api("/api/skip", { image_id: current.image_id, annotator: annotator() });
    say("skipped");
  } catch (error) { say(error.message); }
  await next();
}

async function undo() {
  try {
    const result = await api("/api/undo", { annotator: annotator() });
    say(result.status === "undone" ? "undone" : "nothing to undo");
  } catch (error) { say(error.message); }
  await refresh();
  await next();
}

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT") return;
  const k = Number(event.key);
  if (k >= 1 && k <= classes.length) label(classes[k - 1]);
  else if (event.key === "s") skip();
  else if (event.key === "u") undo();
  else if (event.key === "z") $("frame").classList.toggle("zoomed");
  else if (event.key === "g") toggleGrid();
  else if (grid && event.key === "ArrowRight") { selected = Math.min(selected + 1, batch.length - 1); show(); }
  else if (grid && event.key === "ArrowLeft") { selected = Math.max(selected - 1, 0); show(); }
  else if (grid && event.key === "ArrowDown") { selected = Math.min(selected + 3, batch.length - 1); show(); }
  else if (grid && event.key === "ArrowUp") { selected = Math.max(selected - 3, 0); show(); }
});

function toggleGrid() {
  grid = !grid;
  $("grid").hidden = !grid;
  $("frame").hidden = grid;
  $("mode").textContent = grid ? "One at a time" : "Grid";
  next();
}
$("mode").addEventListener("click", toggleGrid);
$("show-map").addEventListener("click", () => {
  if (!current || !current.tile) return;
  say("drawing the map of this slide…");
  $("map").src = pictureUrl("map", current);
});
$("map").addEventListener("load", () => { $("map").hidden = false; say(""); });
$("map").addEventListener("error", () => say("no map yet: a round must train a model first"));
$("frame").addEventListener("click", () => $("frame").classList.toggle("zoomed"));
$("round").addEventListener("click", async () => {
  try { await api("/api/round", {}); say("round started: keep labelling"); } catch (error) { say(error.message); }
  await refresh();
});
$("annotator").value = localStorage.getItem("unisal-annotator") || "";
$("annotator").addEventListener("change", () => next());
$("annotator").addEventListener("keydown", (event) => {
  // Enter commits the name (the change event loads the next patch) and leaves the field, so
  // that the class keys label instead of typing into the name.
  if (event.key === "Enter") { event.preventDefault(); $("annotator").blur(); }
});
refresh().then(next).catch((error) => say(error.message));
setInterval(() => refresh().catch(() => {}), 3000);
