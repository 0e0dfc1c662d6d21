// The kiosk screen: renders the daemon's snapshot (Server-Sent Events from /api/events) and sends
// the signer's answer with one touch (POST /api/feedback, the same message as MQTT feedback).
"use strict";

const MAX_ALTERNATIVES = 6;
const TOKEN_KEY = "asl-edge-screen-token";
const SPEAK_KEY = "asl-edge-screen-speak";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const ui = {
  banner: $("status-banner"),
  word: $("word"),
  confidence: $("confidence"),
  right: $("right"),
  alternatives: document.querySelector(".alternatives"),
  other: $("other"),
  feedback: $("feedback-status"),
  sentence: $("sentence"),
  clear: $("clear-sentence"),
  consent: $("consent"),
  speak: $("speak"),
  picker: $("picker"),
  filter: $("label-filter"),
  options: document.querySelector(".options"),
};

// For tests and the latency measurement: when each prediction reached the page and was shown
// (milliseconds since the epoch, on this machine's clock).
const record = { arrivals: {}, shown: {}, requests: 0 };
window.aslScreen = record;

let labels = [];
let state = { prediction: null, answer: null, sentence: [], status: { problems: [] }, clips: false };
let connected = false;
let locked = false; // the screen has a token and this page has none (or a wrong one)
let local = null; // this page's own answer to the prediction on screen: {id, state, text}
let picking = null; // the prediction the picker was opened for

const token = (() => {
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  return localStorage.getItem(TOKEN_KEY);
})();

function setPressed(button, on) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
}

function renderBanner() {
  const problems = (state.status && state.status.problems) || [];
  const waiting = locked
    ? "this screen needs its token: open its address once with #token=… at the end"
    : "connecting to the recognizer…";
  const lines = connected ? problems.map((p) => p.text) : [waiting];
  ui.banner.replaceChildren(...lines.map((text) => Object.assign(document.createElement("p"), { textContent: text })));
  ui.banner.hidden = lines.length === 0;
}

function answerButton(prediction, word) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.testid = "alternative";
  button.dataset.word = word;
  button.textContent = word;
  button.addEventListener("click", () => answer(prediction, false, word));
  return button;
}

function setFeedback(stateName, text) {
  ui.feedback.dataset.state = stateName;
  ui.feedback.textContent = text;
}

function renderFeedback(prediction) {
  const answered = state.answer && prediction && state.answer.prediction_id === prediction.id;
  const mine = local && prediction && local.id === prediction.id ? local : null;
  if (mine && mine.state !== "stored") {
    setFeedback(mine.state, mine.text);
  } else if (answered) {
    const a = state.answer;
    setFeedback("stored", a.correct ? "Saved: right. Thank you!" : `Saved: it was “${a.label}”. Thank you!`);
  } else if (mine) {
    setFeedback(mine.state, mine.text);
  } else {
    setFeedback("idle", prediction ? "Was this right?" : "Sign a word");
  }
  const locked = !prediction || answered || (mine && ["sending", "stored"].includes(mine.state));
  for (const button of [ui.right, ui.other, ...ui.alternatives.children]) button.disabled = Boolean(locked);
  if (prediction && prediction.word === "unknown") ui.right.disabled = true; // nothing to confirm
}

function renderPrediction() {
  const prediction = state.prediction;
  if (!prediction) {
    ui.word.textContent = "…";
    ui.confidence.textContent = "";
    ui.alternatives.replaceChildren();
  } else if (ui.word.dataset.prediction !== prediction.id) {
    ui.word.dataset.prediction = prediction.id;
    ui.word.textContent = prediction.word;
    ui.confidence.textContent = `${Math.round(prediction.confidence * 100)}% sure`;
    const others = prediction.top_k.map((s) => s.word).filter((w) => w !== prediction.word);
    ui.alternatives.replaceChildren(...others.slice(0, MAX_ALTERNATIVES).map((w) => answerButton(prediction, w)));
  }
  renderFeedback(prediction);
}

function renderSentence() {
  const text = state.sentence.join(" ");
  ui.sentence.replaceChildren(Object.assign(document.createElement("bdi"), { textContent: text }));
  ui.sentence.title = text;
  ui.clear.disabled = state.sentence.length === 0;
}

function render() {
  renderBanner();
  renderPrediction();
  renderSentence();
  ui.consent.hidden = !state.clips;
}

function speak(prediction) {
  if (ui.speak.getAttribute("aria-pressed") !== "true" || !("speechSynthesis" in window)) return;
  if (prediction.word === "unknown") return;
  speechSynthesis.cancel();
  speechSynthesis.speak(new SpeechSynthesisUtterance(prediction.word));
}

function onState(next) {
  const previous = state.prediction && state.prediction.id;
  state = next;
  const prediction = state.prediction;
  const fresh = prediction && prediction.id !== previous;
  if (fresh) {
    record.arrivals[prediction.id] = performance.timeOrigin + performance.now();
    local = null;
    setPressed(ui.consent, false); // consent is given per clip, never carried over
  }
  render();
  if (fresh) {
    record.shown[prediction.id] = performance.timeOrigin + performance.now();
    speak(prediction);
  }
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  record.requests += 1;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), cache: "no-store" });
  let data = {};
  try {
    data = await response.json();
  } catch (error) {
    data = { status: "rejected", reason: `the recognizer answered ${response.status}` };
  }
  return data;
}

// Each answer names the word it was given for: a tap on a button drawn for one word, or a choice
// in the picker opened for it, answers that word even if the next one has arrived meanwhile.
async function answer(prediction, correct, label) {
  if (!prediction) return;
  const message = { prediction_id: prediction.id, correct };
  if (!correct) message.label = label;
  if (state.clips && ui.consent.getAttribute("aria-pressed") === "true") message.consent = true;
  local = { id: prediction.id, state: "sending", text: "Saving…" };
  renderFeedback(prediction);
  let ack;
  try {
    ack = await post("/api/feedback", message);
  } catch (error) {
    ack = { status: "rejected", reason: "the recognizer cannot be reached; try again" };
  }
  if (ack.status === "stored") {
    const f = ack.feedback;
    local = { id: prediction.id, state: "stored", text: f.correct ? "Saved: right. Thank you!" : `Saved: it was “${f.label}”. Thank you!` };
  } else {
    local = { id: prediction.id, state: "rejected", text: `Not saved: ${ack.reason || "refused"}` };
  }
  if (state.prediction && state.prediction.id === prediction.id) renderFeedback(prediction);
}

function renderOptions() {
  const query = ui.filter.value.trim().toLowerCase();
  for (const option of ui.options.children) {
    option.hidden = query !== "" && !option.dataset.word.toLowerCase().includes(query);
  }
}

function onLabels(data) {
  labels = data.labels || [];
  ui.options.replaceChildren(...labels.map((word) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.testid = "label-option";
    button.dataset.word = word;
    button.setAttribute("role", "listitem");
    button.textContent = word;
    button.addEventListener("click", () => {
      ui.picker.close();
      answer(picking, Boolean(picking && word === picking.word), word);
    });
    return button;
  }));
  renderOptions();
}

// With a screen token, every read needs it too. EventSource cannot send a header, so the page
// trades its token for an HttpOnly session cookie first (and again whenever a read is refused).
async function openSession() {
  if (!token) return;
  try {
    await post("/api/session", {});
  } catch (error) {
    // the recognizer is away: the events stream retries
  }
}

async function refused() {
  try {
    return (await fetch("/api/state", { cache: "no-store" })).status === 401;
  } catch (error) {
    return false;
  }
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => { connected = true; locked = false; renderBanner(); });
  events.addEventListener("labels", (event) => onLabels(JSON.parse(event.data)));
  events.addEventListener("state", (event) => { connected = true; onState(JSON.parse(event.data)); });
  events.addEventListener("error", async () => {
    connected = false;
    renderBanner();
    if (events.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    if (await refused()) {
      await openSession();
      locked = await refused();
      renderBanner();
    }
    setTimeout(connect, 2000);
  });
}

ui.right.addEventListener("click", () => answer(state.prediction, true, null));
ui.other.addEventListener("click", () => {
  picking = state.prediction;
  ui.filter.value = "";
  renderOptions();
  ui.picker.showModal();
  ui.filter.focus();
});
ui.filter.addEventListener("input", renderOptions);
ui.clear.addEventListener("click", () => post("/api/sentence/clear", {}).catch(() => {}));
ui.consent.addEventListener("click", () => setPressed(ui.consent, ui.consent.getAttribute("aria-pressed") !== "true"));
ui.speak.addEventListener("click", () => {
  const on = ui.speak.getAttribute("aria-pressed") !== "true";
  setPressed(ui.speak, on);
  localStorage.setItem(SPEAK_KEY, on ? "on" : "off");
});
setPressed(ui.speak, localStorage.getItem(SPEAK_KEY) === "on");
render();
openSession().then(connect);
