/* 管理驾驶舱: figures from GET /api/v1/halls/<hall>/dashboard, refreshed on every live event of the
   managers' Socket.IO room (debounced) and every 15 s; alerts pushed live as the `alert` event. */
(function () {
  "use strict";
  const API = "/api/v1";
  const REFRESH_MS = 15000;
  const $ = (sel) => document.querySelector(sel);
  const state = {
    token: sessionStorage.getItem("hall-manager-token"),
    me: null, hall: sessionStorage.getItem("hall-manager-hall"), hallDetail: null,
    socket: null, dash: null, alerts: new Map(), refreshTimer: null, pending: null, charts: {},
  };

  // ---- helpers ---------------------------------------------------------------------------------
  function say(text) { $("#msg").textContent = text || ""; }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function minutes(sec) {
    if (sec == null) return "—";
    if (sec < 60) return Math.round(sec) + "秒";
    const m = sec / 60;
    return (m < 10 ? m.toFixed(1) : Math.round(m)) + "分钟";
  }
  function clock(sec) {
    if (sec == null) return "—";
    sec = Math.max(0, Math.round(sec));
    const m = Math.floor(sec / 60), s = sec % 60;
    return String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
  }
  function hallClock() {  // times on the hall's clock, whatever the time zone of the manager's PC
    const timeZone = (state.hallDetail || {}).timezone;
    return timeZone ? { timeZone } : {};
  }
  function hhmm(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", hour12: false, ...hallClock() });
  }
  function pct(v) { return v == null ? "—" : v.toFixed(1) + "%"; }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const msg = (data && data.error && data.error.message) || ("请求失败 (HTTP " + r.status + ")");
      const err = new Error(msg);
      err.status = r.status;
      err.code = data && data.error && data.error.code;
      throw err;
    }
    return data;
  }

  // ---- sign in ---------------------------------------------------------------------------------
  function show(view) {
    $("#login-view").hidden = view !== "login";
    $("#dash-view").hidden = view !== "dash";
    $("#logout").hidden = view === "login";
  }

  async function start() {
    if (!state.token) { show("login"); return; }
    try {
      state.me = await api("GET", "/auth/me");
    } catch (e) {
      signOutLocal();
      return;
    }
    if (state.me.must_change_password) { show("login"); $("#login-form").hidden = true; $("#password-form").hidden = false; return; }
    if (!state.me.scopes.includes("hall:manage")) {
      say("该账号没有大厅管理权限，请使用管理人员账号登录");
      signOutLocal(true);
      return;
    }
    $("#who").textContent = sessionStorage.getItem("hall-manager-name") || state.me.name;
    const halls = (await api("GET", "/halls")).halls
      .filter((h) => state.me.halls === null || state.me.halls.includes(h.id));
    if (!halls.length) { say("该账号没有可管理的大厅"); return; }
    const sel = $("#hall-select");
    sel.innerHTML = halls.map((h) => `<option value="${esc(h.id)}">${esc(h.name)}</option>`).join("");
    if (!halls.some((h) => h.id === state.hall)) state.hall = halls[0].id;
    sel.value = state.hall;
    $("#hall-choice").hidden = halls.length < 2;
    await openHall(state.hall);
  }

  function signOutLocal(keepMsg) {
    state.token = null;
    sessionStorage.removeItem("hall-manager-token");
    if (state.socket) { state.socket.close(); state.socket = null; }
    clearInterval(state.refreshTimer);
    if (!keepMsg) say("");
    $("#login-form").hidden = false;
    $("#password-form").hidden = true;
    show("login");
  }

  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    say("");
    try {
      const r = await api("POST", "/auth/login", { username: $("#username").value.trim(), password: $("#password").value });
      state.token = r.token;
      sessionStorage.setItem("hall-manager-token", r.token);
      sessionStorage.setItem("hall-manager-name", r.name);
      state.oldPassword = $("#password").value;
      $("#password").value = "";
      await start();
    } catch (e) { say(e.message); }
  });

  $("#password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const a = $("#new-password").value, b = $("#new-password2").value;
    if (a !== b) { say("两次输入的新密码不一致"); return; }
    try {
      await api("POST", "/auth/password", { old_password: state.oldPassword || "", new_password: a });
      say("密码已修改，请用新密码登录");
      signOutLocal(true);
    } catch (e) { say(e.message); }
  });

  $("#logout").addEventListener("click", async () => {
    try { await api("POST", "/auth/logout"); } catch (e) { /* already signed out */ }
    signOutLocal();
  });

  $("#hall-select").addEventListener("change", (ev) => openHall(ev.target.value));

  // ---- the hall ----------------------------------------------------------------------------------
  async function openHall(hallId) {
    state.hall = hallId;
    sessionStorage.setItem("hall-manager-hall", hallId);
    state.alerts.clear();
    state.hallDetail = await api("GET", "/halls/" + encodeURIComponent(hallId));
    $("#hall-name").textContent = state.hallDetail.name;
    show("dash");
    initCharts();
    connect();
    await Promise.all([refresh(), loadAlerts(), loadNotice()]);
    clearInterval(state.refreshTimer);
    state.refreshTimer = setInterval(refresh, REFRESH_MS);
  }

  function connect() {
    if (state.socket) state.socket.close();
    const socket = io({ auth: { hall: state.hall, token: state.token }, transports: ["websocket"] });
    state.socket = socket;
    const conn = $("#conn");
    conn.hidden = false;
    socket.on("connect", () => {
      conn.textContent = "● 实时连接";
      conn.className = "on";
      // after a reconnect the list may have changed while we were away
      loadAlerts();
      soon();
    });
    socket.on("disconnect", () => { conn.textContent = "○ 连接中断，正在重连"; conn.className = "off"; });
    socket.on("connect_error", () => { conn.textContent = "○ 未连接"; conn.className = "off"; });
    for (const name of ["ticket", "window", "queues", "device", "evaluation", "followup"]) socket.on(name, soon);
    socket.on("alert", (ev) => {
      if (ev.hall !== state.hall) return;
      state.alerts.set(ev.alert.id, ev.alert);
      renderAlerts();
      if (ev.action === "opened") toast(ev.alert);
      soon();
    });
    socket.on("notice", (ev) => {
      if (ev.hall === state.hall && document.activeElement !== $("#notice-text")) $("#notice-text").value = ev.text;
    });
  }

  function soon() {
    if (state.pending) return;
    state.pending = setTimeout(() => { state.pending = null; refresh(); }, 800);
  }

  async function refresh() {
    if (!state.token || !state.hall) return;
    try {
      state.dash = await api("GET", "/halls/" + encodeURIComponent(state.hall) + "/dashboard");
      render(state.dash);
      say("");
    } catch (e) {
      if (e.status === 401) { signOutLocal(true); say("登录已失效，请重新登录"); return; }
      say("刷新数据失败：" + e.message);
    }
  }

  // ---- rendering ---------------------------------------------------------------------------------
  function render(d) {
    const t = d.totals;
    $("#t-issued").textContent = t.issued;
    $("#t-waiting").textContent = t.waiting;
    $("#t-served").textContent = t.served;
    $("#t-noshow").textContent = t.no_shows;
    $("#t-cancelled").textContent = t.cancelled;
    $("#t-windows").textContent = `${t.windows_open - t.windows_paused}/${t.windows_total}`;
    const sat = d.satisfaction;
    $("#t-satisfaction").textContent = sat.available ? pct(sat.rate) : "—";
    $("#t-rated").textContent = sat.available ? `已评价 ${sat.rated}，差评 ${sat.bad}` : "评价功能未启用";
    $("#t-cases").textContent = sat.available ? sat.open_cases : "—";
    $("#t-overdue").textContent = sat.overdue_cases ? `逾期 ${sat.overdue_cases}` : "";
    $("#t-cases").parentElement.classList.toggle("bad", sat.overdue_cases > 0);
    const dev = d.devices;
    $("#t-devices").textContent = dev.available ? `${dev.online}/${dev.total}` : "—";
    $("#t-devices-sub").textContent = dev.available
      ? `正常 ${dev.online} · 故障 ${dev.degraded} · 离线 ${dev.offline} · 未上报 ${dev.unknown}` : "";
    $("#t-devices").parentElement.classList.toggle("bad", dev.faults.length > 0);
    $("#updated").textContent = "更新于 " + new Date(d.at).toLocaleTimeString("zh-CN", { hour12: false, ...hallClock() });

    $("#queue-table tbody").innerHTML = d.queues.map((q) => `
      <tr class="${q.over_target ? "over" : ""}" data-queue="${esc(q.id)}">
        <td>${esc(q.prefix)} ${esc(q.name)}</td>
        <td class="num ${q.waiting > q.max_waiting ? "over-text" : ""}">${q.waiting}</td>
        <td class="num ${q.over_target ? "over-text" : ""}">${q.waiting ? minutes(q.longest_wait_seconds) : "—"}</td>
        <td class="num">${minutes(q.avg_wait_last_hour_seconds)}</td>
        <td class="num">${q.waiting ? minutes(q.estimated_wait_seconds) : "无需等候"}</td>
        <td class="num">${pct(q.service_level)}</td>
        <td class="num">${q.target_wait_minutes}分钟</td>
        <td>${q.windows.length ? q.windows.map(esc).join("、") : '<span class="over-text">无窗口</span>'}</td>
      </tr>`).join("");

    const queueNames = Object.fromEntries(d.queues.map((q) => [q.id, q.name]));
    $("#window-table tbody").innerHTML = d.windows.map((w) => {
      let label = esc(w.status_label);
      if (w.status === "paused") label += `（${esc(w.pause_reason || "")}，${minutes(w.paused_seconds)}）`;
      const actions = [];
      if (w.status === "paused") actions.push(`<button data-act="resume">恢复</button>`);
      if (w.status === "idle") actions.push(`<button data-act="pause">暂停</button>`);
      if (w.status === "idle" || w.status === "paused") actions.push(`<button data-act="sign-out">签退关闭</button>`);
      actions.push(`<button data-act="queues">调整队列</button>`);
      return `<tr data-window="${esc(w.number)}">
        <td>${esc(w.name)}</td>
        <td><span class="status ${esc(w.status)}">${label}</span>${w.devices_faulty.length ? ` <span class="over-text" title="设备故障">⚠ ${w.devices_faulty.map(esc).join("、")}</span>` : ""}</td>
        <td>${esc(w.ticket || "—")}</td>
        <td class="num">${w.elapsed_seconds == null ? "—" : clock(w.elapsed_seconds)}</td>
        <td>${esc(w.clerk_name || "—")}</td>
        <td class="num">${w.served_today}</td>
        <td class="num">${minutes(w.avg_handle_seconds)}</td>
        <td>${w.queues.map((q) => esc(queueNames[q] || q)).join("、")}</td>
        <td>${actions.join("")}</td>
      </tr>`;
    }).join("");

    $("#device-faults").innerHTML = dev.faults.map((f) =>
      `<li><b>${esc(f.device)}</b>${f.window ? `（${esc(f.window)}号窗口）` : ""} ${esc(f.state_label)}${f.detail ? "：" + esc(f.detail) : ""}</li>`).join("");
    $("#no-faults").hidden = dev.faults.length > 0;
    renderCharts(d);
  }

  // ---- charts (ECharts) ----------------------------------------------------------------------
  function initCharts() {
    if (typeof echarts === "undefined") return;
    for (const id of ["hourly", "satisfaction"]) {
      if (!state.charts[id]) state.charts[id] = echarts.init(document.getElementById("chart-" + id));
    }
  }
  window.addEventListener("resize", () => Object.values(state.charts).forEach((c) => c.resize()));

  function renderCharts(d) {
    if (!state.charts.hourly) return;
    const hours = d.hourly.map((h) => `${h.hour}时`);
    state.charts.hourly.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { data: ["取号量", "平均等候（分钟）"] },
      grid: { left: 40, right: 50, top: 40, bottom: 30 },
      xAxis: { type: "category", data: hours },
      yAxis: [{ type: "value", name: "人次", minInterval: 1 }, { type: "value", name: "分钟" }],
      series: [
        { name: "取号量", type: "bar", data: d.hourly.map((h) => h.arrivals), itemStyle: { color: "#5b8ff9" } },
        { name: "平均等候（分钟）", type: "line", yAxisIndex: 1, connectNulls: true,
          data: d.hourly.map((h) => h.avg_wait_seconds == null ? null : +(h.avg_wait_seconds / 60).toFixed(1)),
          itemStyle: { color: "#e8684a" } },
      ],
    }, true);
    const sw = d.satisfaction_by_window;
    $("#no-evaluations").hidden = sw.length > 0;
    state.charts.satisfaction.setOption({
      animation: false,
      tooltip: { trigger: "axis", formatter: (p) => { const w = sw[p[0].dataIndex]; return `${w.name}<br>满意率 ${pct(w.rate)}<br>已评价 ${w.rated}，差评 ${w.bad}`; } },
      grid: { left: 40, right: 20, top: 30, bottom: 30 },
      xAxis: { type: "category", data: sw.map((w) => w.name) },
      yAxis: { type: "value", name: "%", min: 0, max: 100 },
      series: [{ type: "bar", data: sw.map((w) => ({ value: w.rate, itemStyle: { color: w.rate != null && w.rate < 90 ? "#e8684a" : "#5ad8a6" } })),
        label: { show: true, position: "top", formatter: (p) => p.value == null ? "" : p.value + "%" } }],
    }, true);
  }

  // ---- alerts ----------------------------------------------------------------------------------
  async function loadAlerts() {
    if (!state.hall) return;
    try {
      const r = await api("GET", "/halls/" + encodeURIComponent(state.hall) + "/alerts");
      state.alerts = new Map(r.alerts.map((a) => [a.id, a]));
      renderAlerts();
    } catch (e) { say("读取告警失败：" + e.message); }
  }

  function renderAlerts() {
    const list = [...state.alerts.values()].sort((a, b) =>
      (a.status === b.status ? 0 : a.status === "open" ? -1 : 1) || (b.opened_at > a.opened_at ? 1 : b.opened_at < a.opened_at ? -1 : b.id - a.id));
    const open = list.filter((a) => a.status === "open");
    const badge = $("#alert-count");
    badge.textContent = open.length;
    badge.classList.toggle("zero", open.length === 0);
    $("#no-alerts").hidden = list.length > 0;
    $("#alert-list").innerHTML = list.map((a) => `
      <li class="${esc(a.level)} ${a.status}" data-alert="${a.id}" data-kind="${esc(a.kind)}">
        ${a.status === "open" && !a.acknowledged_at ? `<button data-ack="${a.id}">确认</button>` : ""}
        <span class="kind">${esc(a.kind_label)}</span>${esc(a.message)}
        <div class="meta">${hhmm(a.opened_at)} 发生${a.status === "closed" ? " · " + hhmm(a.closed_at) + " 已恢复" : ""}${a.acknowledged_at ? " · " + esc(a.acknowledged_by_name || a.acknowledged_by) + " 已确认" : ""}</div>
      </li>`).join("");
  }

  $("#alert-list").addEventListener("click", async (ev) => {
    const id = ev.target.getAttribute("data-ack");
    if (!id) return;
    try {
      const a = await api("POST", `/halls/${encodeURIComponent(state.hall)}/alerts/${id}/ack`);
      state.alerts.set(a.id, a);
      renderAlerts();
    } catch (e) { say(e.message); }
  });

  function toast(a) {
    const el = document.createElement("div");
    el.className = "toast " + a.level;
    el.textContent = `【${a.kind_label}】${a.message}`;
    $("#toasts").appendChild(el);
    setTimeout(() => el.remove(), 8000);
  }

  // ---- controls --------------------------------------------------------------------------------
  $("#window-table").addEventListener("click", async (ev) => {
    const act = ev.target.getAttribute("data-act");
    if (!act) return;
    const number = ev.target.closest("tr").getAttribute("data-window");
    const base = `/halls/${encodeURIComponent(state.hall)}/windows/${encodeURIComponent(number)}`;
    try {
      if (act === "pause") {
        const reason = prompt(`暂停${number}号窗口的原因：`, "管理人员暂停");
        if (!reason) return;
        await api("POST", base + "/pause", { reason });
      } else if (act === "resume") {
        await api("POST", base + "/resume");
      } else if (act === "sign-out") {
        if (!confirm(`确定签退并关闭${number}号窗口吗？`)) return;
        await api("POST", base + "/sign-out");
      } else if (act === "queues") {
        openQueuesDialog(number);
        return;
      }
      say("");
      refresh();
    } catch (e) { say(e.message); }
  });

  let dialogWindow = null, picked = [];
  function openQueuesDialog(number) {
    dialogWindow = number;
    const w = state.dash.windows.find((x) => x.number === number);
    picked = [...w.queues];
    $("#queues-title").textContent = `调整${w.name}的服务队列`;
    renderChecks();
    $("#queues-dialog").showModal();
  }
  function renderChecks() {
    $("#queue-checks").innerHTML = state.dash.queues.map((q) => {
      const i = picked.indexOf(q.id);
      return `<label><input type="checkbox" value="${esc(q.id)}" ${i >= 0 ? "checked" : ""}> ${esc(q.prefix)} ${esc(q.name)}${i >= 0 ? ` <span class="muted">（第${i + 1}优先）</span>` : ""}</label>`;
    }).join("");
  }
  $("#queue-checks").addEventListener("change", (ev) => {
    const id = ev.target.value;
    picked = ev.target.checked ? [...picked.filter((x) => x !== id), id] : picked.filter((x) => x !== id);
    renderChecks();
  });
  async function saveQueues(queues) {
    try {
      await api("PUT", `/halls/${encodeURIComponent(state.hall)}/windows/${encodeURIComponent(dialogWindow)}/queues`, { queues });
      $("#queues-dialog").close();
      say("");
      refresh();
    } catch (e) { say(e.message); }
  }
  $("#queues-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!picked.length) { say("窗口至少要服务一个队列"); return; }
    saveQueues(picked);
  });
  $("#queues-reset").addEventListener("click", () => saveQueues(null));
  $("#queues-cancel").addEventListener("click", () => $("#queues-dialog").close());

  async function loadNotice() {
    try {
      const r = await api("GET", `/halls/${encodeURIComponent(state.hall)}/notice`);
      $("#notice-text").value = r.text || "";
    } catch (e) {
      $("#notice-status").textContent = e.status === 404 ? "公告功能未启用" : "读取公告失败：" + e.message;
    }
  }
  $("#notice-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = $("#notice-status");
    try {
      const r = await api("PUT", `/halls/${encodeURIComponent(state.hall)}/notice`, { text: $("#notice-text").value });
      $("#notice-text").value = r.text;
      status.textContent = r.text ? `已发布（${hhmm(r.updated_at || new Date().toISOString())}）` : "公告已清除";
    } catch (e) { status.textContent = "发布失败：" + e.message; }
  });

  start();
})();
