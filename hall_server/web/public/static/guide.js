// 导服台: staff sign in, then issue tickets (channel "guide") with the reason in the ticket's note.
"use strict";
const hall = document.body.dataset.hall;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
let token = sessionStorage.getItem("guide-token");
let cat = null;

async function call(method, path, body, auth = true) {
  const headers = {"Content-Type": "application/json"};
  if (auth && token) headers.Authorization = "Bearer " + token;
  const r = await fetch("/api/v1" + path, {method, headers, body: body ? JSON.stringify(body) : undefined});
  const d = await r.json().catch(() => ({}));
  if (r.status === 401) { signOut(); }
  if (!r.ok) throw new Error((d.error || {}).message || `请求失败（${r.status}）`);
  return d;
}

function signOut() {
  token = null; sessionStorage.removeItem("guide-token");
  $("issue-card").classList.add("hidden"); $("login-card").classList.remove("hidden"); $("who").textContent = "";
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  try {
    const d = await call("POST", "/auth/login", {username: $("username").value.trim(), password: $("password").value}, false);
    if (d.must_change_password) { $("login-error").textContent = "请先在窗口工作台修改初始密码后再登录"; return; }
    token = d.token; sessionStorage.setItem("guide-token", token);
    await start();
  } catch (err) { $("login-error").textContent = err.message; }
});
$("logout-btn").addEventListener("click", async () => { try { await call("POST", "/auth/logout"); } catch (e) {} signOut(); });

function fillMatters() {
  const q = $("filter").value.trim().toLowerCase();
  const hit = (x) => !q || x.name.toLowerCase().includes(q) || x.initials.includes(q) || x.pinyin.includes(q);
  $("matter").innerHTML =
    `<optgroup label="一件事">${cat.bundles.filter(hit).map((b) => `<option value="bundle:${esc(b.id)}">${esc(b.name)}</option>`).join("")}</optgroup>` +
    `<optgroup label="事项">${cat.matters.filter(hit).map((m) => `<option value="matter:${esc(m.id)}">${esc(m.name)}（${esc(m.queue_name)}）</option>`).join("")}</optgroup>` +
    `<optgroup label="队列">${cat.queues.map((x) => `<option value="queue:${esc(x.id)}">${esc(x.name)}（等候${x.waiting}人）</option>`).join("")}</optgroup>`;
}

async function start() {
  const me = await call("GET", "/auth/me");
  if (!me.scopes.includes("tickets:issue")) { $("login-error").textContent = "该账号无取号权限"; signOut(); return; }
  $("who").textContent = me.name + " · 已登录";
  cat = await call("GET", `/halls/${encodeURIComponent(hall)}/catalogue`, null, false);
  $("priority").innerHTML = `<option value="">普通（不优先）</option>` +
    cat.priority_classes.filter((p) => p.id !== "appointment").map((p) => `<option value="${esc(p.id)}">${esc(p.name)}${p.priority ? "" : "（仅标记）"}</option>`).join("");
  fillMatters();
  $("login-card").classList.add("hidden"); $("issue-card").classList.remove("hidden");
}
$("filter").addEventListener("input", fillMatters);

$("issue-btn").addEventListener("click", async () => {
  $("issue-error").textContent = "";
  const pick = $("reason-pick").value, text = $("reason-text").value.trim();
  if (!pick || (pick === "其他" && !text)) { $("issue-error").textContent = "请填写代取号原因"; return; }
  const reason = pick === "其他" ? text : (text ? `${pick}：${text}` : pick);
  const [kind, id] = $("matter").value.split(":");
  if (!id) { $("issue-error").textContent = "请选择事项"; return; }
  const body = {request_id: "guide-" + (crypto.randomUUID ? crypto.randomUUID() : Date.now() + "" + Math.random()).replace(/[^A-Za-z0-9-]/g, ""),
                channel: "guide", note: reason};
  body[kind] = id;
  if ($("priority").value) body.priority_class = $("priority").value;
  const idn = $("id-number").value.trim().toUpperCase();
  if (idn) body.id_number = idn;
  $("issue-btn").disabled = true;
  try {
    const r = await call("POST", `/halls/${encodeURIComponent(hall)}/tickets`, body);
    $("r-queue").textContent = r.ticket.queue_name + (r.ticket.priority ? " · 优先" : "");
    $("r-number").textContent = r.ticket.number;
    $("r-ahead").textContent = `前面还有 ${r.people_ahead} 人，预计等待约 ${r.estimated_wait_minutes} 分钟`;
    $("r-link").textContent = r.status_url; $("r-link").href = r.status_url;
    // the hall's clock, not the desk PC's: a PC set to another time zone must not misdate the slip
    const local = {hour12: false, timeZone: cat.hall.timezone};
    $("r-time").textContent = "取号时间 " + new Date(r.ticket.issued_at).toLocaleString("zh-CN", local);
    $("result-card").classList.remove("hidden");
    await showQr(r.status_url.split("/t/").pop());
    if ($("auto-print").checked) window.print();
    const pc = cat.priority_classes.find((p) => p.id === r.ticket.priority_class);
    $("log").insertAdjacentHTML("afterbegin", `<tr><td>${new Date(r.ticket.issued_at).toLocaleTimeString("zh-CN", local)}</td><td>${esc(r.ticket.number)}</td>
      <td>${esc(r.ticket.queue_name)}</td><td>${esc(pc ? pc.name : "普通")}</td><td>${esc(reason)}</td></tr>`);
    $("id-number").value = ""; $("reason-text").value = ""; $("reason-pick").value = "";
  } catch (err) { $("issue-error").textContent = err.message; }
  finally { $("issue-btn").disabled = false; }
});

// The slip goes to the desk PC's printer through the browser's print (public.css: an 80 mm slip,
// nothing else of the page). The QR code is loaded before printing so that it is on the paper.
function showQr(ticketToken) {
  return new Promise((resolve) => {
    const img = $("r-qr");
    img.onload = img.onerror = () => resolve();
    img.src = `/t/${encodeURIComponent(ticketToken)}/qr.svg`;
  });
}
$("auto-print").checked = localStorage.getItem("guide-auto-print") !== "0";
$("auto-print").addEventListener("change", () => localStorage.setItem("guide-auto-print", $("auto-print").checked ? "1" : "0"));
$("print-btn").addEventListener("click", () => window.print());

if (token) start().catch(signOut);
