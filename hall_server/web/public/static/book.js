// 网上预约: matter -> date -> slot -> ID number -> code. Cancellation needs code + ID number.
"use strict";
const hall = document.body.dataset.hall;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const api = (p) => `/api/v1/halls/${encodeURIComponent(hall)}${p}`;
let cat = null, chosen = null, requestId = null;

function newRequest() { requestId = "web-" + (crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random()).replace(/[^A-Za-z0-9-]/g, ""); }

async function call(method, path, body) {
  const r = await fetch(api(path), {method, headers: {"Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
  const d = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((d.error || {}).message || `请求失败（${r.status}）`);
  return d;
}

function fillMatters() {
  const q = $("matter-filter").value.trim().toLowerCase();
  const groups = {};
  for (const m of cat.matters) {
    if (q && !(m.name.toLowerCase().includes(q) || m.initials.includes(q) || m.pinyin.includes(q))) continue;
    (groups[m.department || m.queue_name] ||= []).push(m);
  }
  const prev = $("matter").value;
  $("matter").innerHTML = Object.entries(groups).map(([g, ms]) =>
    `<optgroup label="${esc(g)}">${ms.map((m) => `<option value="${esc(m.id)}">${esc(m.name)}</option>`).join("")}</optgroup>`).join("");
  if ([...$("matter").options].some((o) => o.value === prev)) $("matter").value = prev;
  loadSlots();
}

function fillDates() {
  const days = cat.appointments.days_ahead;
  const out = [];
  for (let i = 0; i <= days; i++) {
    const d = new Date(Date.now() + i * 86400000);
    const iso = d.toLocaleDateString("sv-SE", {timeZone: cat.hall.timezone});
    const label = d.toLocaleDateString("zh-CN", {timeZone: cat.hall.timezone, month: "long", day: "numeric", weekday: "short"});
    out.push(`<option value="${iso}">${i === 0 ? "今天 " : i === 1 ? "明天 " : ""}${label}</option>`);
  }
  $("date").innerHTML = out.join("");
}

async function loadSlots() {
  chosen = null;
  const matter = $("matter").value;
  if (!matter) { $("slots").innerHTML = '<p class="muted">没有符合条件的事项</p>'; return; }
  $("slots").innerHTML = '<p class="muted">正在查询可预约时段…</p>';
  try {
    const d = await call("GET", `/appointment-slots?matter=${encodeURIComponent(matter)}&date=${$("date").value}`);
    $("slots").innerHTML = d.slots.length ? d.slots.map((s) =>
      `<button type="button" class="slot" data-start="${esc(s.start)}" ${s.left ? "" : "disabled"} data-testid="slot">
        ${esc(s.label.split(" ")[1])}<br><span class="muted">${s.left ? "剩余 " + s.left : "已约满"}</span></button>`).join("")
      : '<p class="muted">当天已没有可预约的时段，请选择其他日期</p>';
  } catch (e) {
    $("slots").innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}
$("slots").addEventListener("click", (e) => {
  const b = e.target.closest("[data-start]");
  if (!b) return;
  for (const x of document.querySelectorAll(".slot")) x.classList.remove("chosen");
  b.classList.add("chosen"); chosen = b.dataset.start;
});

$("book-btn").addEventListener("click", async () => {
  $("book-error").textContent = "";
  if (!chosen) { $("book-error").textContent = "请选择预约时段"; return; }
  const id = $("id-number").value.trim().toUpperCase();
  if (!/^\d{17}[\dX]$/.test(id)) { $("book-error").textContent = "请输入18位身份证号码"; return; }
  $("book-btn").disabled = true;
  try {
    const a = await call("POST", "/appointments", {matter: $("matter").value, slot_start: chosen, id_number: id,
                                                    name: $("name").value.trim() || null, request_id: requestId});
    $("code").textContent = a.code;
    $("done-detail").textContent = `${a.matter_name || a.queue_name} · ${a.slot_label} · ${a.person_masked}`;
    $("done-hint").textContent = `请在预约时段开始前 ${cat.appointments.early_minutes} 分钟内到大厅自助取号机选择“预约签到”，输入预约码或刷身份证取号；` +
      (cat.appointments.late_policy === "refuse" ? `迟到超过 ${cat.appointments.late_minutes} 分钟预约作废。` : `迟到超过 ${cat.appointments.late_minutes} 分钟按普通号排队。`);
    $("book-card").classList.add("hidden"); $("done-card").classList.remove("hidden");
  } catch (e) {
    $("book-error").textContent = e.message;
    loadSlots();
  } finally { $("book-btn").disabled = false; }
});
$("again-btn").addEventListener("click", () => {
  newRequest(); $("done-card").classList.add("hidden"); $("book-card").classList.remove("hidden"); loadSlots();
});

async function codeAction(path) {
  $("c-result").className = "";
  try {
    const a = await call("POST", path, {code: $("c-code").value.trim(), id_number: $("c-id").value.trim().toUpperCase()});
    $("c-result").className = "ok";
    $("c-result").textContent = `${a.status_label}：${a.matter_name || a.queue_name} · ${a.slot_label}`;
  } catch (e) { $("c-result").className = "error"; $("c-result").textContent = e.message; }
}
$("lookup-btn").addEventListener("click", () => codeAction("/appointments/lookup"));
$("cancel-btn").addEventListener("click", () => codeAction("/appointments/cancel"));
$("matter").addEventListener("change", loadSlots);
$("date").addEventListener("change", loadSlots);
$("matter-filter").addEventListener("input", fillMatters);

(async () => {
  newRequest();
  cat = await call("GET", "/catalogue");
  fillDates(); fillMatters();
})();
