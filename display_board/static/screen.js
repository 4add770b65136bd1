// Hall screen. State comes only from the server: a `snapshot` on every (re)connect, then `ticket`
// events applied in seq order (duplicates and anything already in the snapshot dropped), `queues`
// payloads (each replaces the last) and `notice`. The big "now calling" panel plays every new call
// from a queue that never skips: a burst of calls is shown one after another, while the list of
// recent calls is always complete at once. Numbers, window and queue names only: no personal data.

const CFG = JSON.parse(document.getElementById("screen-config").textContent);
const RECENT = 8;            // calls in the list
const SHOW_MIN_MS = 1000;    // each call stays on the big panel at least this long when more are waiting
const QUEUE_ROWS = 5;        // queue rows per page; more queues page every QUEUE_PAGE_MS
const QUEUE_PAGE_MS = 8000;
const NOTICE_PX_PER_S = 120;

const $ = (id) => document.getElementById(id);
const state = {
  connectedOnce: false,
  snapSeq: 0,          // last_seq of the latest snapshot: every event at or below it is in the snapshot
  seen: new Set(),     // seqs above snapSeq already applied
  maxCallSeq: 0,       // newest call shown (or queued for showing)
  calls: [],           // call events (called / recalled), ascending seq
  windows: new Map(),  // number -> display name
  queues: [],
  queuePage: 0,
  offsetMs: 0,         // server clock minus this machine's clock
  noticeText: null,
};
const highlight = { pending: [], busy: false };

// ---- layout: a fixed 1920x1080 stage scaled to the window -----------------------------------------
function fit() {
  const s = Math.min(window.innerWidth / 1920, window.innerHeight / 1080);
  $("stage").style.transform = `scale(${s})`;
}
window.addEventListener("resize", fit);
fit();

// ---- clock --------------------------------------------------------------------------------------
const dateFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: CFG.timezone, year: "numeric", month: "long",
  day: "numeric", weekday: "long" });
const timeFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: CFG.timezone, hour: "2-digit", minute: "2-digit",
  second: "2-digit", hour12: false });
function tick() {
  const now = new Date(Date.now() + state.offsetMs);
  $("date").textContent = dateFmt.format(now);
  $("time").textContent = timeFmt.format(now);
}
setInterval(tick, 1000);
tick();

// ---- rendering ------------------------------------------------------------------------------------
function windowName(no) {
  return state.windows.get(String(no)) || `${no}号窗口`;
}

function renderRecent(newSeqs = new Set()) {
  // newest first, one line per ticket (a recall moves the ticket to the top instead of repeating it)
  const out = [];
  const tickets = new Set();
  for (let i = state.calls.length - 1; i >= 0 && out.length < RECENT; i--) {
    const ev = state.calls[i];
    if (tickets.has(ev.ticket.id)) continue;
    tickets.add(ev.ticket.id);
    out.push(ev);
  }
  const ol = $("recent");
  ol.replaceChildren(...out.map((ev) => {
    const li = document.createElement("li");
    li.dataset.seq = ev.seq;
    li.dataset.number = ev.ticket.number;
    if (newSeqs.has(ev.seq)) li.className = "new";
    const num = document.createElement("span");
    num.className = "num";
    num.textContent = ev.ticket.number;
    const win = document.createElement("span");
    win.className = "win";
    win.textContent = windowName(ev.window);
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = ev.type === "recalled" ? "重呼" : "";
    li.append(num, win, tag);
    return li;
  }));
}

function showNow(ev, flash) {
  const box = $("now");
  $("now-number").textContent = ev ? ev.ticket.number : "—";
  $("now-window").textContent = ev ? windowName(ev.window) : "—";
  $("now-tag").textContent = ev && ev.type === "recalled" ? "（重呼）" : "";
  box.classList.toggle("idle", !ev);
  box.dataset.seq = ev ? ev.seq : "";
  box.dataset.number = ev ? ev.ticket.number : "";
  box.classList.remove("flash");
  if (flash) {
    void box.offsetWidth; // restart the animation
    box.classList.add("flash");
  }
}

function playNext() {
  const ev = highlight.pending.shift();
  if (!ev) {
    highlight.busy = false;
    return;
  }
  highlight.busy = true;
  showNow(ev, true);
  // Stay at least SHOW_MIN_MS; the last one stays until the next call arrives.
  setTimeout(playNext, SHOW_MIN_MS);
}

function enqueueHighlight(ev) {
  highlight.pending.push(ev);
  if (!highlight.busy) playNext();
}

function renderQueues() {
  const qs = state.queues;
  const pages = Math.max(1, Math.ceil(qs.length / QUEUE_ROWS));
  state.queuePage %= pages;
  const rows = qs.slice(state.queuePage * QUEUE_ROWS, (state.queuePage + 1) * QUEUE_ROWS);
  $("queues-page").textContent = pages > 1 ? `${state.queuePage + 1}/${pages}` : "";
  $("queues").tBodies[0].replaceChildren(...rows.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.id;
    const cells = [
      [`${q.name}`, ""],
      [`${q.waiting} 人`, "n"],
      [q.waiting === 0 ? "无需等候" : `约 ${Math.max(1, Math.ceil(q.estimated_wait_seconds / 60))} 分钟`, ""],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    const prefix = document.createElement("span");
    prefix.className = "prefix";
    prefix.textContent = ` ${q.prefix}`;
    tr.cells[0].append(prefix);
    return tr;
  }));
}
setInterval(() => {
  if (state.queues.length > QUEUE_ROWS) {
    state.queuePage += 1;
    renderQueues();
  }
}, QUEUE_PAGE_MS);

function renderNotice(text) {
  if (text === state.noticeText) return;
  state.noticeText = text;
  const el = $("notice");
  el.getAnimations().forEach((a) => a.cancel());
  el.textContent = text || "";
  el.dataset.text = text || "";
  if (!text) return;
  const boxW = $("notice-box").offsetWidth;
  const w = el.offsetWidth;
  el.animate(
    [{ transform: `translate(${boxW}px, -50%)` }, { transform: `translate(${-w}px, -50%)` }],
    { duration: ((boxW + w) / NOTICE_PX_PER_S) * 1000, iterations: Infinity },
  );
}

async function loadNotice() {
  try {
    const r = await fetch(`/api/v1/halls/${encodeURIComponent(CFG.hall)}/notice`, { cache: "no-store" });
    if (r.ok) renderNotice((await r.json()).text);
  } catch (e) {
    // the socket's reconnect will bring us back here
  }
}

// ---- events -----------------------------------------------------------------------------------------
function isCall(ev) {
  return ev.type === "called" || ev.type === "recalled";
}

function onSnapshot(snap) {
  state.offsetMs = Date.parse(snap.at) - Date.now();
  state.windows = new Map(snap.windows.map((w) => [String(w.number), w.name]));
  $("hall-name").textContent = snap.hall_name;
  const calls = snap.recent_calls.filter(isCall).sort((a, b) => a.seq - b.seq);
  const missed = state.connectedOnce ? calls.filter((ev) => ev.seq > state.maxCallSeq) : [];
  state.calls = calls;
  state.snapSeq = snap.last_seq;
  state.seen = new Set();
  if (calls.length) state.maxCallSeq = Math.max(state.maxCallSeq, calls[calls.length - 1].seq);
  state.queues = snap.queues;
  renderRecent(new Set(missed.map((ev) => ev.seq)));
  renderQueues();
  if (!state.connectedOnce) {
    showNow(calls[calls.length - 1] || null, false); // first load: show, do not announce
  }
  missed.forEach(enqueueHighlight); // calls made while we were away: shown once, in order
  state.connectedOnce = true;
  $("offline").hidden = true;
  tick();
  loadNotice();
}

function onTicket(ev) {
  if (ev.seq <= state.snapSeq || state.seen.has(ev.seq)) return; // already in the snapshot or applied
  state.seen.add(ev.seq);
  if (!isCall(ev)) return;
  // insert in seq order (events of concurrent transactions may arrive a little out of order)
  let i = state.calls.length;
  while (i > 0 && state.calls[i - 1].seq > ev.seq) i--;
  state.calls.splice(i, 0, ev);
  if (state.calls.length > 64) state.calls.splice(0, state.calls.length - 64);
  renderRecent(new Set([ev.seq]));
  if (ev.seq > state.maxCallSeq) state.maxCallSeq = ev.seq;
  enqueueHighlight(ev);
}

function onQueues(payload) {
  state.queues = payload.queues;
  renderQueues();
}

function onWindow(w) {
  state.windows.set(String(w.number), w.name);
}

const socket = io({
  auth: { hall: CFG.hall },
  reconnectionDelay: 500,
  reconnectionDelayMax: 3000,
  randomizationFactor: 0.3,
});
socket.on("snapshot", onSnapshot);
socket.on("ticket", onTicket);
socket.on("queues", onQueues);
socket.on("window", onWindow);
socket.on("notice", (n) => renderNotice(n.text));
socket.on("disconnect", () => { $("offline").hidden = false; });
socket.on("connect_error", () => {
  $("offline").hidden = false;
  // refused by the server (e.g. the hall was removed from the config): the client will not retry itself
  if (!socket.active) setTimeout(() => socket.connect(), 5000);
});
