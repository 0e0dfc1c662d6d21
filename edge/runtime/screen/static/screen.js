// The kiosk screen: renders the daemon's snapshot (Server-Sent Events from /api/events) and sends
// the signer's answer with one touch (POST /api/feedback, the same message as MQTT feedback).
"use strict";

const MAX_ALTERNATIVES = 6;
const TOKEN_KEY = "asl-edge-screen-token";
const SPEAK_KEY = "asl-edge-screen-speak";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const ACTIVITY_TEXT = {
  idle: "Ready for your sign",
  signing: "I see you signing…",
  reading: "Reading your sign…",
  "too-dark": "More light, please",
  "no-camera": "The camera is not working",
};
const CRLF2 = [13, 10, 13, 10];

const ui = {
  banner: $("status-banner"),
  activity: $("activity"),
  activityText: document.querySelector(".activity-text"),
  selfView: $("self-view"),
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
// Each activity state as it was shown: {state, at (when the daemon handled the frame), shown}.
const record = { arrivals: {}, shown: {}, requests: 0, activity: [], selfViewFrames: 0 };
window.aslScreen = record;

let labels = [];
let state = {
  prediction: null, answer: null, sentence: [], status: { problems: [] }, clips: false,
  activity: { state: "idle", at: 0 }, self_view: false,
};
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

function renderActivity(activity) {
  const name = ACTIVITY_TEXT[activity.state] ? activity.state : "idle";
  if (ui.activity.dataset.state === name) return false;
  ui.activity.dataset.state = name;
  ui.activityText.textContent = ACTIVITY_TEXT[name];
  return true;
}

function onActivity(activity) {
  state.activity = activity;
  if (renderActivity(activity)) {
    record.activity.push({ state: activity.state, at: activity.at * 1000, shown: performance.timeOrigin + performance.now() });
  }
}

function render() {
  renderActivity(state.activity);
  renderBanner();
  renderPrediction();
  renderSentence();
  ui.consent.hidden = !state.clips;
  if (state.self_view) watchSelf(); else stopSelf();
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
  events.addEventListener("activity", (event) => onActivity(JSON.parse(event.data)));
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

// The self-view: JPEGs from one multipart response, read as a stream (each part carries its
// Content-Length), shown one after another; only while the page is visible.
let viewing = null; // the AbortController of the self-view stream, while it runs

function find(buffer, pattern) {
  outer: for (let i = 0; i + pattern.length <= buffer.length; i += 1) {
    for (let j = 0; j < pattern.length; j += 1) if (buffer[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function showSelf(jpeg) {
  const previous = ui.selfView.src;
  ui.selfView.src = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
  ui.selfView.hidden = false;
  record.selfViewFrames += 1;
  ui.selfView.dataset.frames = String(record.selfViewFrames);
}

function takeFrames(buffer) {
  for (;;) {
    const headEnd = find(buffer, CRLF2);
    if (headEnd < 0) return buffer;
    const length = /Content-Length:\s*(\d+)/i.exec(new TextDecoder().decode(buffer.subarray(0, headEnd)));
    if (!length) return new Uint8Array(0);
    const start = headEnd + CRLF2.length;
    const end = start + Number(length[1]);
    if (buffer.length < end + 2) return buffer;
    showSelf(buffer.slice(start, end));
    buffer = buffer.slice(end + 2);
  }
}

async function watchSelf() {
  if (viewing || !state.self_view || document.hidden) return;
  const controller = new AbortController();
  viewing = controller;
  try {
    const response = await fetch("/api/self-view", { cache: "no-store", signal: controller.signal });
    if (!response.ok || !response.body) throw new Error(`self-view: ${response.status}`);
    const reader = response.body.getReader();
    let buffer = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = takeFrames(joined);
    }
  } catch (error) {
    // stopped, refused or gone: tried again below unless it was stopped on purpose
  }
  if (viewing === controller) viewing = null;
  if (!controller.signal.aborted) setTimeout(watchSelf, 2000);
}

function stopSelf() {
  if (viewing) viewing.abort();
  viewing = null;
  ui.selfView.hidden = true;
}

document.addEventListener("visibilitychange", () => (document.hidden ? stopSelf() : watchSelf()));

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
