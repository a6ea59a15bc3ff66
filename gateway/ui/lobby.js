// The lobby: create a room, list the public ones (a page at a time, searchable). All user text
// goes through textContent.
"use strict";

const form = document.getElementById("create");
const roomsBox = document.getElementById("rooms");
const statusLine = document.getElementById("rooms-status");
const moreButton = document.getElementById("more");
const searchForm = document.getElementById("search");
const searchInput = document.getElementById("q");
// Rooms per "Show more"; a refresh reloads as many as are shown, up to 200 per request.
const PAGE = 50;
const MAX_LIMIT = 200;
// Requests one load may make: a search that matches little is answered in short pages.
const MAX_REQUESTS = 10;
let tab = "chan";
form.name.value = localStorage.getItem("chanshare:name") || "";

const tabs = [...form.querySelectorAll("[data-tab]")];
function selectTab(button) {
  tab = button.dataset.tab;
  for (const b of tabs) {
    const on = b === button;
    b.classList.toggle("active", on);
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
  }
  for (const pane of form.querySelectorAll("[data-pane]")) pane.hidden = pane.dataset.pane !== tab;
}
for (const button of tabs) {
  button.addEventListener("click", () => selectTab(button));
  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  button.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(tabs.indexOf(button) + step + tabs.length) % tabs.length];
    selectTab(next);
    next.focus();
    event.preventDefault();
  });
}

// https://boards.4chan.org/wsg/thread/5812345#p1 → {board: "wsg", thread: 5812345}
function parseThread(text) {
  const m = String(text).match(/\/([a-z0-9]{1,10})\/thread\/(\d+)/);
  return m ? { board: m[1], thread: Number(m[2]) } : null;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("create-error");
  error.textContent = "";
  let source;
  if (tab === "chan") {
    const parsed = parseThread(form.thread_url.value) ||
      (form.board.value && form.thread.value ? { board: form.board.value.trim(), thread: Number(form.thread.value) } : null);
    if (!parsed) { error.textContent = "Paste a thread URL or give a board and a thread number."; return; }
    source = { chan: parsed };
  } else {
    const urls = form.urls.value.split(/\s+/).filter(Boolean);
    if (!urls.length) { error.textContent = "Give at least one media URL."; return; }
    source = { urls };
  }
  // Signed in, the room is the account's and the host is called by the username.
  const access = await Account.token().catch(() => null);
  const name = access ? "" : form.name.value.trim();
  if (!access) localStorage.setItem("chanshare:name", name);
  const body = { source, name, control: form.control.value, listed: form.listed.checked };
  if (form.title.value.trim()) body.title = form.title.value.trim();
  const headers = { "content-type": "application/json" };
  if (access) headers.authorization = `Bearer ${access}`;
  const response = await fetch("/api/rooms", { method: "POST", headers, body: JSON.stringify(body) });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) { error.textContent = (reply.error && reply.error.message) || `Could not create the room (${response.status}).`; return; }
  // Signed in, the host is the account's member: it joins with the account, and its token must
  // not outlive the session in this browser.
  if (!access) localStorage.setItem(`chanshare:token:${reply.room_id}`, reply.host_token);
  location.href = reply.url;
});

// ---------------------------------------------------------------- the account
const accountBox = Account.mount(document.getElementById("account"));
const mine = document.getElementById("mine");
const myRooms = document.getElementById("my-rooms");
const mineStatus = document.getElementById("mine-status");
const revokedNotice = document.getElementById("revoked");
document.getElementById("revoked-sign-in").onclick = () => accountBox.open("in");

function showAccount(session, why) {
  const nameField = document.getElementById("name-field");
  nameField.hidden = Boolean(session);
  form.name.required = !session;
  const as = document.getElementById("signed-in-as");
  as.hidden = !session;
  as.textContent = session ? `You host as @${session.username}; the room stays yours on every device.` : "";
  if (session) { Account.clearRevoked(); revokedNotice.hidden = true; } else if (why === "revoked" || Account.revokedBefore()) revokedNotice.hidden = false;
  mine.hidden = !session;
  if (session) loadMine(); else myRooms.replaceChildren();
}

async function loadMine() {
  try {
    const reply = await Account.get("/api/me/rooms");
    if (!reply) return;
    const rooms = reply.rooms;
    myRooms.replaceChildren(...rooms.map((room) => {
      const element = card({ members: 0, online: 0, title: "(closed room)", ...room });
      if (room.closed) element.classList.add("closed");
      return element;
    }));
    mineStatus.textContent = rooms.length ? "" : "Rooms you start or join show up here, on every device.";
  } catch {
    // Keep what is shown; the next refresh may work.
  }
}
Account.onChange(showAccount);
showAccount(Account.current());

function card(room) {
  const a = document.createElement("a");
  a.className = "room-card panel";
  a.href = `/r/${encodeURIComponent(room.room_id)}`;
  a.dataset.room = room.room_id;
  if (room.thumb_url) {
    const img = document.createElement("img");
    img.src = room.thumb_url;
    img.alt = "";
    img.loading = "lazy";
    a.append(img);
  }
  const title = document.createElement("strong");
  title.textContent = room.title;
  const meta = document.createElement("span");
  meta.className = "muted";
  meta.textContent = `${room.online} online · ${room.members} ${room.members === 1 ? "member" : "members"}`;
  const now = document.createElement("span");
  now.className = "muted";
  now.textContent = room.closed ? "closed" : room.now_playing ? `Playing: ${room.now_playing}` : "nothing playing";
  a.append(title, meta, now);
  return a;
}

// What the list shows: the search, how many rooms are wanted, and where the next page starts.
const list = { query: "", wanted: PAGE, rooms: [], cursor: null, generation: 0, busy: false };
// Cards by room, reused while the room's entry is unchanged (no image reloads, no flicker).
const cards = new Map();

async function fetchPage(query, cursor, limit) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (query) params.set("q", query);
  if (cursor) params.set("cursor", cursor);
  const response = await fetch(`/api/rooms?${params}`);
  if (!response.ok) throw new Error(`lobby answered ${response.status}`);
  return response.json();
}

// Loads `count` more rooms after `cursor` (all from the start when `cursor` is null and `from`
// is empty), for the search `query`.
async function collect(query, from, cursor, count) {
  const rooms = [...from];
  const ids = new Set(rooms.map((r) => r.room_id));
  let next = cursor;
  for (let requests = 0; requests < MAX_REQUESTS; requests += 1) {
    const missing = count - (rooms.length - from.length);
    if (missing <= 0) break;
    const page = await fetchPage(query, next, Math.min(MAX_LIMIT, missing));
    for (const room of page.rooms) if (!ids.has(room.room_id)) { ids.add(room.room_id); rooms.push(room); }
    next = page.next_cursor || null;
    if (!next) break;
  }
  return { rooms, cursor: next };
}

function render() {
  const seen = new Set();
  const elements = list.rooms.map((room) => {
    const json = JSON.stringify(room);
    seen.add(room.room_id);
    const known = cards.get(room.room_id);
    if (known && known.json === json) return known.element;
    const element = card(room);
    cards.set(room.room_id, { json, element });
    return element;
  });
  for (const id of cards.keys()) if (!seen.has(id)) cards.delete(id);
  roomsBox.replaceChildren(...elements);
  const n = list.rooms.length;
  if (!n) statusLine.textContent = list.query ? `No public room matches “${list.query}”.` : "No public rooms yet: start one.";
  else statusLine.textContent = `${n} ${n === 1 ? "room" : "rooms"}${list.query ? ` matching “${list.query}”` : ""}${list.cursor ? ", more below" : ""}`;
  moreButton.hidden = !list.cursor;
}

// Runs `load` unless a newer load started meanwhile (a search typed on, a click).
async function run(load) {
  const generation = ++list.generation;
  list.busy = true;
  try {
    const result = await load();
    if (generation !== list.generation) return;
    Object.assign(list, result);
    render();
  } catch {
    // Keep the last list; the next refresh may work.
  } finally {
    if (generation === list.generation) list.busy = false;
  }
}

// From the start: a new search, or the periodic refresh of what is shown.
function reload() {
  const { query, wanted } = list;
  return run(async () => ({ ...(await collect(query, [], null, wanted)), query, wanted }));
}

let showingMore = false;
moreButton.addEventListener("click", async () => {
  const { query, rooms, cursor } = list;
  if (!cursor || showingMore) return;
  showingMore = true;
  moreButton.setAttribute("aria-busy", "true");
  const before = rooms.length;
  await run(async () => {
    const result = await collect(query, rooms, cursor, PAGE);
    return { ...result, wanted: result.rooms.length };
  });
  showingMore = false;
  moreButton.removeAttribute("aria-busy");
  // The last page hides the button: keep the keyboard where the new rooms start.
  if (moreButton.hidden && document.activeElement === document.body) roomsBox.children[before]?.focus();
});

let typing;
searchInput.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    list.query = searchInput.value.trim().slice(0, 100);
    list.wanted = PAGE;
    reload();
  }, 250);
});
searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  list.query = searchInput.value.trim().slice(0, 100);
  list.wanted = PAGE;
  reload();
});

function ago(ms) {
  const minutes = Math.max(0, Math.round((Date.now() - ms) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`;
}

// Public rooms that ended: each can be watched again as it happened.
async function loadClosed() {
  try {
    const response = await fetch("/api/rooms?closed=true&limit=12");
    if (!response.ok) return;
    const { rooms } = await response.json();
    const box = document.getElementById("closed-rooms");
    box.replaceChildren(...rooms.map((room) => {
      const element = card({ ...room, closed: true });
      element.href = `/r/${encodeURIComponent(room.room_id)}/rewatch`;
      element.classList.add("closed");
      const [meta, playing] = element.querySelectorAll("span.muted");
      meta.textContent = room.members ? `${room.members} ${room.members === 1 ? "member" : "members"} · ended ${ago(room.updated_ms)}` : `ended ${ago(room.updated_ms)}`;
      playing.textContent = "Rewatch the party ▸";
      return element;
    }));
    document.getElementById("closed").hidden = !rooms.length;
  } catch {
    // Keep what is shown.
  }
}

reload();
loadClosed();
setInterval(() => {
  // Not while hidden, loading, or while a card has the focus (a re-render would drop it).
  if (document.hidden || list.busy || roomsBox.contains(document.activeElement)) return;
  reload();
  if (Account.current() && !myRooms.contains(document.activeElement)) loadMine();
}, 5000);
setInterval(() => {
  if (!document.hidden && !document.getElementById("closed-rooms").contains(document.activeElement)) loadClosed();
}, 30000);
// The browser tests read the list state.
window.chanshareLobby = { list, reload, loadMine };
