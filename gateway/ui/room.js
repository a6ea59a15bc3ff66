// The room page: the room's state folded from the socket, a player kept in sync with the
// room's clock, controls, chat and members. User text only ever goes through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split("/")[2] || "");
const params = new URLSearchParams(location.search);
const IMAGE_SECONDS = Number(localStorage.getItem("chanshare:image-seconds")) || 6;

const session = {
  name: params.get("name") || localStorage.getItem("chanshare:name") || "",
  token: localStorage.getItem(`chanshare:token:${roomId}`),
  memberId: null,
  epoch: null,
  version: 0,
  room: null,
  ws: null,
  retry: 0,
};

// ---------------------------------------------------------------- the server clock
// Offset = server time − local time, from the ping/pong with the smallest round trip among the
// recent ones (a minimum-RTT filter: queueing only ever adds delay).
const clock = { samples: [], offset: 0, pending: new Map() };
function localNow() { return performance.timeOrigin + performance.now(); }
function serverNow() { return localNow() + clock.offset; }
function ping() {
  if (!session.ws || session.ws.readyState !== WebSocket.OPEN) return;
  const t = localNow();
  send({ type: "ping", t });
}
function onPong(frame) {
  const now = localNow();
  const rtt = now - frame.t;
  if (rtt < 0 || rtt > 10000) return;
  clock.samples.push({ rtt, offset: frame.server_time_ms + rtt / 2 - now });
  if (clock.samples.length > 20) clock.samples.shift();
  clock.offset = clock.samples.reduce((best, s) => (s.rtt < best.rtt ? s : best)).offset;
}

// ---------------------------------------------------------------- the room state
function fold(room, event) {
  const members = room.members;
  const byId = (id) => members.find((m) => m.member_id === id);
  switch (event.type) {
    case "room_created": Object.assign(room, { room_id: event.room_id, title: event.title, source: event.source, settings: event.settings }); break;
    case "items_added": room.playlist.push(...event.items); break;
    case "item_removed": room.playlist = room.playlist.filter((i) => i.item_id !== event.item_id); break;
    case "item_moved": {
      const at = room.playlist.findIndex((i) => i.item_id === event.item_id);
      if (at >= 0) { const [item] = room.playlist.splice(at, 1); room.playlist.splice(Math.min(event.to, room.playlist.length), 0, item); }
      break;
    }
    case "playback_changed": room.playback = event.playback; break;
    case "member_joined": members.push({ member_id: event.member_id, name: event.name, role: "member", online: true }); break;
    case "member_returned": {
      const m = byId(event.member_id);
      if (m) { members.splice(members.indexOf(m), 1); m.online = true; members.push(m); }
      break;
    }
    case "member_went_offline": { const m = byId(event.member_id); if (m) m.online = false; break; }
    case "member_left": room.members = members.filter((m) => m.member_id !== event.member_id); break;
    case "member_renamed": { const m = byId(event.member_id); if (m) m.name = event.name; break; }
    case "host_changed": for (const m of members) m.role = m.member_id === event.member_id ? "host" : "member"; break;
    case "chat_posted": room.chat.push(event.message); if (room.chat.length > 200) room.chat.shift(); break;
    case "chat_deleted": room.chat = room.chat.filter((c) => c.id !== event.message_id); break;
    case "control_changed": room.settings.control = event.control; break;
    case "listed_changed": room.settings.listed = event.listed; break;
    case "room_closed": room.closed = true; break;
  }
}

// ---------------------------------------------------------------- the socket
function send(frame) {
  if (session.ws && session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify(frame));
}
function command(body) {
  const id = crypto.randomUUID();
  send({ type: "command", id, command: body });
  return id;
}

function connect() {
  const query = new URLSearchParams();
  if (session.name) query.set("name", session.name);
  if (session.token) query.set("token", session.token);
  if (session.epoch && session.version) { query.set("resume", session.version); query.set("epoch", session.epoch); }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/rooms/${encodeURIComponent(roomId)}/ws?${query}`);
  session.ws = ws;
  ws.onmessage = (message) => onFrame(JSON.parse(message.data));
  ws.onopen = () => { session.retry = 0; ping(); };
  ws.onclose = (event) => {
    if (session.ws !== ws) return;
    session.ws = null;
    const fatal = { 4401: "token", 4403: "You were removed from this room.", 4404: "This room does not exist.", 4410: "This room is closed.", 4400: "name" };
    if (event.code === 4401) { localStorage.removeItem(`chanshare:token:${roomId}`); session.token = null; session.epoch = null; }
    if (event.code === 4400) { askName().then(connect); return; }
    if (fatal[event.code] && fatal[event.code].length > 5) { toast(fatal[event.code]); $("reconnecting").classList.remove("show"); return; }
    $("reconnecting").classList.add("show");
    const delay = Math.min(8000, 300 * 2 ** session.retry++) * (0.5 + Math.random() / 2);
    setTimeout(connect, delay);
  };
}

function onFrame(frame) {
  switch (frame.type) {
    case "welcome":
      session.memberId = frame.member_id;
      session.token = frame.token;
      session.epoch = frame.epoch;
      localStorage.setItem(`chanshare:token:${roomId}`, frame.token);
      $("reconnecting").classList.remove("show");
      clock.offset = clock.samples.length ? clock.offset : frame.server_time_ms - localNow();
      break;
    case "snapshot":
      session.room = frame.state;
      session.version = frame.version;
      renderAll();
      break;
    case "commit":
      if (!session.room || frame.version !== session.version + 1) {
        // Never expected (the server guarantees order); start over rather than guess.
        session.epoch = null;
        session.ws && session.ws.close();
        return;
      }
      for (const event of frame.events) fold(session.room, event);
      session.version = frame.version;
      renderAll();
      break;
    case "reject":
      if (frame.code !== "conflict") toast(frame.message);
      break;
    case "pong": onPong(frame); break;
  }
}

// ---------------------------------------------------------------- the player
const video = $("video");
const image = $("image");
const preload = document.createElement("video");
preload.preload = "auto";
preload.muted = true;
let loadedItem = null;
let endedSent = null;
// A newly loaded item (or a resumed play) starts by jumping to the room's position: at an
// item's start that is no visible jump, and it spares the correction loop the load delay.
let align = false;
let outOfSyncSince = null;

function current() {
  const room = session.room;
  if (!room || !room.playback.item_id) return null;
  return room.playlist.find((i) => i.item_id === room.playback.item_id) || null;
}
function targetSeconds() {
  const p = session.room.playback;
  const elapsed = p.playing ? Math.max(0, serverNow() - p.anchor_ms) * p.rate : 0;
  return (p.position_ms + elapsed) / 1000;
}
function isHost() {
  const me = session.room && session.room.members.find((m) => m.member_id === session.memberId);
  return !!me && me.role === "host";
}
function canControl() {
  return !!session.room && !session.room.closed && (session.room.settings.control === "everyone" || isHost());
}

function load(item) {
  loadedItem = item ? item.item_id : null;
  endedSent = null;
  align = true;
  video.hidden = image.hidden = true;
  $("empty").hidden = !!item;
  if (!item) { video.removeAttribute("src"); return; }
  if (item.kind === "video") {
    video.src = item.url;
    video.hidden = false;
  } else {
    image.src = item.url;
    image.hidden = false;
  }
  const index = session.room.playlist.indexOf(item);
  const next = session.room.playlist[index + 1];
  if (next && next.kind === "video") preload.src = next.url;
}

function advance(item) {
  // Every client reports the end; the room advances once (guarded by the item that ended).
  if (endedSent === item.item_id) return;
  endedSent = item.item_id;
  command({ type: "next", expected_item_id: item.item_id });
}

// Runs ten times a second: keeps the player on the room's clock.
function tick() {
  const item = current();
  if (!session.room) return;
  if ((item ? item.item_id : null) !== loadedItem) load(item);
  if (!item) { $("sync").textContent = ""; return; }
  const p = session.room.playback;
  const target = targetSeconds();
  if (item.kind === "image") {
    if (p.playing && target >= IMAGE_SECONDS) advance(item);
    updateClock(target, IMAGE_SECONDS);
    return;
  }
  if (video.readyState < 1) return;
  const duration = Number.isFinite(video.duration) ? video.duration : 0;
  if (p.playing && duration && target >= duration - 0.05) {
    if (!video.paused) video.pause();
    advance(item);
    updateClock(duration, duration);
    return;
  }
  // Starting takes a moment: aim slightly ahead so the first frames land on time.
  const lead = p.playing && video.paused ? 0.05 * p.rate : 0;
  if (align || (p.playing && video.paused && Math.abs(video.currentTime - target) > 0.05)) {
    video.currentTime = Math.max(0, target + lead);
    video.playbackRate = p.rate;
    align = false;
  }
  if (p.playing && video.paused) {
    video.play().catch((error) => {
      if (error.name === "NotAllowedError" && !video.muted) { video.muted = true; $("unmute").hidden = false; video.play().catch(() => {}); }
    });
  }
  if (!p.playing && !video.paused) video.pause();
  const drift = video.currentTime - target;
  if (Math.abs(drift) > 1 || (!p.playing && Math.abs(drift) > 0.04)) {
    video.currentTime = Math.max(0, target);
    video.playbackRate = p.rate;
  } else if (p.playing) {
    // Proportional correction, no dead band: 100 ms behind plays 8 % fast until caught up.
    const nudge = Math.max(-0.2, Math.min(0.2, drift * 0.8));
    video.playbackRate = Math.max(0.25, p.rate * (1 - nudge));
  }
  const bad = p.playing && Math.abs(drift) > 0.5 && !video.seeking;
  outOfSyncSince = bad ? outOfSyncSince || Date.now() : null;
  const showBad = outOfSyncSince && Date.now() - outOfSyncSince > 3000;
  $("sync").textContent = `sync ${drift >= 0 ? "+" : ""}${Math.round(drift * 1000)} ms`;
  $("sync").classList.toggle("bad", !!showBad);
  $("resync").hidden = !showBad;
  updateClock(video.currentTime, duration);
}

function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
function updateClock(at, total) {
  $("clock").textContent = total ? `${fmt(at)} / ${fmt(total)}` : fmt(at);
  if (document.activeElement !== $("seek")) $("seek").value = total ? Math.round((at / total) * 1000) : 0;
}

video.addEventListener("ended", () => { const item = current(); if (item) advance(item); });

// ---------------------------------------------------------------- rendering
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

function renderAll() {
  const room = session.room;
  if (!room) return;
  document.title = `${room.title} — Chanshare`;
  $("title").textContent = room.closed ? `${room.title} (closed)` : room.title;
  const item = current();
  $("now").textContent = item ? item.title : "";
  $("post").hidden = !(item && item.post_url);
  if (item && item.post_url) $("post").href = item.post_url;
  $("toggle").textContent = room.playback.playing ? "Pause" : "Play";
  $("rate").value = String(room.playback.rate);
  const control = canControl();
  for (const id of ["prev", "toggle", "next", "seek", "rate"]) $(id).disabled = !control;
  $("add").querySelector("button").disabled = !control;
  $("playlist").replaceChildren(...room.playlist.map((i) => el("div", {
    class: `pl-item${i.item_id === room.playback.item_id ? " current" : ""}`,
    onclick: () => control && command({ type: "jump", item_id: i.item_id }),
  },
    i.thumb_url ? el("img", { src: i.thumb_url, alt: "", loading: "lazy" }) : el("span"),
    el("span", { class: "title", title: i.title, textContent: i.title }),
    i.post_url ? el("a", { href: i.post_url, target: "_blank", rel: "noopener noreferrer", textContent: "post", onclick: (e) => e.stopPropagation() }) : el("span"),
  )));
  const names = new Map(room.members.map((m) => [m.member_id, m.name]));
  const log = $("chat");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.replaceChildren(...room.chat.map((c) => el("div", { class: "chat-line" },
    el("time", { textContent: new Date(c.at_ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }),
    el("b", { textContent: names.get(c.member_id) || "someone" }),
    el("span", { textContent: c.text }),
  )));
  if (atBottom) log.scrollTop = log.scrollHeight;
  const host = isHost();
  $("members").replaceChildren(...room.members.map((m) => el("li", {},
    el("span", { class: `dot${m.online ? " on" : ""}`, title: m.online ? "online" : "offline" }),
    el("span", { textContent: m.name + (m.member_id === session.memberId ? " (you)" : "") }),
    m.role === "host" ? el("span", { class: "badge", textContent: "host" }) : "",
    host && m.member_id !== session.memberId ? el("span", { class: "acts" },
      m.online ? el("button", { textContent: "Make host", onclick: () => command({ type: "transfer_host", member_id: m.member_id }) }) : "",
      el("button", { textContent: "Kick", onclick: () => confirm(`Kick ${m.name}?`) && command({ type: "kick", member_id: m.member_id }) }),
    ) : "",
  )));
  $("host-settings").hidden = !host;
  $("control").value = room.settings.control;
  $("listed").checked = room.settings.listed;
  $("say").querySelector("button").disabled = room.closed;
}

// ---------------------------------------------------------------- controls
// Own playback actions are applied to the local state at once (the commit confirms them a
// moment later with the server's anchor, close enough that the player does not jump).
function optimistic(change) {
  const p = session.room.playback;
  const position = targetSeconds() * 1000;
  session.room.playback = Object.assign({}, p, { position_ms: Math.round(position), anchor_ms: Math.round(serverNow()) }, change);
  renderAll();
}
$("toggle").onclick = () => {
  if (!canControl() || !session.room.playback.item_id) return;
  const playing = !session.room.playback.playing;
  optimistic({ playing });
  command({ type: playing ? "play" : "pause" });
};
$("prev").onclick = () => canControl() && command({ type: "previous" });
$("next").onclick = () => canControl() && command({ type: "next" });
function seekTo(seconds) {
  if (!canControl() || !session.room.playback.item_id) return;
  const position_ms = Math.max(0, Math.round(seconds * 1000));
  optimistic({ position_ms });
  command({ type: "seek", position_ms });
}
$("seek").onchange = () => {
  const total = Number.isFinite(video.duration) ? video.duration : IMAGE_SECONDS;
  seekTo((Number($("seek").value) / 1000) * total);
};
$("rate").onchange = () => canControl() && command({ type: "set_rate", rate: Number($("rate").value) });
$("resync").onclick = () => { video.currentTime = targetSeconds(); outOfSyncSince = null; };
$("unmute").onclick = () => { video.muted = false; $("unmute").hidden = true; };
$("share").onclick = async () => {
  const link = `${location.origin}/r/${encodeURIComponent(roomId)}`;
  try { await navigator.clipboard.writeText(link); toast("Link copied"); } catch { prompt("Room link", link); }
};
$("say").onsubmit = (event) => {
  event.preventDefault();
  const text = event.target.text.value.trim();
  if (text) command({ type: "chat", text });
  event.target.text.value = "";
};
$("add").onsubmit = (event) => {
  event.preventDefault();
  const url = event.target.url.value.trim();
  if (url) command({ type: "add_items", urls: [url] });
  event.target.url.value = "";
};
$("control").onchange = () => command({ type: "set_control", control: $("control").value });
$("listed").onchange = () => command({ type: "set_listed", listed: $("listed").checked });
$("close-room").onclick = () => confirm("Close the room for everyone?") && command({ type: "close" });
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select") || !session.room) return;
  if (event.code === "Space") { event.preventDefault(); $("toggle").click(); }
  else if (event.key === "ArrowRight" && event.shiftKey) $("next").click();
  else if (event.key === "ArrowLeft" && event.shiftKey) $("prev").click();
  else if (event.key === "ArrowRight") seekTo(targetSeconds() + 5);
  else if (event.key === "ArrowLeft") seekTo(targetSeconds() - 5);
});

let toastTimer = null;
function toast(message) {
  $("toast").textContent = message;
  $("toast").classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => $("toast").classList.remove("show"), 3000);
}

function askName() {
  return new Promise((resolve) => {
    const dialog = $("name-dialog");
    dialog.querySelector("input").value = session.name;
    dialog.addEventListener("close", () => {
      session.name = dialog.querySelector("input").value.trim();
      localStorage.setItem("chanshare:name", session.name);
      resolve();
    }, { once: true });
    dialog.showModal();
  });
}

// Test hook: what the browser tests sample (read-only).
window.chanshare = {
  session,
  sample: () => ({ item: loadedItem, time: video.currentTime, target: session.room ? targetSeconds() : null, playing: !video.paused, drift: session.room && loadedItem ? video.currentTime - targetSeconds() : null }),
  chat: () => [...document.querySelectorAll("#chat .chat-line span")].map((s) => s.textContent),
  cut: () => session.ws && session.ws.close(),
};

setInterval(tick, 100);
setInterval(ping, 2000);
(session.name || session.token ? Promise.resolve() : askName()).then(connect);
