// The lobby: create a room, list the public ones. All user text goes through textContent.
"use strict";

const form = document.getElementById("create");
const roomsBox = document.getElementById("rooms");
let tab = "chan";
form.name.value = localStorage.getItem("chanshare:name") || "";

for (const button of form.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => {
    tab = button.dataset.tab;
    for (const b of form.querySelectorAll("[data-tab]")) b.classList.toggle("active", b === button);
    for (const pane of form.querySelectorAll("[data-pane]")) pane.hidden = pane.dataset.pane !== tab;
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
  const name = form.name.value.trim();
  localStorage.setItem("chanshare:name", name);
  const body = { source, name, control: form.control.value, listed: form.listed.checked };
  if (form.title.value.trim()) body.title = form.title.value.trim();
  const response = await fetch("/api/rooms", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) { error.textContent = (reply.error && reply.error.message) || `Could not create the room (${response.status}).`; return; }
  localStorage.setItem(`chanshare:token:${reply.room_id}`, reply.host_token);
  location.href = reply.url;
});

function card(room) {
  const a = document.createElement("a");
  a.className = "room-card panel";
  a.href = `/r/${encodeURIComponent(room.room_id)}`;
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
  meta.textContent = `${room.online} online · ${room.members} members`;
  const now = document.createElement("span");
  now.className = "muted";
  now.textContent = room.now_playing ? `Playing: ${room.now_playing}` : "nothing playing";
  a.append(title, meta, now);
  return a;
}

async function refresh() {
  try {
    const response = await fetch("/api/rooms");
    const { rooms } = await response.json();
    roomsBox.replaceChildren(...(rooms.length ? rooms.map(card) : [Object.assign(document.createElement("p"), { className: "muted", textContent: "No public rooms yet: start one." })]));
  } catch {
    // Keep the last list; the next refresh may work.
  }
}
refresh();
setInterval(refresh, 5000);
