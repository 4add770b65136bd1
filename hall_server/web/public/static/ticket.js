// 手机排队进度页: numbers only, live from the hall's public room, alert when called.
"use strict";
const token = document.body.dataset.token;
const $ = (id) => document.getElementById(id);
let ticket = null, hall = null, socket = null, alerted = {}, refetchTimer = null;

function fmtWait(sec) { const m = Math.round(sec / 60); return m <= 0 ? "预计很快轮到您" : `预计等待约 ${m} 分钟`; }

async function load() {
  try {
    const r = await fetch(`/api/v1/t/${encodeURIComponent(token)}`, {cache: "no-store"});
    const d = await r.json();
    if (!r.ok) { $("number").textContent = "—"; $("status").textContent = (d.error || {}).message || "未找到该票号"; return; }
    render(d);
    if (!socket) connect(d.hall);
  } catch (e) {
    $("conn").textContent = "网络中断，重试中…";
  }
}

function render(d) {
  ticket = d.ticket; hall = d.hall;
  $("hall-name").textContent = d.hall_name;
  document.title = `${ticket.number} · 排队进度`;
  $("queue-name").textContent = `${ticket.queue_name} · ${ticket.stage}`;
  $("number").textContent = ticket.number;
  $("status").textContent = ticket.status_label + (ticket.window && ["called", "serving"].includes(ticket.status) ? ` · ${ticket.window}号窗口` : "");
  if (ticket.status === "waiting") {
    $("ahead").textContent = `您前面还有 ${d.people_ahead} 人`;
    $("wait").textContent = fmtWait(d.estimated_wait_seconds);
  } else { $("ahead").textContent = ""; $("wait").textContent = ""; }
  if (ticket.status === "called") callAlert(ticket.window, ticket.recalls);
  else if (ticket.status !== "called") $("alert").classList.add("hidden");
  // the hall's clock, whatever the zone the phone is set to (a visitor's phone, a phone left on UTC)
  const clock = d.timezone ? {hour12: false, timeZone: d.timezone} : {hour12: false};
  $("updated").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN", clock);
}

function callAlert(window_, recalls) {
  const key = `${window_}-${recalls}`;
  $("alert").textContent = `请 ${ticket.number} 号到 ${window_} 号窗口办理`;
  $("alert").classList.remove("hidden");
  if (alerted[key]) return;
  alerted[key] = true;
  try { if (navigator.vibrate) navigator.vibrate([600, 200, 600, 200, 600]); } catch (e) {}
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    [0, 0.45, 0.9].forEach((t) => {
      const o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; o.connect(g); g.connect(ctx.destination);
      g.gain.setValueAtTime(0.3, ctx.currentTime + t); o.start(ctx.currentTime + t); o.stop(ctx.currentTime + t + 0.3);
    });
  } catch (e) {}
  try {
    if ("Notification" in window && Notification.permission === "granted") {
      new Notification("轮到您了", {body: `请 ${ticket.number} 号到 ${window_} 号窗口办理`, tag: "ticket-" + ticket.id});
    }
  } catch (e) {}
}

function refetchSoon() {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(load, 300);
}

function connect(hallId) {
  socket = io({auth: {hall: hallId}, transports: ["websocket", "polling"]});
  socket.on("connect", () => { $("conn").textContent = "● 实时"; });
  socket.on("disconnect", () => { $("conn").textContent = "○ 重连中…"; });
  socket.on("snapshot", refetchSoon);
  socket.on("queues", refetchSoon);
  socket.on("ticket", (ev) => {
    if (!ticket) return;
    if (ev.ticket.id === ticket.id) {
      ticket = ev.ticket;
      if (ev.type === "called" || ev.type === "recalled") callAlert(ev.window || ev.ticket.window, ev.ticket.recalls);
      refetchSoon();
    } else if (ev.ticket.queue === ticket.queue) {
      refetchSoon();
    }
  });
}

$("notify-btn").addEventListener("click", async () => {
  if (!("Notification" in window)) { $("notify-btn").textContent = "本浏览器不支持通知，请保持页面打开"; return; }
  const p = await Notification.requestPermission();
  $("notify-btn").textContent = p === "granted" ? "已开启叫号提醒" : "未允许通知，请保持页面打开";
});
load();
setInterval(load, 30000);  // in case a live event is missed
