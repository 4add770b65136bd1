// 自助取号机 touch UI. Talks only to the local kiosk process (same origin), never to the hall server.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const RESULT_SECONDS = 20;

let catalogue = null;
let kstate = {};
let selection = null;   // {kind: "matter"|"bundle", item, optional: Set}
let tapId = null;       // one per chosen action; reused by double taps and 重试
let lastAction = null;  // () => Promise, what 重试 repeats
let busy = false;
let currentTab = "zones";
let code = "";
let homeTimer = null;
let lastCardSeq = 0;
window.__spoken = [];   // what was said aloud (for tests and for staff checking the speaker)

function newTap() {
  const rnd = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
  return "t" + rnd.replace(/[^A-Za-z0-9]/g, "").slice(0, 30);
}

// ---- 适老化: large text and spoken prompts (the browser's speechSynthesis, zh-CN) ----
function largeMode() { return document.body.classList.contains("large"); }
function speak(text) {
  if (!largeMode() || !text) return;
  window.__spoken.push(text);
  try {
    if (!("speechSynthesis" in window)) return;
    speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(text);
    u.lang = "zh-CN"; u.rate = 0.85;
    const zh = speechSynthesis.getVoices().find((v) => v.lang && v.lang.toLowerCase().startsWith("zh"));
    if (zh) u.voice = zh;
    speechSynthesis.speak(u);
  } catch (e) { /* no speech on this machine: the large text still helps */ }
}
$("large-toggle").addEventListener("click", () => {
  const on = document.body.classList.toggle("large");
  $("large-toggle").setAttribute("aria-pressed", on ? "true" : "false");
  localStorage.setItem("kiosk-large", on ? "1" : "0");
  if (on) speak("已开启长辈模式，字体放大，并有语音提示。" + currentPrompt());
});
if (localStorage.getItem("kiosk-large") === "1") {
  document.body.classList.add("large");
  $("large-toggle").setAttribute("aria-pressed", "true");
}

// ---- screens ----
let currentScreen = "home";
function show(name, prompt) {
  for (const s of document.querySelectorAll(".screen")) s.classList.add("hidden");
  $("screen-" + name).classList.remove("hidden");
  currentScreen = name;
  clearTimeout(homeTimer);
  if (prompt) speak(prompt);
}
function currentPrompt() {
  const el = document.querySelector(".screen:not(.hidden) .prompt");
  return el ? el.textContent : "";
}
function goHome() {
  selection = null; tapId = null; lastAction = null; code = "";
  fetch("/api/card/clear", {method: "POST"}).catch(() => {});
  renderTab();
  show("home", "请选择办理方式");
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-action=home]");
  if (b) goHome();
});

// ---- catalogue ----
async function loadCatalogue() {
  try {
    const r = await fetch("/api/catalogue");
    if (!r.ok) throw new Error("not loaded");
    catalogue = await r.json();
    $("hall-name").textContent = catalogue.hall.name + " · 自助取号";
    renderTab();
  } catch (e) {
    setTimeout(loadCatalogue, 1500);
  }
}
function queueInfo(qid) {
  const q = (catalogue.queues || []).find((x) => x.id === qid);
  return q ? `等候 ${q.waiting} 人` : "";
}
function matterTile(m) {
  return `<button class="tile" data-matter="${esc(m.id)}" data-testid="matter-${esc(m.id)}">
    <span class="name">${esc(m.name)}</span>
    <span class="sub">${esc(m.department || m.queue_name)} · ${queueInfo(m.queue)}</span>
    ${m.needs_identity ? '<span class="badge">须刷身份证</span>' : ""}</button>`;
}
function bundleTile(b) {
  return `<button class="tile" data-bundle="${esc(b.id)}" data-testid="bundle-${esc(b.id)}">
    <span class="name">${esc(b.name)}</span>
    <span class="sub">必办 ${b.mandatory.length} 项${b.optional.length ? "，可选 " + b.optional.length + " 项" : ""}${b.promised_minutes ? "，约 " + b.promised_minutes + " 分钟办结" : ""}</span></button>`;
}

// ---- home tabs ----
for (const t of document.querySelectorAll(".tab")) {
  t.addEventListener("click", () => {
    if (t.dataset.tab === "checkin") { openCheckin(); return; }
    currentTab = t.dataset.tab;
    renderTab();
  });
}
function renderTab() {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === currentTab);
  const body = $("tab-body");
  if (!catalogue) { body.innerHTML = '<p class="hint">正在连接服务器…</p>'; return; }
  if (currentTab === "zones") {
    body.innerHTML = '<div class="tiles">' + catalogue.zones.map((z) =>
      `<button class="tile" data-zone="${esc(z.id)}" data-testid="zone-${esc(z.id)}"><span class="name">${esc(z.name)}</span></button>`).join("") + "</div>";
  } else if (currentTab === "departments") {
    body.innerHTML = '<div class="tiles">' + catalogue.departments.map((d) =>
      `<button class="tile" data-dept="${esc(d)}"><span class="name">${esc(d)}</span></button>`).join("") + "</div>";
  } else if (currentTab === "bundles") {
    body.innerHTML = '<div class="tiles">' + catalogue.bundles.map(bundleTile).join("") + "</div>";
  } else if (currentTab === "search") {
    const keys = "QWERTYUIOPASDFGHJKLZXCVBNM".split("");
    body.innerHTML = `<input class="search-input" id="search" data-testid="search" placeholder="输入事项名称或拼音首字母，如 yyzz" autocomplete="off">
      <div class="keyboard">${keys.map((k) => `<button data-key="${k}">${k}</button>`).join("")}
      <button data-key="DEL">删除</button><button data-key="CLR">清空</button></div>
      <div class="tiles" id="search-results" data-testid="search-results"></div>`;
    $("search").addEventListener("input", runSearch);
    runSearch();
  }
}
$("tab-body").addEventListener("click", (e) => {
  const z = e.target.closest("[data-zone]"), d = e.target.closest("[data-dept]"), k = e.target.closest("[data-key]");
  if (z) {
    const zone = catalogue.zones.find((x) => x.id === z.dataset.zone);
    const items = catalogue.matters.filter((m) => m.zone === zone.id).map(matterTile).join("") +
      catalogue.bundles.filter((b) => (catalogue.queues.find((q) => q.id === b.queue) || {}).zone === zone.id).map(bundleTile).join("");
    openList(zone.name + " · 请选择事项", items);
  } else if (d) {
    openList(d.dataset.dept + " · 请选择事项", catalogue.matters.filter((m) => m.department === d.dataset.dept).map(matterTile).join(""));
  } else if (k) {
    const input = $("search");
    if (k.dataset.key === "DEL") input.value = input.value.slice(0, -1);
    else if (k.dataset.key === "CLR") input.value = "";
    else input.value += k.dataset.key.toLowerCase();
    runSearch();
  }
  pickFrom(e);
});
function runSearch() {
  const q = ($("search").value || "").trim().toLowerCase().replace(/\s+/g, "");
  const hit = (x) => !q || x.name.toLowerCase().includes(q) || x.initials.includes(q) || x.pinyin.includes(q);
  const out = catalogue.bundles.filter(hit).map(bundleTile).concat(catalogue.matters.filter(hit).map(matterTile));
  $("search-results").innerHTML = out.length ? out.join("") : '<p class="hint">没有找到相关事项，请换个关键词，或到导服台咨询</p>';
}
function openList(title, html) {
  $("list-title").textContent = title;
  $("list-body").innerHTML = html || '<p class="hint">该区域暂无可自助取号的事项</p>';
  show("list", title);
}
$("list-body").addEventListener("click", pickFrom);
function pickFrom(e) {
  const m = e.target.closest("[data-matter]"), b = e.target.closest("[data-bundle]");
  if (m) openConfirm({kind: "matter", item: catalogue.matters.find((x) => x.id === m.dataset.matter), optional: new Set()});
  else if (b) openConfirm({kind: "bundle", item: catalogue.bundles.find((x) => x.id === b.dataset.bundle), optional: new Set()});
}

// ---- confirm and issue ----
function needsCard() { return selection && selection.kind === "matter" && selection.item.needs_identity; }
function openConfirm(sel) {
  selection = sel; tapId = newTap();
  const it = sel.item;
  $("confirm-title").textContent = it.name;
  let html = `<div>办理队列：${esc(it.queue_name)}（${queueInfo(it.queue)}）</div>`;
  if (sel.kind === "bundle") {
    html += `<div>必办事项：</div><ul>${it.mandatory.map((m) => `<li>${esc(m.name)}</li>`).join("")}</ul>`;
    if (it.optional.length) {
      html += `<div>可选事项（可多选）：</div>` + it.optional.map((m) =>
        `<label><input type="checkbox" data-optional="${esc(m.id)}">${esc(m.name)}</label>`).join("");
    }
  }
  $("confirm-detail").innerHTML = html;
  for (const c of document.querySelectorAll("[data-optional]")) {
    c.addEventListener("change", () => { c.checked ? sel.optional.add(c.dataset.optional) : sel.optional.delete(c.dataset.optional); });
  }
  renderCard();
  show("confirm", needsCard() ? `${it.name}。办理该事项需要刷身份证，请将身份证放在感应区` : `${it.name}。请按取号按钮`);
}
function cardHtml(forCheckin) {
  const c = kstate.card, err = kstate.card_error;
  if (c) {
    return {cls: "ok", html: `已读取身份证：<b data-testid="card-name">${esc(c.name)}</b> <span data-testid="card-id">${esc(c.id_masked)}</span>` +
      (c.elderly ? '<span class="elderly" data-testid="elderly">老年人优先</span>' : "")};
  }
  if (err) return {cls: "bad", html: `<span data-testid="card-error">${esc(err.message)}</span><br>请取回身份证，重新放在感应区`};
  if (kstate.reader === "offline") return {cls: "bad", html: "身份证阅读器暂不可用，请到导服台取号"};
  if (forCheckin) return {cls: "", html: "也可将身份证放在感应区签到"};
  if (needsCard()) return {cls: "", html: "请将身份证放在感应区（须刷身份证）"};
  const age = catalogue ? catalogue.hall.elderly_age : 60;
  return {cls: "", html: `${age}周岁以上的老人，刷身份证可优先办理（可不刷）`};
}
function renderCard() {
  const box = $("card-box"), info = cardHtml(false);
  box.className = "card-box " + info.cls; box.innerHTML = info.html;
  const cbox = $("checkin-card"), cinfo = cardHtml(true);
  cbox.className = "card-box " + cinfo.cls; cbox.innerHTML = cinfo.html;
  $("issue-btn").disabled = busy || !kstate.can_issue || (needsCard() && !kstate.card);
  $("checkin-btn").disabled = busy || !kstate.can_issue || !(code.length >= 8 || kstate.card);
}
$("issue-btn").addEventListener("click", () => {
  if (busy || !selection) return;
  const sel = selection;
  const body = {tap_id: tapId, use_card: true};
  body[sel.kind] = sel.item.id;
  if (sel.kind === "bundle") body.optional = Array.from(sel.optional);
  lastAction = () => post("/api/ticket", body);
  lastAction();
});

async function post(url, body) {
  if (busy) return;
  busy = true; renderCard();
  $("error-text").textContent = "";
  show("busy", "正在出票，请稍候");
  try {
    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await r.json().catch(() => ({error: {message: "取号机无响应，请到导服台取号"}}));
    if (r.ok) showResult(data); else showError(data.error || {});
  } catch (e) {
    showError({message: "取号机程序无响应，请稍候重试", retry: true});
  } finally {
    busy = false; renderCard();
  }
}
function showResult(d) {
  const t = d.ticket;
  $("r-queue").textContent = t.queue_name;
  $("r-prio").textContent = d.priority_label || "";
  $("r-number").textContent = t.number;
  $("r-ahead").textContent = `您前面还有 ${d.people_ahead} 人等候`;
  $("r-wait").textContent = `预计等待约 ${d.estimated_wait_minutes} 分钟`;
  tapId = null; lastAction = null;
  show("result", `取号成功。您的号码是 ${t.number.split("").join(" ")}，前面还有 ${d.people_ahead} 人。请取走小票`);
  homeTimer = setTimeout(goHome, RESULT_SECONDS * 1000);
}
function showError(err) {
  $("error-text").textContent = err.message || "出现问题，请到导服台取号";
  $("retry-btn").classList.toggle("hidden", !err.retry);
  show("error", err.message);
  if (!err.retry) { tapId = null; homeTimer = setTimeout(goHome, 30000); }
}
$("retry-btn").addEventListener("click", () => { if (lastAction) lastAction(); });

// ---- appointment check-in ----
function openCheckin() {
  code = ""; tapId = newTap(); selection = null;
  $("code-display").textContent = "";
  $("code-keypad").innerHTML = "1 2 3 4 5 6 7 8 9 删除 0 清空".split(" ").map((k) => `<button data-code="${k}">${k}</button>`).join("");
  renderCard();
  show("checkin", "预约签到。请输入八位预约码，或将身份证放在感应区");
}
$("code-keypad").addEventListener("click", (e) => {
  const b = e.target.closest("[data-code]");
  if (!b) return;
  const k = b.dataset.code;
  if (k === "删除") code = code.slice(0, -1); else if (k === "清空") code = ""; else if (code.length < 8) code += k;
  $("code-display").textContent = code;
  renderCard();
});
$("checkin-btn").addEventListener("click", () => {
  if (busy) return;
  const body = {tap_id: tapId};
  if (code.length >= 8) body.code = code;
  lastAction = () => post("/api/check-in", body);
  lastAction();
});

// ---- live state: server link, printer, card ----
async function poll() {
  try {
    const r = await fetch("/api/state", {cache: "no-store"});
    kstate = await r.json();
  } catch (e) {
    kstate = {server_online: false, can_issue: false, notice: "取号机程序无响应，请到导服台取号"};
  }
  const n = $("notice");
  n.textContent = kstate.notice || "";
  n.classList.toggle("hidden", !kstate.notice);
  const seq = kstate.card ? kstate.card.seq : (kstate.card_error ? kstate.card_error.seq : 0);
  if (seq && seq !== lastCardSeq) {
    lastCardSeq = seq;
    if (kstate.card) speak(`已读取身份证${kstate.card.elderly ? "，您可优先办理" : ""}`);
    else if (kstate.card_error) speak(kstate.card_error.message);
  }
  if (kstate.catalogue_loaded && !catalogue) loadCatalogue();
  renderCard();
  setTimeout(poll, 500);
}
// the hall's clock (from the catalogue), whatever the time zone the kiosk PC is set to
setInterval(() => {
  const timeZone = catalogue && catalogue.hall.timezone;
  $("clock").textContent = new Date().toLocaleTimeString("zh-CN", {hour12: false, ...(timeZone ? {timeZone} : {})});
}, 1000);
loadCatalogue();
poll();
// waiting counts on the tiles: refresh the catalogue while nobody is in the middle of something
setInterval(() => { if (currentScreen === "home" && currentTab !== "search") loadCatalogue(); }, 30000);
show("home");
