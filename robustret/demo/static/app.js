// The demo page: read the controls, POST /api/search, draw three rows of results.
"use strict";

const $ = (id) => document.getElementById(id);
const ROWS = ["original", "degraded", "restored"];
let options = null;
let pending = null;  // the AbortController of the request in flight

function fill(select, names) {
  for (const name of names) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    select.appendChild(option);
  }
}

// the restorers by their labels, e.g. "hybrid (noise, oracle)"; the value is the form's name
function fillRestorers(select, choices) {
  for (const choice of choices) {
    const option = document.createElement("option");
    option.value = choice.name;
    option.textContent = choice.label;
    option.dataset.knowledge = choice.knowledge === null ? "" : choice.knowledge;
    select.appendChild(option);
  }
}

// degradation none (the query as it is) draws nothing: no severity, and no oracle restorer,
// which reads the drawn parameters (the server refuses one in a sentence as well)
function followDegradation() {
  const none = $("degradation").value === "none";
  $("severity").disabled = none;
  for (const option of $("restorer").options) {
    option.disabled = none && option.dataset.knowledge === "oracle";
    option.title = option.disabled ? "reads each image's drawn parameters; none are drawn here"
      : "";
  }
  if ($("restorer").selectedOptions[0]?.disabled) $("restorer").value = "identity";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function source() {
  return document.querySelector("input[name=source]:checked").value;
}

function formData() {
  const data = new FormData();
  if (source() === "upload") {
    const file = $("image").files[0];
    if (!file) return null;
    data.append("image", file);
    if ($("class_name").value) data.append("class_name", $("class_name").value);
  } else {
    data.append("query_index", $("query_index").value);
  }
  for (const name of ["degradation", "severity", "restorer", "metric", "k"]) {
    data.append(name, $(name).value);
  }
  for (const name of ["x", "y", "w", "h"]) {
    if ($(name).value !== "") data.append(name, $(name).value);
  }
  return data;
}

function format(value, digits) {
  return value === null || value === undefined ? "n/a" : Number(value).toFixed(digits);
}

function drawRow(name, answer) {
  const row = document.createElement("section");
  row.className = "row";
  row.dataset.row = name;
  const title = document.createElement("h2");
  title.textContent = name === "restored" && answer.restorer
    ? `restored by ${answer.restorer.label}` : name;
  const stats = document.createElement("p");
  stats.className = "stats";
  // a null PSNR beside the original: the images are equal (degradation none, or identity)
  const psnr = name === "original" ? "reference" : answer.psnr[name] === null
    ? "n/a (equal to the original)" : `${format(answer.psnr[name], 2)} dB`;
  const hits = answer.hit_rate[name];
  stats.textContent = `PSNR ${psnr} · hit rate ${hits === null ? "n/a (class unknown)"
    : (100 * hits).toFixed(0) + "%"}`;
  const query = document.createElement("img");
  query.className = "query";
  query.alt = `${name} query`;
  query.src = `data:image/png;base64,${answer.images[name]}`;
  const grid = document.createElement("div");
  grid.className = "grid";
  for (const match of answer.results[name]) {
    const cell = document.createElement("figure");
    cell.className = "match " + (match.hit === null ? "unknown" : match.hit ? "hit" : "miss");
    const thumb = document.createElement("img");
    thumb.src = `/api/gallery/${match.gallery_index}.png`;
    thumb.alt = `gallery ${match.gallery_index}`;
    const caption = document.createElement("figcaption");
    caption.textContent = `#${match.rank} ${match.class_name} ${format(match.score, 3)}`;
    cell.append(thumb, caption);
    grid.appendChild(cell);
  }
  row.append(title, stats, query, grid);
  return row;
}

function draw(answer) {
  const results = $("results");
  results.replaceChildren(...ROWS.map((name) => drawRow(name, answer)));
  const known = answer.query.class_name;
  const which = answer.query.index === null ? "uploaded image" : `query #${answer.query.index}`;
  $("summary").textContent = `${which}, class ${known === null ? "unknown" : known}; `
    + `score = ${answer.score} (${answer.metric})`;
  results.dataset.state = "ready";
}

async function search() {
  const data = formData();
  if (data === null) return;
  if (pending) pending.abort();
  pending = new AbortController();
  $("results").dataset.state = "loading";
  try {
    const response = await fetch("/api/search", {method: "POST", body: data,
                                                 signal: pending.signal});
    const answer = await response.json().catch(() => ({detail: response.statusText}));
    if (!response.ok) {
      showError(typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer));
      $("results").dataset.state = "error";
      return;
    }
    showError("");
    draw(answer);
  } catch (error) {
    if (error.name !== "AbortError") {
      showError(`the server did not answer: ${error}`);
      $("results").dataset.state = "error";
    }
  }
}

async function start() {
  const response = await fetch("/api/options");
  options = await response.json();
  fill($("degradation"), options.degradations);
  fillRestorers($("restorer"), options.restorer_choices);
  fill($("metric"), options.metrics);
  fill($("class_name"), options.class_names);
  if (options.degradations.includes("noise")) $("degradation").value = "noise";
  $("query_index").max = options.queries - 1;
  $("k").max = options.k.max;
  $("k").value = options.k.default;
  // a link can preset the controls: /?query_index=7&degradation=motion_blur&restorer=wiener
  for (const [name, value] of new URLSearchParams(window.location.search)) {
    const control = $(name);
    if (control && control.type !== "file") control.value = value;
  }
  followDegradation();
  $("summary").textContent = `${options.gallery} gallery images, ${options.queries} queries, `
    + `${options.class_names.length} classes, ${options.image_size} px`;
  $("random").addEventListener("click", () => {
    document.querySelector("input[name=source][value=index]").checked = true;
    $("query_index").value = Math.floor(Math.random() * options.queries);
    search();
  });
  $("image").addEventListener("change", () => {
    // the form's change listener (below) runs the search after this one; an upload is
    // searched as it is (a real photo) until another degradation is chosen
    document.querySelector("input[name=source][value=upload]").checked = true;
    $("degradation").value = options.upload_degradation;
    followDegradation();
  });
  $("degradation").addEventListener("change", followDegradation);
  $("controls").addEventListener("change", search);
  $("controls").addEventListener("submit", (event) => { event.preventDefault(); search(); });
  search();
}

start().catch((error) => showError(`cannot load the options: ${error}`));
