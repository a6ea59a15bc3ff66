// The room page: the room's state folded from the socket exactly as the server folds it, a
// player kept on the room's clock, controls, chat and members. Each commit updates only what it
// changed. User text only ever goes through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split("/")[2] || "");
const params = new URLSearchParams(location.search);
const CHAT_TAIL = RoomPlayer.CHAT_TAIL;
const CHAT_LINES = 200; // what the page shows at most

const session = {
  name: params.get("name") || localStorage.getItem("chanshare:name") || "",
  token: localStorage.getItem(`chanshare:token:${roomId}`),
  memberId: null,
  epoch: null,
  version: 0,
  room: null, // the fold: equal to GET /api/rooms/{id} at the same version
  host: null,
  ws: null,
  live: false, // welcomed, and caught up: commands go straight out
  retry: 0,
  gone: false,
  held: false,
  unanswered: 0, // when the oldest ping nothing has answered since was sent (0: none)
};

// ---------------------------------------------------------------- the server clock
// Offset = server time − local time, from the ping/pong with the smallest round trip among the
// recent ones (a minimum-RTT filter: queueing only ever adds delay).
const clock = { samples: [], offset: 0 };
function localNow() { return performance.timeOrigin + performance.now(); }
function serverNow() { return localNow() + clock.offset; }
// A connection that went silent (wifi lost, a laptop lid, a phone asleep: no close ever arrives)
// is given up when a ping has had no frame at all back for this long. Counted from the ping, not
// from the last frame: a background tab pings once a minute, and its quiet room is not dead.
const SILENCE_MS = 7000;
function ping() {
  const ws = session.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const now = localNow();
  if (session.unanswered && now - session.unanswered > SILENCE_MS) { lost(ws, 1006); ws.close(); return; }
  if (!session.unanswered) session.unanswered = now;
  ws.send(JSON.stringify({ type: "ping", t: now }));
}
function onPong(frame) {
  const now = localNow();
  const rtt = now - frame.t;
  if (rtt < 0 || rtt > 10000) return;
  clock.samples.push({ rtt, offset: frame.server_time_ms + rtt / 2 - now });
  if (clock.samples.length > 20) clock.samples.shift();
  clock.offset = clock.samples.reduce((best, s) => (s.rtt < best.rtt ? s : best)).offset;
}

// ---------------------------------------------------------------- the fold
// RoomPlayer.fold (player.js) mirrors `evolve`; `render` then patches the page for the same
// event, so a commit costs what it changed.
const fold = (room, event) => RoomPlayer.fold(room, event, session);

// ---------------------------------------------------------------- the socket and the outbox
// Every command gets an id and waits in the outbox until the server acks or rejects it. While
// the socket is down commands queue there; after a reconnect they are sent again in order, and
// the server's dedupe by id makes each land once.
const outbox = new Map(); // id -> the command frame
const pendingLines = new Map(); // chat command id -> { node, version }: shown until its commit is
function command(body) {
  const id = crypto.randomUUID();
  const frame = { type: "command", id, command: body };
  outbox.set(id, frame);
  if (body.type === "chat") pendingLines.set(id, { node: pendingChat(body.text), version: null });
  if (session.live) session.ws.send(JSON.stringify(frame));
  return id;
}
// The server answered command `id`: stored at `version`, or refused.
function settle(id, failed, version) {
  if (!outbox.delete(id)) return;
  const line = pendingLines.get(id);
  if (line && failed) {
    line.node.classList.remove("pending");
    line.node.classList.add("failed");
    pendingLines.delete(id);
  } else if (line) {
    line.version = version;
    dropDelivered();
  }
  if (optimistic && optimistic.id === id) { optimistic = null; render.playback(); }
}
// Pending chat lines whose commit the page has (by their ack's version) give way to it.
function dropDelivered() {
  for (const [id, line] of pendingLines) {
    if (line.version && line.version <= session.version) { line.node.remove(); pendingLines.delete(id); }
  }
}
// After a reconnect, the queue goes out in order at a pace the server accepts (it allows a
// burst of 20 commands, then 10 a second).
function flushOutbox() {
  [...outbox.keys()].forEach((id, n) => setTimeout(() => resend(id), n < 10 ? 0 : (n - 9) * 120));
}
function resend(id) {
  if (session.live && outbox.has(id)) session.ws.send(JSON.stringify(outbox.get(id)));
}
// A command refused for now (too fast, or a service down) is sent again with the same id, which
// makes it land once, after a growing pause; after a few tries the refusal stands.
const retries = new Map();
function retryLater(id) {
  const attempt = retries.get(id) || 0;
  if (!outbox.has(id) || attempt >= 5) { retries.delete(id); return false; }
  retries.set(id, attempt + 1);
  setTimeout(() => resend(id), 400 * 2 ** attempt);
  return true;
}

async function connect() {
  if (session.gone || session.held || session.ws || session.connecting) return;
  // Signed in, the member is the account's: a fresh access token each time (refreshed first when
  // it is about to expire), no nickname.
  let access = null;
  session.connecting = true;
  try {
    access = await Account.token();
  } catch {
    session.connecting = false;
    setTimeout(connect, 2000);
    return;
  }
  session.connecting = false;
  if (session.gone || session.held || session.ws) return;
  // Signed out since the last connect: the member token was the account's; never reuse it.
  if (!access && session.signedIn) { session.token = null; session.epoch = null; }
  session.signedIn = Boolean(access);
  session.access = access;
  const query = new URLSearchParams();
  if (access) query.set("access_token", access);
  else {
    if (session.name) query.set("name", session.name);
    if (session.token) query.set("token", session.token);
  }
  if (session.epoch && session.version) { query.set("resume", session.version); query.set("epoch", session.epoch); }
  // A big room's membership changes come several to a frame.
  query.set("batch", "1");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/rooms/${encodeURIComponent(roomId)}/ws?${query}`);
  session.ws = ws;
  ws.onmessage = (message) => {
    if (session.ws !== ws) return;
    session.unanswered = 0;
    onFrame(JSON.parse(message.data));
  };
  // A burst of probes right away: the minimum-RTT filter needs a few samples before the offset
  // can be trusted (one slow answer would put the page's clock off by its delay).
  ws.onopen = () => {
    session.retry = 0;
    session.unanswered = 0;
    for (let n = 0; n < 5; n += 1) setTimeout(ping, n * 120);
  };
  ws.onclose = (event) => lost(ws, event.code);
}

// The socket `ws` ended (`code`), or was given up: say so, and come back unless it is final.
function lost(ws, code) {
  if (session.ws !== ws) return;
  session.ws = null;
  session.live = false;
  if (code === 4401 && session.signedIn) {
    // The access token was refused: refresh it; a session the server ended is the end here.
    Account.renew(session.access).then((access) => {
      if (access) setTimeout(connect, 300);
      else leave("You were signed out", "This session was ended: you signed out on another device, or its sign-in was used from somewhere else. Sign in again from the lobby to come back.");
    }).catch(() => setTimeout(connect, 2000));
    return;
  }
  if (code === 4401) { localStorage.removeItem(`chanshare:token:${roomId}`); session.token = null; session.epoch = null; }
  if (code === 4400) { askName("The room refused that nickname: use 1 to 32 characters.").then(connect); return; }
  const final = {
    4403: ["You were removed from this room", "The host removed you. You cannot rejoin this room."],
    4404: ["This room does not exist", "Check the link, or start a room from the lobby."],
    4410: ["This room is closed", "The party is over."],
  }[code];
  if (final) { leave(...final, code === 4410); return; }
  // 4429: the room (or this address) took all the newcomers it takes for now; it is not the
  // connection that failed, so the banner says what is going on.
  $("reconnecting").textContent = code === 4429
    ? "Lots of people are joining right now — letting you in in a moment…"
    : "Connection lost — reconnecting…";
  $("reconnecting").classList.add("show");
  const delay = Math.min(8000, 300 * 2 ** session.retry++) * (0.5 + Math.random() / 2);
  setTimeout(connect, delay);
}

// The rewatch page of this room. (An unlisted room's history is for its members: that page
// finds this browser's member token, or the signed-in account, itself.)
function rewatchUrl() { return `/r/${encodeURIComponent(roomId)}/rewatch`; }

// The room is over for this page: say why, and stop everything.
function leave(title, text, rewatch) {
  session.gone = true;
  $("reconnecting").classList.remove("show");
  $("gone-title").textContent = title;
  $("gone-text").textContent = text;
  $("gone").hidden = false;
  $("gone-rewatch").hidden = true;
  // A closed room can be rewatched unless its host turned that off.
  if (rewatch) {
    fetch(`/api/rooms/${encodeURIComponent(roomId)}`).then((r) => (r.ok ? r.json() : null)).then((room) => {
      if (!room || room.settings.rewatch === false) return;
      $("gone-rewatch").href = rewatchUrl();
      $("gone-rewatch").hidden = false;
    }).catch(() => {});
  }
  $("room").hidden = true;
  $("share").hidden = true;
  video.pause();
  video.removeAttribute("src");
}

function onFrame(frame) {
  switch (frame.type) {
    case "welcome":
      session.memberId = frame.member_id;
      session.token = frame.token;
      session.epoch = frame.epoch;
      // An account's member token stays in this page: signing out must leave nothing behind.
      if (!session.signedIn) localStorage.setItem(`chanshare:token:${roomId}`, frame.token);
      $("reconnecting").classList.remove("show");
      clock.offset = clock.samples.length ? clock.offset : frame.server_time_ms - localNow();
      if (frame.recovered) goLive();
      break;
    case "snapshot":
      session.room = frame.state;
      session.version = frame.version;
      session.host = RoomPlayer.hostOf(frame.state);
      render.all();
      goLive();
      break;
    case "commit":
      if (!session.room || frame.version !== session.version + 1) {
        // Never expected (the server guarantees order); start over rather than guess.
        session.epoch = null;
        if (session.ws) session.ws.close();
        return;
      }
      for (const event of frame.events) { fold(session.room, event); render.event(event); }
      session.version = frame.version;
      session.room.version = frame.version;
      // A chat line of ours is in the log now: its pending copy goes.
      if (pendingLines.has(frame.command_id)) { pendingLines.get(frame.command_id).node.remove(); pendingLines.delete(frame.command_id); }
      hooks.commits += 1;
      // The player follows at once: a video the room left must not play on until the next tick.
      tick();
      break;
    case "commits": for (const commit of frame.commits) onFrame(commit); break;
    case "ack": retries.delete(frame.id); settle(frame.id, false, frame.version); break;
    case "reject":
      if ((frame.code === "rate_limited" || frame.code === "unavailable") && retryLater(frame.id)) break;
      retries.delete(frame.id);
      settle(frame.id, true, 0);
      if (frame.code !== "conflict") toast(frame.message);
      break;
    case "pong": onPong(frame); break;
  }
}
function goLive() {
  if (session.live || !session.ws) return;
  session.live = true;
  flushOutbox();
}

// ---------------------------------------------------------------- the player
const video = $("video");
// Our own play/pause/seek, shown at once until the server answers it (never folded in).
let optimistic = null;

function playback() { return optimistic ? optimistic.playback : session.room.playback; }
function isHost() { return !!session.memberId && session.host === session.memberId; }
function canControl() {
  return !!session.room && !session.room.closed && (session.room.settings.control === "everyone" || isHost());
}

// Every page reports an item's end; the room advances once, and only while that item is still
// current (the server refuses a stale report as a conflict).
const player = RoomPlayer.create({
  video,
  image: $("image"),
  empty: $("empty"),
  now: serverNow,
  room: () => (session.gone ? null : session.room),
  playback,
  on: {
    ended: (itemId) => command({ type: "next", expected_item_id: itemId }),
    clock: updateClock,
    finished: showFinished,
    muted: () => { $("unmute").hidden = false; },
    sync(drift, bad) {
      const text = drift === null ? "" : `sync ${drift >= 0 ? "+" : ""}${Math.round(drift * 1000)} ms`;
      if ($("sync").textContent !== text) $("sync").textContent = text;
      $("sync").classList.toggle("bad", bad);
      $("resync").hidden = !bad;
    },
  },
});
const tick = player.tick;
const targetSeconds = player.target;
const current = player.current;

let finishedShown = false;
function showFinished(on) {
  if (on === finishedShown) return;
  finishedShown = on;
  $("finished").hidden = !on;
  $("again").hidden = !canControl();
}
// Plays the playlist again from its first item.
function playAgain() {
  const first = session.room.playlist[0];
  if (!canControl() || !first) return;
  command({ type: "jump", item_id: first.item_id });
  command({ type: "play" });
}

function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
let clockText = "";
function updateClock(at, total) {
  const text = total ? `${fmt(at)} / ${fmt(total)}` : fmt(at);
  if (text !== clockText) { clockText = text; $("clock").textContent = text; }
  const fraction = total ? Math.min(1, at / total) : 0;
  if (document.activeElement !== $("seek")) $("seek").value = Math.round(fraction * 1000);
  $("progress-bar").style.width = `${(fraction * 100).toFixed(1)}%`;
}


// ---------------------------------------------------------------- rendering
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key.startsWith("aria") || key === "draggable") node.setAttribute(key.replace(/^aria/, "aria-").toLowerCase(), value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

const rows = { items: new Map(), members: new Map() };

const render = {
  // Everything, from a snapshot.
  all() {
    const room = session.room;
    rows.items.clear();
    $("playlist").replaceChildren(...room.playlist.map((item) => itemRow(item)));
    rows.members.clear();
    $("members").replaceChildren(...room.members.map((member) => memberRow(member)));
    session.olderMembers = 0;
    session.olderShown = 0;
    render.more();
    const log = $("chat");
    dropDelivered();
    log.replaceChildren(...room.chat.map(chatLine), ...[...pendingLines.values()].map((line) => line.node));
    scrollChat(true);
    render.title();
    render.playback();
    render.permissions();
    render.counts();
    render.settings();
  },

  // One event, after it was folded in.
  event(event) {
    switch (event.type) {
      case "items_added": {
        const list = $("playlist");
        for (const item of event.items) list.append(itemRow(item));
        render.counts();
        break;
      }
      case "item_removed": dropRow(rows.items, event.item_id); render.counts(); break;
      case "item_moved": {
        const row = rows.items.get(event.item_id);
        if (!row) break;
        const list = $("playlist");
        row.remove();
        list.insertBefore(row, list.children[Math.min(event.to, list.children.length)] || null);
        break;
      }
      case "playback_changed":
        // A new playback of the same item (a loop, a seek back, play after the end) may end again.
        optimistic = null;
        player.rearm();
        render.playback();
        break;
      case "member_joined": $("members").append(memberRow(session.room.members[session.room.members.length - 1])); render.counts(); break;
      case "member_returned": {
        const row = rows.members.get(event.member_id);
        if (row) { $("members").append(row); updateMemberRow(row, memberById(event.member_id)); }
        render.counts();
        break;
      }
      case "member_went_offline":
      case "member_renamed":
      // A member who joined signed in: the mark (and "Message") come with this event, after the join.
      case "account_bound": {
        const row = rows.members.get(event.member_id);
        if (row) updateMemberRow(row, memberById(event.member_id));
        render.counts();
        break;
      }
      case "member_left": dropRow(rows.members, event.member_id); render.counts(); break;
      case "host_changed": render.permissions(); break;
      case "chat_posted": {
        const log = $("chat");
        log.append(chatLine(event.message));
        for (let line = log.firstElementChild; line && log.childElementCount > CHAT_LINES;) {
          const next = line.nextElementSibling;
          if (!line.classList.contains("pending")) line.remove();
          line = next;
        }
        scrollChat(false);
        break;
      }
      case "chat_deleted": {
        const line = $("chat").querySelector(`[data-id="${CSS.escape(event.message_id)}"]`);
        if (line) line.remove();
        break;
      }
      case "control_changed": render.permissions(); render.settings(); break;
      case "rewatch_changed": render.title(); render.settings(); break;
      case "listed_changed":
      case "image_seconds_changed":
      case "shuffle_changed":
      case "loop_changed": render.settings(); break;
      case "room_closed": render.title(); render.permissions(); render.counts(); break;
    }
  },

  title() {
    const room = session.room;
    document.title = `${room.title} — Chanshare`;
    $("title").textContent = room.closed ? `${room.title} (closed)` : room.title;
    $("title").title = room.title;
    // A closed room lives on as its history: the party can be watched again as it happened.
    const rewatch = room.closed && room.settings.rewatch !== false;
    $("rewatch-link").hidden = !rewatch;
    if (rewatch) $("rewatch-link").href = rewatchUrl();
  },

  playback() {
    const room = session.room;
    const p = playback();
    const item = current();
    $("now").textContent = item ? item.title : "";
    $("post").hidden = !(item && item.post_url);
    if (item && item.post_url) $("post").href = item.post_url;
    $("toggle").textContent = p.playing ? "Pause" : "Play";
    $("rate").value = String(p.rate);
    $("rate-shown").textContent = p.rate === 1 ? "" : `${p.rate}×`;
    for (const [id, row] of rows.items) row.classList.toggle("current", id === room.playback.item_id);
    const currentRow = rows.items.get(room.playback.item_id);
    if (currentRow && !currentRow.hasAttribute("aria-current")) {
      currentRow.setAttribute("aria-current", "true");
      // Keep the item playing in view, unless someone is working in the list.
      const list = $("playlist");
      const top = currentRow.offsetTop;
      if (!list.matches(":hover, :focus-within") && (top < list.scrollTop || top + currentRow.offsetHeight > list.scrollTop + list.clientHeight)) {
        list.scrollTop = Math.max(0, top - list.clientHeight / 3);
      }
    }
    for (const row of $("playlist").querySelectorAll("[aria-current]")) if (row !== currentRow) row.removeAttribute("aria-current");
  },

  // What this member may do decides what is on the page: a control they may not use is not
  // shown at all (nor reachable by keyboard).
  permissions() {
    const control = canControl();
    const host = isHost() && !session.room.closed;
    for (const node of document.querySelectorAll(".controller")) node.hidden = !control;
    $("progress").hidden = control;
    $("rate-shown").hidden = control;
    $("modes-shown").hidden = control;
    $("host-note").hidden = control || session.room.closed;
    for (const button of $("playlist").querySelectorAll("button.edit")) button.hidden = !control;
    for (const row of rows.items.values()) row.draggable = control;
    $("host-settings").hidden = !host;
    // Badges and the host's actions: one pass over the members (a member list of thousands).
    for (const member of session.room.members) {
      const row = rows.members.get(member.member_id);
      if (row) updateMemberRow(row, member);
    }
    $("say").querySelector("button").disabled = session.room.closed;
    $("say").querySelector("input").disabled = session.room.closed;
  },

  settings() {
    const s = session.room.settings;
    $("control").value = s.control;
    $("listed").checked = s.listed;
    $("rewatch").checked = s.rewatch !== false;
    if (document.activeElement !== $("image-seconds")) $("image-seconds").value = s.image_seconds;
    $("shuffle").setAttribute("aria-pressed", String(!!s.shuffle));
    $("loop").setAttribute("aria-pressed", String(!!s.loop));
    $("modes-shown").textContent = [s.shuffle ? "shuffle" : "", s.loop ? "loop" : ""].filter(Boolean).join(" · ");
  },

  counts() {
    const room = session.room;
    $("playlist-count").textContent = `(${room.playlist.length})`;
    $("member-count").textContent = `(${RoomPlayer.onlineCount(room)} online)`;
    render.more();
  },

  // A big room's snapshot lists its latest members; the others are a click away.
  more() {
    const room = session.room;
    const hidden = Math.max(0, (room.member_count || 0) - room.members.length);
    const button = $("more-members");
    button.hidden = hidden === 0;
    button.textContent = `Show ${hidden.toLocaleString()} earlier member${hidden === 1 ? "" : "s"}`;
  },
};

function dropRow(map, id) {
  const row = map.get(id);
  if (row) row.remove();
  map.delete(id);
}
// The members a big room's snapshot left out, a page at a time from the first to join. The list
// stays in join order: the pages loaded so far, then the latest members the snapshot listed.
async function showMoreMembers() {
  const button = $("more-members");
  button.disabled = true;
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/members?offset=${session.olderMembers || 0}&limit=500`);
    if (!res.ok) throw new Error(`members: ${res.status}`);
    const page = await res.json();
    session.olderMembers = page.next_offset ?? page.member_count;
    const members = session.room.members;
    // What the socket brought is newer than the page: keep it for members in both.
    const live = new Map(members.map((m) => [m.member_id, m]));
    const paged = new Set(page.members.map((m) => m.member_id));
    const loaded = members.slice(0, session.olderShown || 0).filter((m) => !paged.has(m.member_id));
    const head = [...loaded, ...page.members.map((m) => live.get(m.member_id) || m)];
    const inHead = new Set(head.map((m) => m.member_id));
    session.room.members = [...head, ...members.filter((m) => !inHead.has(m.member_id))];
    session.olderShown = head.length;
    if (page.next_offset == null) session.room.member_count = session.room.members.length;
    rows.members.clear();
    $("members").replaceChildren(...session.room.members.map((member) => memberRow(member)));
    render.more();
  } catch (error) {
    toast("could not load more members");
  } finally {
    button.disabled = false;
  }
}

function memberById(id) { return session.room.members.find((m) => m.member_id === id); }

function itemRow(item) {
  const control = canControl();
  const title = item.title;
  const row = el("li", {
    class: "pl-item",
    draggable: control,
    onclick: (e) => { if (!e.target.closest("button, a") && canControl()) command({ type: "jump", item_id: item.item_id }); },
  },
    item.thumb_url || item.kind === "image"
      ? el("img", { src: item.thumb_url || item.url, alt: "", loading: "lazy" })
      : el("span", { class: "kind", textContent: item.kind }),
    el("span", { class: "title", title, textContent: title }),
    el("span", { class: "acts" },
      item.post_url ? el("a", { href: item.post_url, target: "_blank", rel: "noopener noreferrer", textContent: "post" }) : null,
      el("button", { type: "button", class: "edit", hidden: !control, textContent: "↑", title: "Move up", ariaLabel: `Move ${title} up`, onclick: () => moveBy(item.item_id, -1) }),
      el("button", { type: "button", class: "edit", hidden: !control, textContent: "↓", title: "Move down", ariaLabel: `Move ${title} down`, onclick: () => moveBy(item.item_id, 1) }),
      el("button", { type: "button", class: "edit", hidden: !control, textContent: "✕", title: "Remove", ariaLabel: `Remove ${title}`, onclick: () => command({ type: "remove_item", item_id: item.item_id }) }),
    ),
  );
  row.dataset.item = item.item_id;
  row.classList.toggle("current", item.item_id === session.room.playback.item_id);
  row.addEventListener("dragstart", (e) => { e.dataTransfer.setData("text/x-chanshare-item", item.item_id); e.dataTransfer.effectAllowed = "move"; row.classList.add("dragging"); });
  row.addEventListener("dragend", () => row.classList.remove("dragging"));
  row.addEventListener("dragover", (e) => {
    if (!canControl() || !e.dataTransfer.types.includes("text/x-chanshare-item")) return;
    e.preventDefault();
    const after = e.offsetY > row.clientHeight / 2;
    row.classList.toggle("drop-after", after);
    row.classList.toggle("drop-before", !after);
  });
  row.addEventListener("dragleave", () => row.classList.remove("drop-before", "drop-after"));
  row.addEventListener("drop", (e) => {
    e.preventDefault();
    const after = row.classList.contains("drop-after");
    row.classList.remove("drop-before", "drop-after");
    const dragged = e.dataTransfer.getData("text/x-chanshare-item");
    if (dragged && dragged !== item.item_id) dropOn(dragged, item.item_id, after);
  });
  rows.items.set(item.item_id, row);
  return row;
}

// The index `to` of `move_item` counts in the playlist after the item was taken out.
function dropOn(dragged, target, after) {
  const list = session.room.playlist.filter((i) => i.item_id !== dragged);
  const at = list.findIndex((i) => i.item_id === target);
  if (at < 0) return;
  command({ type: "move_item", item_id: dragged, to: at + (after ? 1 : 0) });
}
function moveBy(itemId, by) {
  const from = session.room.playlist.findIndex((i) => i.item_id === itemId);
  const to = from + by;
  if (from < 0 || to < 0 || to >= session.room.playlist.length) return;
  command({ type: "move_item", item_id: itemId, to });
}

function memberRow(member) {
  const row = el("li", {});
  row.dataset.member = member.member_id;
  rows.members.set(member.member_id, row);
  updateMemberRow(row, member);
  return row;
}
function updateMemberRow(row, m) {
  if (!row || !m) return;
  const me = m.member_id === session.memberId;
  const actions = isHost() && !me && !session.room.closed;
  const online = m.online && !session.room.closed;
  row.replaceChildren(...[
    el("span", { class: `dot${online ? " on" : ""}`, title: online ? "online" : "offline" }),
    el("span", { class: "name", textContent: m.name }),
    // Its own span: a long name is cut short, "(you)" never is.
    me ? el("span", { class: "you muted", textContent: " (you)" }) : null,
    // The account mark: only a verified access token binds one, so a guest cannot wear it.
    // (Just the check when the member goes by the username; the username when renamed.)
    m.account ? el("span", { class: "account-mark", title: `Signed in as @${m.account}` },
      m.name === m.account ? "✓" : `✓ @${m.account}`, el("span", { class: "sr-only", textContent: ` (signed in as @${m.account})` })) : null,
    m.owner ? el("span", { class: "badge owner", textContent: "creator", title: "This account created the room" }) : null,
    m.role === "host" ? el("span", { class: "badge", textContent: "host" }) : null,
    // Another signed-in member, and this page is signed in: a direct message.
    m.account && Account.current() && m.account !== Account.current().username
      ? el("button", { type: "button", class: "message", textContent: "✉", title: `Message @${m.account}`, ariaLabel: `Message @${m.account}`, onclick: () => window.chanshareMessages.open(m.account) })
      : null,
    actions ? el("span", { class: "acts" },
      m.online ? el("button", { type: "button", textContent: "Make host", ariaLabel: `Make host: ${m.name}`, onclick: () => command({ type: "transfer_host", member_id: m.member_id }) }) : null,
      el("button", { type: "button", textContent: "Kick", ariaLabel: `Kick ${m.name}`, onclick: () => confirm(`Kick ${m.name}?`) && command({ type: "kick", member_id: m.member_id }) }),
    ) : null,
  ].filter(Boolean));
}

// A big room's snapshot lists a page of its members: a name the page lacks (an earlier member
// who chats) is asked for, up to 100 at a time, and the lines that show it are named then.
const names = new Map();
const unnamed = new Set();
let naming = null;
const nameOf = (id) => {
  const m = memberById(id);
  if (m) return m.name;
  if (names.has(id)) return names.get(id);
  unnamed.add(id);
  naming ??= setTimeout(fetchNames, 100);
  return "someone";
};
async function fetchNames() {
  const ids = [...unnamed].slice(0, 100);
  for (const id of ids) unnamed.delete(id);
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/members?ids=${ids.join(",")}`);
    if (res.ok) for (const m of (await res.json()).members) names.set(m.member_id, m.name);
  } catch { /* they stay "someone" */ }
  // Asked once: a member no longer listed (pruned) stays "someone".
  for (const id of ids) if (!names.has(id)) names.set(id, "someone");
  const asked = new Set(ids);
  for (const line of $("chat").querySelectorAll(".chat-line[data-author]")) {
    if (asked.has(line.dataset.author)) line.querySelector("b").textContent = nameOf(line.dataset.author);
  }
  naming = unnamed.size ? setTimeout(fetchNames, 100) : null;
}
// One formatter for every line (making one per line costs more than the rest of the line).
const timeFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
function chatLine(c) {
  const line = el("div", { class: "chat-line" },
    el("time", { textContent: timeFormat.format(c.at_ms) }),
    el("b", { textContent: nameOf(c.member_id) }),
    el("span", { textContent: c.text }),
  );
  line.dataset.id = c.id;
  line.dataset.author = c.member_id;
  return line;
}
function pendingChat(text) {
  const line = el("div", { class: "chat-line pending" }, el("b", { textContent: session.name || "you" }), el("span", { textContent: text }));
  $("chat").append(line);
  scrollChat(true);
  return line;
}
// The log keeps at most CHAT_LINES lines; it follows new lines while it is scrolled to the end.
// Layout is read once per frame, not once per line.
let scrollQueued = false;
let stickToEnd = true;
function scrollChat(force) {
  const log = $("chat");
  if (force) stickToEnd = true;
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (stickToEnd) log.scrollTop = log.scrollHeight;
  });
}
$("chat").addEventListener("scroll", () => {
  const log = $("chat");
  stickToEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}, { passive: true });

// ---------------------------------------------------------------- controls
// Own playback actions show at once (the commit confirms them a moment later with the server's
// anchor, close enough that the player does not jump).
function optimisticCommand(body, change) {
  const p = playback();
  const id = command(body);
  optimistic = { id, playback: Object.assign({}, p, { position_ms: Math.round(targetSeconds() * 1000), anchor_ms: Math.round(serverNow()) }, change) };
  render.playback();
}
$("again").onclick = playAgain;
$("more-members").onclick = showMoreMembers;
$("toggle").onclick = () => {
  if (!canControl() || !session.room.playback.item_id) return;
  // Play at the end of the playlist means "again", not another end at once.
  if (finishedShown) return playAgain();
  const playing = !playback().playing;
  optimisticCommand({ type: playing ? "play" : "pause" }, { playing });
};
$("prev").onclick = () => canControl() && command({ type: "previous" });
$("next").onclick = () => canControl() && command({ type: "next" });
function seekTo(seconds) {
  if (!canControl() || !session.room.playback.item_id) return;
  const position_ms = Math.max(0, Math.round(seconds * 1000));
  optimisticCommand({ type: "seek", position_ms }, { position_ms });
}
$("seek").onchange = () => {
  const item = current();
  const total = item && item.kind === "image" ? player.imageSeconds() : Number.isFinite(video.duration) ? video.duration : 0;
  if (total) seekTo((Number($("seek").value) / 1000) * total);
};
$("rate").onchange = () => canControl() && command({ type: "set_rate", rate: Number($("rate").value) });
$("shuffle").onclick = () => canControl() && command({ type: "set_shuffle", shuffle: !session.room.settings.shuffle });
$("loop").onclick = () => canControl() && command({ type: "set_loop", loop: !session.room.settings.loop });
$("resync").onclick = () => player.resync();
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
  const urls = event.target.urls.value.split(/\s+/).filter(Boolean);
  for (let i = 0; i < urls.length; i += 100) command({ type: "add_items", urls: urls.slice(i, i + 100) });
  event.target.urls.value = "";
};
$("add").querySelector("textarea").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("add").requestSubmit(); }
});
$("control").onchange = () => command({ type: "set_control", control: $("control").value });
$("listed").onchange = () => command({ type: "set_listed", listed: $("listed").checked });
$("rewatch").onchange = () => command({ type: "set_rewatch", rewatch: $("rewatch").checked });
$("image-seconds").onchange = () => {
  const seconds = Math.round(Number($("image-seconds").value));
  if (seconds >= 1 && seconds <= 600) command({ type: "set_image_seconds", seconds });
  else render.settings();
};
$("close-room").onclick = () => confirm("Close the room for everyone?") && command({ type: "close" });
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select, button, a, [tabindex]") || !session.room) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return; // the browser's own shortcuts
  if (event.code === "Space") { event.preventDefault(); $("toggle").click(); }
  else if (event.key === "ArrowRight" && event.shiftKey) $("next").click();
  else if (event.key === "ArrowLeft" && event.shiftKey) $("prev").click();
  else if (event.key === "ArrowRight") seekTo(targetSeconds() + 5);
  else if (event.key === "ArrowLeft") seekTo(targetSeconds() - 5);
});
// Closing the tab says goodbye: the server shows the member offline at once (after a short grace
// for reloads) instead of after the presence timeout.
window.addEventListener("pagehide", () => { if (session.ws) session.ws.close(1000, "bye"); });

let toastTimer = null;
function toast(message) {
  $("toast").textContent = message;
  $("toast").classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => $("toast").classList.remove("show"), 3000);
}

// Asks for a nickname; `why` says what was wrong with the last one (a link's `?name=` too long).
function askName(why) {
  return new Promise((resolve) => {
    const dialog = $("name-dialog");
    // The field holds what it may (32 characters): a longer name is cut, not sent again as is.
    dialog.querySelector("input").value = [...session.name].slice(0, 32).join("");
    $("name-why").textContent = why || "";
    $("name-why").hidden = !why;
    dialog.addEventListener("close", () => {
      session.name = dialog.querySelector("input").value.trim();
      localStorage.setItem("chanshare:name", session.name);
      resolve();
    }, { once: true });
    dialog.showModal();
  });
}

// Test hooks: what the browser tests sample (read-only, but for `cut`).
const hooks = { commits: 0, durations: {} };
video.addEventListener("loadedmetadata", () => { const loaded = player.loaded(); if (loaded) hooks.durations[loaded.id] = video.duration; });
window.chanshare = {
  session,
  hooks,
  command,
  sample: () => { const loaded = player.loaded(); return {
    item: loaded ? loaded.id : null,
    kind: loaded ? loaded.kind : null,
    time: video.currentTime,
    target: session.room ? targetSeconds() : null,
    playing: !video.paused,
    videoSrc: video.getAttribute("src"),
    drift: session.room && loaded && loaded.kind === "video" ? video.currentTime - targetSeconds() : null,
  }; },
  chat: () => [...document.querySelectorAll("#chat .chat-line:not(.pending) span")].map((s) => s.textContent),
  pending: () => outbox.size,
  cut: () => session.ws && session.ws.close(),
  // A connection that stays down until `online()`: what a page in a tunnel or on a train sees.
  offline: () => { session.held = true; if (session.ws) session.ws.close(); },
  online: () => { session.held = false; connect(); },
  offset: () => clock.offset,
};

setInterval(tick, 100);
setInterval(ping, 2000);
(session.name || session.token || Account.current() ? Promise.resolve() : askName()).then(connect);
const accountName = $("me-account");
const showMe = (s) => { accountName.textContent = s ? `@${s.username}` : ""; accountName.hidden = !s; };
Account.onChange(showMe);
// Signed in or out here: the ✉ on signed-in members comes or goes.
Account.onChange(() => {
  if (!session.room) return;
  for (const m of session.room.members) updateMemberRow(rows.members.get(m.member_id), m);
});
// Signed out in another tab: this page's member is the account's, so it goes too.
Account.onChange((s) => {
  if (s || !session.signedIn || session.gone) return;
  if (session.ws) session.ws.close(1000, "signed out");
  leave("You were signed out", "This page was signed in, and the session ended (signed out here or on another device). Join again from the lobby, signed in or as a guest.");
});
showMe(Account.current());
