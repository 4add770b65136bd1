// Clerk console: REST API for every action, the window's Socket.IO room for live state. The server
// sends a `snapshot` on every (re)connect, so after an outage the page simply re-reads it.

const API = "/api/v1";
const STORE = "hall.clerk.session";
const KEYS = { F1: "call-next", F2: "recall", F3: "start", F4: "finish", F6: "no-show", F7: "transfer",
  F8: "pause", F9: "call-specific", F10: "reactivate" };
const OUTCOMES = { instant: "即办件", promised: "承诺件", returned: "退回" };

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const st = {
  session: JSON.parse(sessionStorage.getItem(STORE) || "null"), // {token, username, name, hall, window}
  hall: null,          // GET /halls/<hall>
  win: null,           // WindowPayload of our window
  waiting: null,       // GET .../waiting
  socket: null,
  offsetMs: 0,
  busy: false,
  refreshTimer: null,
};

// ---- small helpers ----------------------------------------------------------------------------------
function save() {
  if (st.session) sessionStorage.setItem(STORE, JSON.stringify(st.session));
  else sessionStorage.removeItem(STORE);
}

function say(text, kind = "info") {
  const el = $("#msg");
  el.textContent = text;
  el.className = kind;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (st.session && st.session.token) headers["Authorization"] = `Bearer ${st.session.token}`;
  let r;
  try {
    r = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "network", "无法连接服务器，请检查网络后重试");
  }
  let data = null;
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const err = (data && data.error) || {};
    if (r.status === 401 && st.session && path !== "/auth/login") {
      signedOut("登录已失效，请重新登录");
    }
    throw new ApiError(r.status, err.code || "http_" + r.status, err.message || `服务器错误（${r.status}）`);
  }
  return data;
}

function mmss(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return (h ? `${h}:${pad(m)}` : pad(m)) + ":" + pad(s % 60);
}

function minutes(sec) {
  return sec < 60 ? "不足1分钟" : `${Math.round(sec / 60)}分钟`;
}

function show(view) {
  for (const v of ["login-view", "choose-view", "console-view"]) $("#" + v).hidden = v !== view;
  $("#logout").hidden = view === "login-view";
}

function clock(t) {
  // the hall's time zone, whatever the clerk's computer is set to
  const tz = st.hall && st.hall.timezone ? { timeZone: st.hall.timezone } : {};
  return t.toLocaleTimeString("zh-CN", { hour12: false, ...tz });
}

function logLine(text) {
  const li = document.createElement("li");
  li.textContent = `${clock(new Date(Date.now() + st.offsetMs))} ${text}`;
  $("#log").prepend(li);
  while ($("#log").children.length > 30) $("#log").lastChild.remove();
}

// ---- sign in ----------------------------------------------------------------------------------------
let pendingPassword = null;

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const username = $("#username").value.trim();
  const password = $("#password").value;
  try {
    const r = await api("POST", "/auth/login", { username, password });
    st.session = { token: r.token, username: r.username, name: r.name, role: r.role };
    save();
    if (r.must_change_password) {
      pendingPassword = password;
      $("#login-form").hidden = true;
      $("#password-form").hidden = false;
      say("首次登录，请先修改密码");
      $("#new-password").focus();
      return;
    }
    $("#password").value = "";
    say(`${r.name}，您好`, "ok");
    await choose();
  } catch (err) {
    say(err.message, "error");
  }
});

$("#password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const p1 = $("#new-password").value;
  if (p1 !== $("#new-password2").value) return say("两次输入的新密码不一致", "error");
  try {
    await api("POST", "/auth/password", { old_password: pendingPassword, new_password: p1 });
    // changing the password ends every session of the account: sign in again with the new one
    const r = await api("POST", "/auth/login", { username: st.session.username, password: p1 });
    st.session = { token: r.token, username: r.username, name: r.name, role: r.role };
    save();
    pendingPassword = null;
    $("#password-form").hidden = true;
    $("#login-form").hidden = false;
    $("#password").value = "";
    say("密码已修改", "ok");
    await choose();
  } catch (err) {
    say(err.message, "error");
  }
});

function signedOut(message) {
  if (st.socket) { st.socket.disconnect(); st.socket = null; }
  st.session = null;
  save();
  $("#who").textContent = "";
  $("#where").textContent = "";
  $("#conn").hidden = true;
  show("login-view");
  say(message, "error");
}

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/auth/logout"); } catch (e) { /* gone anyway */ }
  signedOut("已退出登录");
  say("已退出登录");
});

// ---- choose a window --------------------------------------------------------------------------------
async function choose() {
  show("choose-view");
  $("#who").textContent = `${st.session.name}（${st.session.username}）`;
  const me = await api("GET", "/auth/me");
  const all = (await api("GET", "/halls")).halls;
  const halls = me.halls ? all.filter((h) => me.halls.includes(h.id)) : all;
  const sel = $("#hall-select");
  sel.replaceChildren(...halls.map((h) => new Option(h.name, h.id)));
  if (st.session.hall && halls.some((h) => h.id === st.session.hall)) sel.value = st.session.hall;
  sel.onchange = () => listWindows(sel.value);
  if (halls.length) await listWindows(sel.value);
  else say("您的账号没有分配大厅，请联系管理员", "error");
}

async function listWindows(hallId) {
  const [detail, states] = await Promise.all([
    api("GET", `/halls/${encodeURIComponent(hallId)}`),
    api("GET", `/halls/${encodeURIComponent(hallId)}/windows`),
  ]);
  const byNo = new Map(states.windows.map((w) => [String(w.number), w]));
  const qname = new Map(detail.queues.map((q) => [q.id, q.name]));
  const list = $("#window-list");
  list.replaceChildren(...detail.windows.map((w) => {
    const s = byNo.get(String(w.number));
    const b = document.createElement("button");
    b.type = "button";
    b.className = "window-choice";
    b.dataset.window = w.number;
    const mine = s && s.clerk === st.session.username;
    const taken = s && s.clerk && !mine;
    b.disabled = Boolean(taken);
    const queues = w.queues.map((q) => qname.get(q) || q).join("、");
    b.innerHTML = "";
    const name = document.createElement("strong");
    name.textContent = w.name;
    const info = document.createElement("span");
    info.textContent = taken ? `已由 ${s.clerk_name || s.clerk} 签到` : mine ? "您已在此签到" : "空闲";
    const qs = document.createElement("small");
    qs.textContent = queues;
    b.append(name, info, qs);
    b.onclick = () => signIn(hallId, String(w.number));
    return b;
  }));
}

async function signIn(hallId, number) {
  try {
    st.session.hall = hallId;
    st.session.window = number;
    save();
    const w = await api("POST", `/halls/${encodeURIComponent(hallId)}/windows/${encodeURIComponent(number)}/sign-in`);
    logLine(`签到 ${w.name}`);
    say(`已在${w.name}签到`, "ok");
    await enterConsole(w);
  } catch (err) {
    say(err.message, "error");
  }
}

// ---- the console ------------------------------------------------------------------------------------
function winPath(action = "") {
  return `/halls/${encodeURIComponent(st.session.hall)}/windows/${encodeURIComponent(st.session.window)}${action ? "/" + action : ""}`;
}

async function enterConsole(w) {
  st.hall = await api("GET", `/halls/${encodeURIComponent(st.session.hall)}`);
  $("#where").textContent = `${st.hall.name} · ${w ? w.name : st.session.window + "号窗口"}`;
  $("#who").textContent = `${st.session.name}（${st.session.username}）`;
  show("console-view");
  if (w) renderWindow(w);
  connect();
  refreshWaiting();
}

function connect() {
  if (st.socket) st.socket.disconnect();
  const conn = $("#conn");
  conn.hidden = false;
  const socket = io({
    auth: { hall: st.session.hall, token: st.session.token, window: st.session.window },
    reconnectionDelay: 500, reconnectionDelayMax: 3000,
  });
  st.socket = socket;
  socket.on("snapshot", (snap) => {
    st.offsetMs = Date.parse(snap.at) - Date.now();
    const w = snap.windows.find((x) => String(x.number) === String(st.session.window));
    if (w) renderWindow(w);
    conn.textContent = "● 已连接";
    conn.className = "on";
    refreshWaiting();
  });
  socket.on("window", (w) => {
    if (String(w.number) === String(st.session.window)) renderWindow(w);
  });
  socket.on("ticket", scheduleWaiting); // any ticket change may move this window's next numbers
  socket.on("queues", scheduleWaiting);
  socket.on("disconnect", () => {
    conn.textContent = "○ 连接中断，正在重连…";
    conn.className = "off";
  });
  socket.on("connect_error", async () => {
    conn.textContent = "○ 连接中断，正在重连…";
    conn.className = "off";
    if (socket.active) return; // the client retries by itself
    // refused by the server: an expired token or a lost window right; find out which
    try {
      await api("GET", "/auth/me");
      setTimeout(() => { if (st.socket === socket) socket.connect(); }, 3000);
    } catch (err) {
      if (err.status !== 401) setTimeout(() => { if (st.socket === socket) socket.connect(); }, 3000);
    }
  });
}

function scheduleWaiting() {
  if (st.refreshTimer) return;
  st.refreshTimer = setTimeout(() => {
    st.refreshTimer = null;
    refreshWaiting();
  }, 300);
}

async function refreshWaiting() {
  if (!st.session || !st.session.window) return;
  try {
    st.waiting = await api("GET", winPath("waiting") + "?limit=5");
    renderWaiting();
  } catch (err) {
    if (err.status !== 0) say(err.message, "error");
  }
}

async function refreshWindow() {
  if (!st.session || !st.session.window) return;
  try {
    renderWindow(await api("GET", winPath()));
  } catch (err) {
    if (err.status !== 0) say(err.message, "error");
  }
}

function renderWaiting() {
  const box = $("#queues");
  const w = st.waiting;
  const blocks = w.queues.map((q) => {
    const div = document.createElement("div");
    div.className = "queue";
    div.dataset.queue = q.id;
    const h = document.createElement("div");
    h.className = "queue-head";
    h.textContent = `${q.name}（${q.prefix}）`;
    const n = document.createElement("div");
    n.className = "queue-figures";
    n.innerHTML = "";
    const count = document.createElement("b");
    count.className = "waiting-count";
    count.textContent = q.waiting;
    n.append("等候 ", count, ` 人 · 最长等候 ${q.waiting ? minutes(q.longest_wait_seconds) : "—"}`);
    const next = document.createElement("div");
    next.className = "next";
    next.append(...(q.next.length ? q.next.map(chip) : [Object.assign(document.createElement("span"), { textContent: "暂无等候", className: "muted" })]));
    div.append(h, n, next);
    return div;
  });
  if (w.sent_here.length) {
    const div = document.createElement("div");
    div.className = "queue";
    const h = document.createElement("div");
    h.className = "queue-head";
    h.textContent = "转给本窗口";
    const next = document.createElement("div");
    next.className = "next";
    next.append(...w.sent_here.map(chip));
    div.append(h, next);
    blocks.push(div);
  }
  box.replaceChildren(...blocks);
  $("[data-action=call-specific]").title = w.allow_call_specific ? "" : "本大厅不允许指定叫号";
}

function chip(t) {
  const s = document.createElement("span");
  s.className = "chip" + (t.priority ? " prio" : "");
  s.textContent = t.number + (t.priority ? " 优" : "");
  s.dataset.ticket = t.id;
  return s;
}

function renderWindow(w) {
  st.win = w;
  $("#win-status").textContent = w.status_label + (w.status === "paused" && w.pause_reason ? `（${w.pause_reason}）` : "");
  $("#win-status").dataset.status = w.status;
  const t = w.ticket;
  $("#cur-number").textContent = t ? t.number : "—";
  $("#cur-detail").textContent = t
    ? `${t.queue_name} · ${t.status_label}${t.priority ? " · 优先" : ""}${t.recalls ? ` · 已重呼${t.recalls}次` : ""}${t.stage && t.stage !== "受理" ? " · " + t.stage : ""}`
    : "";
  const pause = $("[data-action=pause] .label");
  pause.textContent = w.status === "paused" ? "恢复服务" : "暂停";
  const signIn = $("[data-action=sign-in]");
  signIn.hidden = w.status !== "closed";
  const enabled = {
    closed: ["sign-in"],
    idle: ["call-next", "call-specific", "reactivate", "pause", "sign-out"],
    calling: ["recall", "start", "no-show", "transfer", "reactivate"],
    serving: ["finish", "transfer", "reactivate"],
    paused: ["pause", "reactivate", "sign-out"],
  }[w.status] || [];
  for (const b of $$("#actions button")) b.disabled = !enabled.includes(b.dataset.action);
  tickTimer();
}

function tickTimer() {
  const w = st.win;
  if (!w) return;
  const now = Date.now() + st.offsetMs;
  let label = "", since = null;
  if (w.ticket && w.status === "serving") {
    label = "办理用时";
    since = w.ticket.started_at;
  } else if (w.ticket) {
    label = "呼叫后已过";
    since = w.ticket.called_at;
  } else if (w.status === "paused") {
    label = "已暂停";
    since = w.since;
  } else if (w.status === "idle") {
    label = "空闲";
    since = w.since;
  }
  $("#timer-label").textContent = label;
  $("#timer").textContent = since ? mmss(now - Date.parse(since)) : "";
}
setInterval(tickTimer, 1000);

// ---- actions ----------------------------------------------------------------------------------------
// One action at a time, buttons, keys and dialogs alike: a second press while a request is on its
// way does nothing (false).
async function whileBusy(fn) {
  if (st.busy) return false;
  st.busy = true;
  document.body.classList.add("busy");
  try {
    await fn();
  } finally {
    st.busy = false;
    document.body.classList.remove("busy");
  }
  return true;
}

async function act(label, fn) {
  const ran = await whileBusy(async () => {
    try {
      await fn();
    } catch (err) {
      say(`${label}失败：${err.message}`, "error");
    }
  });
  if (ran) await refreshWindow();
}

const ACTIONS = {
  "call-next": () => act("叫号", async () => {
    const r = await api("POST", winPath("call-next"));
    if (r.ticket) { say(r.message, "ok"); logLine(`叫号 ${r.ticket.number}`); } else say(r.message, "info");
  }),
  "recall": () => act("重呼", async () => {
    const t = await api("POST", winPath("recall"));
    say(`已重呼 ${t.number}（第${t.recalls}次）`, "ok");
    logLine(`重呼 ${t.number}`);
  }),
  "start": () => act("开始办理", async () => {
    const t = await api("POST", winPath("start"));
    say(`开始办理 ${t.number}`, "ok");
    logLine(`开始办理 ${t.number}`);
  }),
  "finish": () => finishDialog(),
  "no-show": () => act("过号", async () => {
    const t = await api("POST", winPath("no-show"));
    say(`${t.number} 已标记过号`, "ok");
    logLine(`过号 ${t.number}`);
  }),
  "transfer": () => transferDialog(),
  "pause": () => (st.win && st.win.status === "paused"
    ? act("恢复服务", async () => {
      await api("POST", winPath("resume"));
      say("已恢复服务", "ok");
      logLine("恢复服务");
    })
    : pauseDialog()),
  "call-specific": () => callSpecificDialog(),
  "reactivate": () => reactivateDialog(),
  "sign-in": () => act("签到", async () => {
    await api("POST", winPath("sign-in"));
    say("已签到", "ok");
    logLine("签到");
  }),
  "sign-out": () => {
    if (!confirm("确认签退本窗口？")) return;
    act("签退", async () => {
      await api("POST", winPath("sign-out"));
      logLine("签退");
      if (st.socket) { st.socket.disconnect(); st.socket = null; }
      $("#conn").hidden = true;
      st.session.window = null;
      save();
      say("已签退", "ok");
      await choose();
    });
  },
};

for (const b of $$("#actions button")) {
  b.addEventListener("click", () => { if (!b.disabled) ACTIONS[b.dataset.action](); });
}

document.addEventListener("keydown", (e) => {
  if (document.querySelector("dialog[open]")) return; // dialogs handle their own keys
  const action = KEYS[e.key];
  if (!action || $("#console-view").hidden) return;
  e.preventDefault(); // F1 help, F7 caret browsing, F10 menu...
  const b = $(`#actions button[data-action="${action}"]`);
  if (b && !b.disabled) ACTIONS[action]();
  else if (b) say(`当前状态不能${b.textContent.replace(/^F\d+/, "")}`, "info");
});

// ---- dialogs ----------------------------------------------------------------------------------------
// Each dialog: digits pick an option, Enter confirms, Esc cancels. `run(form)` returns a message to
// show inside the dialog on failure (it stays open), or nothing on success.
function openDialog(id, { setup, run, digits = "input[type=radio]" }) {
  const dlg = $("#" + id);
  const form = $("form", dlg);
  form.reset();
  $(".dlg-error", dlg).textContent = "";
  const num = $(".dlg-number", dlg);
  if (num) num.textContent = st.win && st.win.ticket ? st.win.ticket.number : "";
  if (setup) setup(form, dlg);
  const onKey = (e) => {
    if (/^[1-9]$/.test(e.key) && !(e.target instanceof HTMLInputElement && e.target.type === "text")) {
      const opts = $$(digits, dlg);
      const o = opts[Number(e.key) - 1];
      if (o) { o.checked = true; o.dispatchEvent(new Event("change", { bubbles: true })); e.preventDefault(); }
    } else if (e.key in KEYS) {
      e.preventDefault();
    }
  };
  dlg.addEventListener("keydown", onKey);
  form.onsubmit = async (e) => {
    e.preventDefault();
    if (e.submitter && e.submitter.value === "cancel") return dlg.close();
    let problem;
    if (!(await whileBusy(async () => { problem = await run(form, dlg); }))) return; // Enter pressed again
    if (problem) $(".dlg-error", dlg).textContent = problem;
    else dlg.close();
  };
  dlg.addEventListener("close", () => { dlg.removeEventListener("keydown", onKey); refreshWindow(); }, { once: true });
  dlg.showModal();
  const first = $("input[type=text], input:not([type]), select", dlg);
  if (first && id === "pick-dialog") first.focus();
  else $("button[value=ok]", dlg).focus();
}

async function tryApi(label, fn) {
  try {
    await fn();
    return null;
  } catch (err) {
    return `${label}失败：${err.message}`;
  }
}

function finishDialog() {
  openDialog("finish-dialog", {
    run: (form) => {
      const outcome = form.outcome.value;
      if (!outcome) return "请选择办理结果（1 即办件 / 2 承诺件 / 3 退回）";
      const case_no = form.case_no.value.trim() || null;
      return tryApi("办结", async () => {
        const t = await api("POST", winPath("finish"), { outcome, case_no });
        say(`${t.number} 已办结（${OUTCOMES[outcome]}${case_no ? "，办件编号 " + case_no : ""}）`, "ok");
        logLine(`办结 ${t.number} ${OUTCOMES[outcome]}${case_no ? " " + case_no : ""}`);
      });
    },
  });
}

function pauseDialog() {
  openDialog("pause-dialog", {
    setup: (form) => {
      form.other.oninput = () => { form.reason.value = "other"; };
    },
    run: (form) => {
      let reason = form.reason.value;
      if (!reason) return "请选择暂停原因";
      if (reason === "other") reason = form.other.value.trim();
      if (!reason) return "请填写暂停原因";
      return tryApi("暂停", async () => {
        await api("POST", winPath("pause"), { reason });
        say(`已暂停服务（${reason}）`, "ok");
        logLine(`暂停：${reason}`);
      });
    },
  });
}

function transferDialog() {
  openDialog("transfer-dialog", {
    setup: (form) => {
      const cur = st.win && st.win.ticket ? st.win.ticket.queue : null;
      form.to_queue.replaceChildren(...st.hall.queues.filter((q) => q.id !== cur)
        .map((q) => new Option(`${q.name}（${q.prefix}）`, q.id)));
      form.to_window.replaceChildren(...st.hall.windows.filter((w) => String(w.number) !== String(st.session.window))
        .map((w) => new Option(w.name, w.number)));
      form.to_queue.onfocus = () => { form.mode.value = "queue"; };
      form.to_window.onfocus = () => { form.mode.value = "window"; };
    },
    run: (form) => {
      const mode = form.mode.value;
      const body = mode === "queue" ? { to_queue: form.to_queue.value }
        : mode === "window" ? { to_window: form.to_window.value } : { next_stage: true };
      return tryApi("转移", async () => {
        const t = await api("POST", winPath("transfer"), body);
        const where = mode === "queue" ? form.to_queue.selectedOptions[0].textContent
          : mode === "window" ? form.to_window.selectedOptions[0].textContent : "下一环节";
        say(`${t.number} 已转到${where}`, "ok");
        logLine(`转移 ${t.number} → ${where}`);
      });
    },
  });
}

function pickDialog(title, items, confirm) {
  // items: [{id, label, number}]; typing filters, Enter takes the only/selected match
  openDialog("pick-dialog", {
    digits: ".pick-list input[type=radio]",
    setup: (form, dlg) => {
      $(".pick-title", dlg).textContent = title;
      const list = $(".pick-list", dlg);
      const render = () => {
        const f = form.filter.value.trim().toUpperCase();
        const shown = items.filter((i) => !f || i.number.toUpperCase().includes(f));
        list.replaceChildren(...(shown.length ? shown.map((i, n) => {
          const l = document.createElement("label");
          l.className = "pick";
          const r = document.createElement("input");
          r.type = "radio";
          r.name = "pick";
          r.value = i.id;
          if (n === 0) r.checked = true;
          l.append(r, ` ${i.label}`);
          return l;
        }) : [Object.assign(document.createElement("p"), { textContent: "没有符合的票号", className: "muted" })]));
      };
      form.filter.oninput = render;
      render();
    },
    run: (form) => {
      const checked = $(".pick-list input:checked", form);
      if (!checked) return "请选择一个票号";
      const item = items.find((i) => String(i.id) === checked.value);
      return tryApi(title, () => confirm(item));
    },
  });
}

async function callSpecificDialog() {
  let w;
  try {
    w = await api("GET", winPath("waiting") + "?limit=50");
  } catch (err) {
    return say(err.message, "error");
  }
  if (!w.allow_call_specific) return say("本大厅不允许指定叫号", "error");
  const items = [...w.sent_here, ...w.queues.flatMap((q) => q.next)]
    .map((t) => ({ id: t.id, number: t.number, label: `${t.number}${t.priority ? "（优先）" : ""}${t.sent_here ? "（转给本窗口）" : ""}` }));
  pickDialog("指定叫号", items, async (item) => {
    const r = await api("POST", winPath("call"), { ticket_id: item.id });
    say(r.message, "ok");
    logLine(`指定叫号 ${item.number}`);
  });
}

async function reactivateDialog() {
  let r;
  try {
    r = await api("GET", winPath("no-shows"));
  } catch (err) {
    return say(err.message, "error");
  }
  if (!r.tickets.length) return say("今天没有可重排的过号票", "info");
  const items = r.tickets.map((t) => ({ id: t.id, number: t.number,
    label: `${t.number} ${t.queue_name}${t.called_at ? " · 叫号于 " + clock(new Date(t.called_at)) : ""}` }));
  pickDialog("过号重排", items, async (item) => {
    await api("POST", `/halls/${encodeURIComponent(st.session.hall)}/tickets/${item.id}/reactivate`);
    say(`${item.number} 已重新排队`, "ok");
    logLine(`过号重排 ${item.number}`);
  });
}

// ---- start --------------------------------------------------------------------------------------
(async () => {
  if (!st.session || !st.session.token) {
    show("login-view");
    $("#username").focus();
    return;
  }
  try {
    await api("GET", "/auth/me");
  } catch (err) {
    if (err.status === 401) return; // signedOut() already showed the login form
    show("login-view");
    return say(err.message, "error");
  }
  if (st.session.hall && st.session.window) {
    try {
      const w = await api("GET", winPath());
      if (w.clerk === st.session.username) return await enterConsole(w);
    } catch (err) { /* fall through to choosing */ }
  }
  await choose();
})();
