// The rewatch page: a room's history played back as it happened. It starts from the room's
// state at a moment (`/rewatch/state`, which the server folds from its nearest checkpoint),
// then applies the commits that follow (`/events`, paged ahead of the playhead) when a clock
// that runs through the session at 1×, 2× or 4× reaches their time. The player is the live
// page's (player.js) on that clock. User text only ever goes through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split("/")[2] || "");
const params = new URLSearchParams(location.search);
const CHAT_LINES = 200;
const PAGE = 1000; // commits per /events page
const QUIET_MS = 8000; // a stretch with nothing playing and nothing said is skipped past this

// An unlisted room's history is for its members: the member token this browser joined with (or
// one a link carries), and the signed-in account's access token (its member of the room). Both
// go: the server takes whichever it knows (an old member token may have expired).
const memberToken = params.get("token") || localStorage.getItem(`chanshare:token:${roomId}`);

const rw = {
  info: null, // GET /rewatch: the timeline
  room: null, // the state JSON at `version`
  version: 0,
  roles: { host: null },
  buffer: [], // commits after `version`, in order, not yet applied
  fetched: 0, // the last version in or before the buffer
  end: 0, // the last version of the history
  fetching: null,
  going: false, // a scrub is on its way: no page is fetched for the point it leaves
  pending: null, // where a scrub about to start points
  scrubTimer: null,
  retryAt: 0,
  epoch: 0, // a scrub makes every read begun before it stale
  clock: { at: 0, real: 0, speed: 1, paused: false },
};

function localNow() { return performance.timeOrigin + performance.now(); }
// The moment of the session on screen (ms since the epoch, in the room's server time).
function now() {
  const c = rw.clock;
  const at = c.paused ? c.at : c.at + (localNow() - c.real) * c.speed;
  return Math.min(at, rw.info ? rw.info.timeline.end.at_ms : at);
}
function setClock(at, change = {}) {
  Object.assign(rw.clock, { at, real: localNow() }, change);
}

// ---------------------------------------------------------------- reading the history
async function api(path, query = {}, { method = "GET", body } = {}) {
  const search = new URLSearchParams(query);
  if (memberToken) search.set("token", memberToken);
  const access = await Account.token().catch(() => null);
  const headers = access ? { authorization: `Bearer ${access}` } : {};
  if (body) headers["content-type"] = "application/json";
  const response = await fetch(`/api/rooms/${encodeURIComponent(roomId)}${path}?${search}`, { method, headers, body: body && JSON.stringify(body) });
  const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((answer.error && answer.error.message) || `HTTP ${response.status}`);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("retry-after")) || 0;
    throw error;
  }
  return answer;
}

// The commits after the buffer's last, a page at a time, while the playhead is near them.
async function fill() {
  if (rw.going || rw.fetching || rw.fetched >= rw.end || Date.now() < rw.retryAt) return;
  const last = rw.buffer.length ? rw.buffer[rw.buffer.length - 1].at_ms : 0;
  if (rw.buffer.length > PAGE / 2 && last > now() + 60000 * rw.clock.speed) return;
  // A page answers for the point it was asked from: a scrub meanwhile makes it stale.
  const epoch = rw.epoch;
  const after = rw.fetched;
  const request = api("/events", { after, limit: PAGE })
    .then((page) => {
      if (epoch !== rw.epoch || after !== rw.fetched) return;
      rw.buffer.push(...within(page.commits));
      rw.fetched = page.commits.length ? page.next_after : rw.end;
      // An open room has gone on since its timeline was read: the history ends later.
      const newest = page.commits[page.commits.length - 1];
      if (newest && newest.version > rw.end) {
        rw.end = newest.version;
        rw.info.timeline.end = { version: newest.version, at_ms: newest.at_ms };
      }
    })
    .catch((error) => { if (epoch === rw.epoch) failed(error); })
    .finally(() => { if (rw.fetching === request) rw.fetching = null; });
  rw.fetching = request;
  await request;
}

// The commits of the session: a closed room's ends at its closing (what its host changed in it
// later, rewatch on or off, is not part of the party).
function within(commits) {
  return rw.info.closed ? commits.filter((c) => c.version <= rw.end) : commits;
}

// A read of the history failed: say so, and try again in a while (a 429 says when).
function failed(error) {
  toast(`Could not read the history: ${error.message}`);
  rw.retryAt = Date.now() + Math.max(3, error.retryAfter || 0) * 1000;
}

// Goes to the moment `at` (ms): the state there, then the commits after it. Answers whether it
// got there (a newer scrub wins over an older one still on its way).
async function goTo(at, version) {
  const epoch = ++rw.epoch;
  rw.going = true;
  rw.pending = null;
  try {
    const start = rw.info.timeline.start;
    const startAt = start.at_ms;
    at = Math.max(startAt, Math.min(at, rw.info.timeline.end.at_ms));
    let room;
    try {
      room = await api("/rewatch/state", version ? { version } : { at_ms: Math.round(at) });
    } catch (error) {
      if (error.status !== 410 && error.status !== 400) throw error;
      // Before what the log still holds (or before the room): its first moment instead.
      if (epoch !== rw.epoch) return false;
      room = await api("/rewatch/state", { version: Math.max(1, start.version) });
      at = startAt;
    }
    if (epoch !== rw.epoch) return false;
    // The commits that follow come before the clock runs: nothing due is missing when it does.
    const page = await api("/events", { after: room.version, limit: PAGE });
    if (epoch !== rw.epoch) return false;
    rw.room = room;
    rw.version = room.version;
    rw.roles.host = RoomPlayer.hostOf(room);
    rw.buffer = within(page.commits);
    rw.fetched = page.commits.length ? page.next_after : rw.end;
    rw.fetching = null;
    rw.pending = null;
    setClock(at);
    render.all();
    apply();
    player.realign();
    player.tick();
    return true;
  } catch (error) {
    if (epoch === rw.epoch) failed(error);
    return false;
  } finally {
    if (epoch === rw.epoch) rw.going = false;
  }
}

// A scrub: the clicks and key presses of a moment make one trip, to where the last one points.
function scrub(at) {
  rw.pending = at;
  clearTimeout(rw.scrubTimer);
  rw.scrubTimer = setTimeout(() => goTo(rw.pending), 150);
}
// Where the playhead is, or is about to be.
function aim() { return rw.pending ?? now(); }


// Applies every buffered commit whose time has come.
function apply() {
  const at = now();
  let changed = false;
  while (rw.buffer.length && rw.buffer[0].at_ms <= at) {
    if (rw.buffer[0].version !== rw.version + 1) {
      // Not the next commit (never expected): read on from what the page has.
      rw.buffer = [];
      rw.fetched = rw.version;
      break;
    }
    const commit = rw.buffer.shift();
    for (const event of commit.events) {
      const said = saying(event); // before the fold: who left is gone after it
      RoomPlayer.fold(rw.room, event, rw.roles);
      render.event(event);
      if (said) addChat(systemLine(said, commit.at_ms));
    }
    rw.version = commit.version;
    rw.room.version = commit.version;
    changed = true;
  }
  if (changed) player.tick();
  // Nothing plays and nobody speaks for a while: go on to the next thing that happens.
  const next = rw.buffer[0];
  if (next && !rw.going && !rw.clock.paused && !rw.room.playback.playing && next.at_ms - at > QUIET_MS) {
    setClock(next.at_ms - 1000);
    note(`Skipped ${fmt((next.at_ms - at) / 1000)} where nothing played.`);
  }
  fill();
}

// ---------------------------------------------------------------- the player
const video = $("video");
const player = RoomPlayer.create({
  video,
  image: $("image"),
  empty: $("empty"),
  now,
  speed: () => rw.clock.speed,
  room: () => rw.room,
  // Paused, the room holds still where it was: its playback frozen at the playhead.
  playback() {
    const p = rw.room.playback;
    if (!rw.clock.paused || !p.playing) return p;
    const at = now();
    return Object.assign({}, p, { playing: false, position_ms: p.position_ms + Math.max(0, at - p.anchor_ms) * p.rate, anchor_ms: at });
  },
  on: {
    // The room moved on when a member's page said so: that commit is in the history.
    ended() {},
    clock(at, total) { $("item-clock").textContent = total ? `${fmt(at)} / ${fmt(total)}` : ""; },
    finished(on) { $("finished").hidden = !on; },
    muted() { $("unmute").hidden = false; },
    sync() {},
  },
});

// ---------------------------------------------------------------- rendering
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}
function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}` : `${m}:${String(s % 60).padStart(2, "0")}`;
}
const timeFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const momentFormat = new Intl.DateTimeFormat([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" });
const nameOf = (id) => { const m = rw.room.members.find((x) => x.member_id === id); return m ? m.name : "someone"; };

function chatLine(c) {
  const line = el("div", { class: `chat-line${c.deleted ? " deleted" : ""}` },
    el("time", { textContent: timeFormat.format(c.at_ms) }),
    el("b", { textContent: nameOf(c.member_id) }),
    el("span", { textContent: c.deleted ? "message deleted" : c.text }),
  );
  line.dataset.id = c.id;
  return line;
}
function systemLine(text, at) {
  return el("div", { class: "chat-line system" }, el("time", { textContent: timeFormat.format(at) }), el("span", { textContent: text }));
}
// What the chat panel says of a member's coming and going, and of the end.
function saying(event) {
  switch (event.type) {
    case "member_joined": return `${event.name} joined`;
    case "member_returned": return `${nameOf(event.member_id)} came back`;
    case "member_left": return `${nameOf(event.member_id)} left`;
    case "room_closed": return "The room closed";
    default: return null;
  }
}
function addChat(line) {
  const log = $("chat");
  const follow = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(line);
  while (log.childElementCount > CHAT_LINES) log.firstElementChild.remove();
  if (follow) log.scrollTop = log.scrollHeight;
}

const render = {
  all() {
    const room = rw.room;
    $("chat").replaceChildren(...room.chat.map(chatLine));
    $("chat").scrollTop = $("chat").scrollHeight;
    render.members();
    render.playlist();
    render.playback();
  },
  event(event) {
    switch (event.type) {
      case "chat_posted": addChat(chatLine(event.message)); break;
      case "chat_deleted": {
        const line = $("chat").querySelector(`[data-id="${CSS.escape(event.message_id)}"]`);
        if (line) line.remove();
        break;
      }
      case "member_joined":
      case "member_returned":
      case "member_left":
      case "member_went_offline":
      case "member_renamed":
      case "host_changed":
      case "account_bound": render.members(); break;
      case "items_added":
      case "item_removed":
      case "item_moved": render.playlist(); break;
      case "playback_changed": player.rearm(); render.playback(); break;
      case "room_closed": render.members(); break;
    }
  },
  members() {
    const room = rw.room;
    $("members").replaceChildren(...room.members.map((m) => {
      const online = m.online && !room.closed;
      return el("li", {},
        el("span", { class: `dot${online ? " on" : ""}`, title: online ? "online" : "offline" }),
        el("span", { class: "name", textContent: m.name }),
        m.account ? el("span", { class: "account-mark", title: `Signed in as @${m.account}`, textContent: m.name === m.account ? "✓" : `✓ @${m.account}` }) : null,
        m.role === "host" ? el("span", { class: "badge", textContent: "host" }) : null,
      );
    }));
    $("member-count").textContent = `(${RoomPlayer.onlineCount(room)} online)`;
  },
  playlist() {
    const room = rw.room;
    $("playlist").replaceChildren(...room.playlist.map((item) => {
      const row = el("li", { class: "pl-item" },
        item.thumb_url || item.kind === "image"
          ? el("img", { src: item.thumb_url || item.url, alt: "", loading: "lazy" })
          : el("span", { class: "kind", textContent: item.kind }),
        el("span", { class: "title", title: item.title, textContent: item.title }),
        el("span", {}),
      );
      row.dataset.item = item.item_id;
      return row;
    }));
    $("playlist-count").textContent = `(${room.playlist.length})`;
    render.playback();
  },
  playback() {
    const item = player.current();
    $("now").textContent = item ? item.title : "";
    $("post").hidden = !(item && item.post_url);
    if (item && item.post_url) $("post").href = item.post_url;
    for (const row of $("playlist").children) {
      const on = !!item && row.dataset.item === item.item_id;
      row.classList.toggle("current", on);
      if (on && !row.hasAttribute("aria-current")) {
        row.setAttribute("aria-current", "true");
        const list = $("playlist");
        if (row.offsetTop < list.scrollTop || row.offsetTop + row.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = Math.max(0, row.offsetTop - list.clientHeight / 3);
      } else if (!on) row.removeAttribute("aria-current");
    }
  },
};

// ---------------------------------------------------------------- the timeline
function span() {
  const t = rw.info.timeline;
  return { from: t.start.at_ms, to: Math.max(t.end.at_ms, t.start.at_ms + 1) };
}
function drawTimeline() {
  const t = rw.info.timeline;
  const { from, to } = span();
  const width = to - from;
  const buckets = Math.max(1, t.buckets.length, Math.ceil(width / t.bucket_ms));
  const counts = Array.from({ length: buckets }, (_, i) => t.buckets[i] || { commits: 0, chat: 0, items: 0, joins: 0 });
  const most = Math.max(1, ...counts.map((b) => b.commits));
  // A burst: twice the session's average chat per bucket, and at least four messages.
  const busy = Math.max(4, (2 * counts.reduce((sum, b) => sum + b.chat, 0)) / counts.length);
  $("bars").replaceChildren(...counts.map((b, i) => {
    const bar = el("div", { title: `${fmt((i * t.bucket_ms) / 1000)}: ${b.commits} actions, ${b.chat} chat messages, ${b.joins} joins` });
    bar.style.height = b.commits ? `${Math.max(8, (Math.log1p(b.commits) / Math.log1p(most)) * 100)}%` : "0";
    if (b.chat >= busy) bar.classList.add("chatty");
    return bar;
  }));
  const left = (at) => `${(((at - from) / width) * 100).toFixed(3)}%`;
  const marks = t.marks.map((m) => {
    const mark = el("i", { title: `${fmt((m.at_ms - from) / 1000)}: ${rw.info.titles[m.item_id] || (m.item_id ? "an item" : "the playlist stopped")}` });
    mark.style.left = left(m.at_ms);
    return mark;
  });
  // A chat burst: a dot over the busiest buckets.
  const bursts = counts.flatMap((b, i) => {
    if (b.chat < busy) return [];
    const dot = el("b", { title: `${b.chat} chat messages` });
    dot.style.left = left(from + (i + 0.5) * t.bucket_ms);
    return [dot];
  });
  $("marks").replaceChildren(...marks, ...bursts);
  if (t.start.version > 0) {
    $("gap").hidden = false;
    $("gap").style.width = "6px";
    note("The start of this room's history has left the log: the rewatch begins at the first moment it still holds.");
  }
}
function drawHead() {
  const { from, to } = span();
  const at = now();
  const fraction = Math.max(0, Math.min(1, (at - from) / (to - from)));
  $("head").style.left = `${(fraction * 100).toFixed(3)}%`;
  $("timeline").setAttribute("aria-valuenow", Math.round(fraction * 100));
  $("timeline").setAttribute("aria-valuetext", fmt((at - from) / 1000));
  $("clock").textContent = `${fmt((at - from) / 1000)} / ${fmt((to - from) / 1000)}`;
  $("moment").textContent = momentFormat.format(at);
  const over = at >= rw.info.timeline.end.at_ms && !rw.buffer.length && rw.fetched >= rw.end;
  if (over && !rw.clock.paused) { setClock(at, { paused: true }); showToggle(); }
}
function atFraction(fraction) {
  const { from, to } = span();
  return from + Math.max(0, Math.min(1, fraction)) * (to - from);
}
$("timeline").addEventListener("pointerdown", (event) => {
  const box = $("timeline").getBoundingClientRect();
  scrub(atFraction((event.clientX - box.left) / box.width));
});
$("timeline").addEventListener("keydown", (event) => {
  const step = event.shiftKey ? 60000 : 10000;
  if (event.key === "ArrowRight") { event.preventDefault(); scrub(aim() + step); }
  else if (event.key === "ArrowLeft") { event.preventDefault(); scrub(aim() - step); }
  else if (event.code === "Space") { event.preventDefault(); togglePlay(); }
});

// ---------------------------------------------------------------- controls
function showToggle() { $("toggle").textContent = rw.clock.paused ? "Play" : "Pause"; }
function togglePlay() {
  if (!rw.room) return;
  const at = now();
  const over = at >= rw.info.timeline.end.at_ms && rw.fetched >= rw.end && !rw.buffer.length;
  if (rw.clock.paused && over) {
    goTo(span().from).then((there) => { if (there) { setClock(now(), { paused: false }); showToggle(); } });
    return;
  }
  setClock(at, { paused: !rw.clock.paused });
  showToggle();
  apply(); // what happened up to the moment paused at is on the page
  player.realign();
  player.tick();
}
$("toggle").onclick = togglePlay;
$("speed").onchange = () => { setClock(now(), { speed: Number($("speed").value) }); player.realign(); };
$("unmute").onclick = () => { video.muted = false; $("unmute").hidden = true; };
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, button, a, [tabindex]") || !rw.room) return;
  if (event.code === "Space") { event.preventDefault(); togglePlay(); }
});
$("share").onclick = async () => {
  const link = `${location.origin}/r/${encodeURIComponent(roomId)}/rewatch?t=${encodeURIComponent(new Date(now()).toISOString())}`;
  try { await navigator.clipboard.writeText(link); toast("Link to this moment copied"); } catch { prompt("Link to this moment", link); }
};

// The host (or the room's creator account) may stop everyone rewatching, and undo it.
async function setRewatch(rewatch) {
  try {
    await api("/rewatch", {}, { method: "PUT", body: { rewatch } });
  } catch (error) { toast(error.message); return false; }
  return true;
}
$("rewatch-off").onclick = async () => {
  if (!confirm("Stop everyone from rewatching this party? You can turn it back on.")) return;
  if (!(await setRewatch(false))) return;
  video.pause();
  refuse("Rewatch is off", "Nobody can rewatch this party now, you included.");
  $("rewatch-on").hidden = false;
};
$("rewatch-on").onclick = async () => { if (await setRewatch(true)) location.reload(); };

let noteTimer = null;
function note(text) {
  $("note").textContent = text;
  $("note").hidden = false;
  clearTimeout(noteTimer);
  noteTimer = setTimeout(() => { if (!rw.info || !rw.info.timeline.start.version) $("note").hidden = true; }, 6000);
}
let toastTimer = null;
function toast(message) {
  $("toast").textContent = message;
  $("toast").classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => $("toast").classList.remove("show"), 4000);
}
function refuse(title, text) {
  rw.epoch += 1; // a scrub on its way lands nowhere
  rw.room = null; // nothing plays on behind the message
  video.pause();
  $("gone-title").textContent = title;
  $("gone-text").textContent = text ? text[0].toUpperCase() + text.slice(1) : "";
  $("gone").hidden = false;
  $("room").hidden = true;
  $("share").hidden = true;
}

// ---------------------------------------------------------------- start
async function start() {
  try {
    rw.info = await api("/rewatch");
  } catch (error) {
    const titles = { 403: "This party cannot be rewatched", 404: "This room does not exist" };
    refuse(titles[error.status] || "The history cannot be read right now", error.message);
    // Turned off: its host (or its creator's account) may turn it back on from here.
    const off = error.status === 403 && /rewatching off/.test(error.message);
    if (off && (memberToken || Account.current())) {
      $("rewatch-on").textContent = "I am the host: turn rewatch back on";
      $("rewatch-on").hidden = false;
    }
    return;
  }
  const t = rw.info.timeline;
  rw.end = t.end.version;
  document.title = `Rewatch: ${rw.info.title} — Chanshare`;
  $("title").textContent = `Rewatch: ${rw.info.title}`;
  $("title").title = rw.info.title;
  $("live").hidden = rw.info.closed;
  $("rewatch-off").hidden = !rw.info.host;
  $("live").href = `/r/${encodeURIComponent(roomId)}`;
  $("room").hidden = false;
  if (!t.end.version) { refuse("Nothing to rewatch yet", "This room has no history yet."); return; }
  drawTimeline();
  // A deep link: a time (RFC 3339) or a version; else the start of the session.
  const at = Date.parse(params.get("t") || "");
  const version = Number(params.get("v"));
  // The first load is tried again while the server is busy; then the page says it cannot.
  for (let attempt = 0; !rw.room; attempt += 1) {
    if (Number.isInteger(version) && version > 0) await goToVersion(version);
    else await goTo(Number.isFinite(at) ? at : t.start.at_ms, Number.isFinite(at) ? undefined : Math.max(1, t.start.version));
    if (rw.room) break;
    if (attempt === 4) { refuse("The history cannot be read right now", "Try again in a minute."); return; }
    await new Promise((resolve) => setTimeout(resolve, Math.max(1000, rw.retryAt - Date.now())));
  }
  showToggle();
  setInterval(() => { if (rw.room) { apply(); player.tick(); } }, 100);
  const frame = () => { if (rw.room) drawHead(); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
}

// Opens at version `version`: the moment of its commit.
async function goToVersion(version) {
  try {
    const page = await api("/events", { after: version - 1, limit: 1 });
    if (page.commits.length) { await goTo(page.commits[0].at_ms, version); return; }
  } catch (error) {
    if (error.status !== 410) { failed(error); return; }
  }
  await goTo(rw.info.timeline.start.at_ms);
}

// Test hooks: what the browser tests sample.
window.rewatch = {
  state: rw,
  now,
  goTo,
  pause: () => { if (!rw.clock.paused) togglePlay(); },
  play: () => { if (rw.clock.paused) togglePlay(); },
  speed: (n) => { $("speed").value = String(n); $("speed").onchange(); },
  sample: () => {
    const loaded = player.loaded();
    return { version: rw.version, at: now(), item: loaded ? loaded.id : null, target: rw.room ? player.target() : null, time: video.currentTime, paused: rw.clock.paused };
  },
  chat: () => [...document.querySelectorAll("#chat .chat-line:not(.system)")].map((line) => line.dataset.id),
  members: () => rw.room.members.map((m) => [m.member_id, m.name, m.online]),
};

start();
