// Direct messages (DESIGN §4b), on the lobby and in rooms while signed in: a "Messages" button
// with the unread count, a panel with the conversations and one thread at a time, and the
// account socket that carries them. Marks on one's own messages: ✓ sent (stored), ✓✓ delivered
// (on one of the receiver's screens), ✓✓ read. What the page has seen, per conversation, is kept
// in localStorage (the last seq) and sent on connect, so a reconnect gets exactly what it
// missed. Nothing here puts user text in innerHTML.
"use strict";

const Messages = (() => {
  const Account = window.chanshareAccount;
  const state = {
    ws: null, backoff: 1000, timer: null, user: null,
    conversations: [], // [{with, last, unread}], newest first
    threads: new Map(), // partner → Map(`${from}:${id}` → message): ids are the senders', so a
    // partner reusing one of yours makes another message, never replaces yours
    pending: new Map(), // id → frame not yet acknowledged (sent again after a reconnect)
    open: null, // the partner whose thread is shown
    readUpTo: {}, // partner → the seq last reported read
  };
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) if (child != null) node.append(child);
    return node;
  };
  const sinceKey = () => `chanshare:dm:since:${state.user}`;
  // What this page has seen, per partner (the last seq): a reconnect syncs from here. A new page
  // starts from what any page of this browser saw (older messages come from the history); pages
  // then keep their own, since one page may have seen more than another.
  const stored = () => { try { return JSON.parse(localStorage.getItem(sinceKey()) || "{}"); } catch { return {}; } };
  const since = () => { if (!state.seen) state.seen = stored(); return { ...state.seen }; };
  const saw = (partner, seq) => {
    since();
    if ((state.seen[partner] || 0) < seq) state.seen[partner] = seq;
    const all = stored();
    if ((all[partner] || 0) >= seq) return;
    all[partner] = seq;
    localStorage.setItem(sinceKey(), JSON.stringify(all));
  };
  const time = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
  const MARKS = { sending: ["…", "sending"], sent: ["✓", "sent"], delivered: ["✓✓", "delivered"], read: ["✓✓ read", "read"], failed: ["! not sent", "not sent"] };

  // --- The panel -----------------------------------------------------------------------------
  // "Messages" on a wide screen, an envelope on a phone (the room's title needs the width).
  const button = el("button", { type: "button", id: "messages-button", hidden: true, title: "Direct messages" },
    el("span", { className: "label", textContent: "Messages" }), el("span", { className: "icon", textContent: "✉" }));
  button.querySelector(".icon").setAttribute("aria-hidden", "true");
  const badge = el("span", { className: "badge unread", hidden: true });
  button.append(badge);
  const dialog = el("dialog", { id: "messages", className: "messages" });
  dialog.setAttribute("aria-labelledby", "messages-title");
  const heading = el("h2", { id: "messages-title", textContent: "Messages" });
  const back = el("button", { type: "button", className: "link", textContent: "← All conversations", hidden: true });
  const close = el("button", { type: "button", className: "close", textContent: "Close" });
  const list = el("ul", { className: "conversations" });
  const empty = el("p", { className: "muted", textContent: "No conversations yet. Message someone from a room's member list, or start one below." });
  const start = el("form", { className: "start" });
  const to = el("input", { name: "to", placeholder: "username", required: true, pattern: "[A-Za-z0-9_\\-]{3,32}", ariaLabel: "Message someone: their username" });
  to.setAttribute("autocapitalize", "none");
  start.append(to, el("button", { type: "submit", textContent: "Message" }));
  const thread = el("ol", { className: "dm-thread", ariaLive: "polite" });
  const compose = el("form", { className: "compose", hidden: true });
  const text = el("textarea", { name: "text", rows: 2, maxLength: 2000, required: true, ariaLabel: "Your message" });
  const error = el("p", { className: "error", role: "alert" });
  compose.append(text, el("button", { type: "submit", textContent: "Send" }));
  dialog.append(el("div", { className: "messages-head" }, back, heading, close), list, empty, start, thread, error, compose);
  close.onclick = () => dialog.close();
  back.onclick = () => showList();
  button.onclick = () => { showList(); dialog.showModal(); };
  dialog.addEventListener("close", () => { state.open = null; });
  start.addEventListener("submit", (event) => { event.preventDefault(); openThread(to.value.trim().toLowerCase()); to.value = ""; });
  compose.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  text.addEventListener("keydown", (event) => { if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send(); } });

  function mountButton() {
    const anchor = document.getElementById("account") || document.getElementById("me-account");
    if (anchor && !button.isConnected) anchor.before(button);
    if (!dialog.isConnected) document.body.append(dialog);
  }

  function unreadTotal() { return state.conversations.reduce((n, c) => n + (c.with === state.open ? 0 : c.unread), 0); }
  function renderBadge() {
    const n = unreadTotal();
    badge.textContent = String(n);
    badge.hidden = n === 0;
    button.setAttribute("aria-label", n ? `Messages, ${n} unread` : "Messages");
  }

  function showList() {
    state.open = null;
    heading.textContent = "Messages";
    back.hidden = true; compose.hidden = true; thread.hidden = true;
    list.hidden = false; start.hidden = false;
    error.textContent = "";
    list.replaceChildren(...state.conversations.map((c) => {
      const mine = c.last.from === state.user;
      const row = el("button", { type: "button", className: "conversation" },
        el("b", { textContent: `@${c.with}` }),
        c.unread ? el("span", { className: "badge unread", textContent: String(c.unread), ariaLabel: `${c.unread} unread` }) : null,
        el("span", { className: "preview muted", textContent: `${mine ? "You: " : ""}${c.last.text}` }),
        el("time", { className: "muted", textContent: time.format(c.last.at_ms) }));
      row.dataset.with = c.with;
      row.onclick = () => openThread(c.with);
      return el("li", {}, row);
    }));
    empty.hidden = state.conversations.length > 0;
    renderBadge();
  }

  async function openThread(partner) {
    if (!/^[a-z0-9_-]{3,32}$/.test(partner) || partner === state.user) { error.textContent = "That is not someone you can message."; return; }
    state.open = partner;
    heading.textContent = `@${partner}`;
    back.hidden = false; compose.hidden = false; thread.hidden = false;
    list.hidden = true; empty.hidden = true; start.hidden = true;
    error.textContent = "";
    if (!dialog.open) dialog.showModal();
    const me = state.user;
    const history = await Account.get(`/api/me/conversations/${encodeURIComponent(partner)}?limit=100`).catch(() => null);
    const messages = messagesOf(partner);
    if (state.user !== me || state.open !== partner) return; // switched meanwhile
    for (const m of history || []) if (!messages.has(key(m))) messages.set(key(m), m);
    renderThread();
    text.focus();
  }

  const key = (m) => `${m.from}:${m.id}`;
  const messagesOf = (partner) => {
    if (!state.threads.has(partner)) state.threads.set(partner, new Map());
    return state.threads.get(partner);
  };

  function renderThread() {
    const partner = state.open;
    if (!partner) return;
    const messages = [...messagesOf(partner).values()].sort((a, b) => (a.seq || Infinity) - (b.seq || Infinity));
    thread.replaceChildren(...messages.map((m) => {
      const mine = m.from === state.user;
      const [mark, label] = MARKS[m.status] || MARKS.sent;
      const item = el("li", { className: mine ? "mine" : "theirs" },
        el("span", { className: "text", textContent: m.text }),
        el("span", { className: "meta muted" },
          el("time", { textContent: time.format(m.at_ms || Date.now()) }),
          mine ? el("span", { className: `mark ${m.status}`, textContent: ` ${mark}`, title: label, ariaLabel: label }) : null));
      item.dataset.id = m.id;
      item.dataset.status = m.status || "";
      return item;
    }));
    thread.scrollTop = thread.scrollHeight;
    markRead();
  }

  // The open thread is shown: its messages from the partner are read.
  function markRead() {
    const partner = state.open;
    if (!partner || !dialog.open || document.visibilityState !== "visible") return;
    const theirs = [...messagesOf(partner).values()].filter((m) => m.from === partner && m.seq);
    const upTo = Math.max(0, ...theirs.map((m) => m.seq));
    const c = state.conversations.find((x) => x.with === partner);
    if (upTo && c && c.unread) { c.unread = 0; renderBadge(); }
    if (upTo && upTo > (state.readUpTo[partner] || 0) && frame({ type: "dm_read", with: partner, up_to: upTo })) {
      state.readUpTo[partner] = upTo;
    }
  }
  document.addEventListener("visibilitychange", markRead);

  function send() {
    const body = text.value;
    if (!body.trim() || !state.open) return;
    const id = crypto.randomUUID();
    const message = { id, from: state.user, to: state.open, text: body, status: "sending", at_ms: Date.now() };
    messagesOf(state.open).set(key(message), message);
    const out = { type: "dm", id, to: state.open, text: body };
    state.pending.set(id, { frame: out, at_ms: Date.now() });
    frame(out);
    text.value = "";
    renderThread();
  }

  // --- The account socket ---------------------------------------------------------------------
  // Sends a frame if the socket is open: whether it was.
  function frame(data) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(data));
    return true;
  }

  function retry() {
    const wait = state.backoff * (0.5 + Math.random());
    state.backoff = Math.min(30_000, state.backoff * 2);
    state.timer = setTimeout(connect, wait);
  }

  async function connect() {
    clearTimeout(state.timer);
    const session = Account.current();
    if (!session) return;
    const me = session.username;
    const access = await Account.token().catch(() => null);
    if (state.user !== me || state.ws) return; // signed out or switched meanwhile, or connected
    if (!access) { if (Account.current()) retry(); return; }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/me/ws?access_token=${encodeURIComponent(access)}`);
    state.ws = ws;
    ws.onopen = () => {
      state.backoff = 1000;
      ws.send(JSON.stringify({ type: "dm_sync", since: since() }));
      state.readUpTo = {}; // a read reported on the last socket may not have arrived: again
      markRead();
      // Sent again with the same ids: stored once, within the server's 10-minute window; older
      // ones are shown as not sent (the person sends them again, or not).
      for (const [id, out] of state.pending) {
        if (Date.now() - out.at_ms < 9 * 60_000) { ws.send(JSON.stringify(out.frame)); continue; }
        state.pending.delete(id);
        const m = messagesOf(out.frame.to).get(`${state.user}:${id}`);
        if (m) { m.status = "failed"; refresh(out.frame.to); }
      }
      inbox();
    };
    ws.onmessage = (event) => {
      if (state.ws !== ws) return; // an old account's socket
      try { onFrame(JSON.parse(event.data)); } catch { /* a frame we cannot read */ }
    };
    ws.onclose = async (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (!Account.current()) return;
      // 4401: the access token expired or was refused; a fresh one, then at once.
      if (event.code === 4401) {
        const fresh = await Account.renew(access).catch(() => null);
        if (fresh) { state.timer = setTimeout(connect, 0); return; }
        if (!Account.current()) return;
      }
      retry();
    };
  }

  function onFrame(f) {
    if (f.type === "dm") {
      const partner = f.from === state.user ? f.to : f.from;
      const messages = messagesOf(partner);
      const known = messages.get(key(f));
      messages.set(key(f), { ...known, ...f, status: known && known.status !== "sending" ? known.status : f.from === state.user ? "sent" : undefined });
      saw(partner, f.seq);
      let c = state.conversations.find((x) => x.with === partner);
      if (!c) { c = { with: partner, unread: 0 }; state.conversations.unshift(c); }
      // Counted once: the inbox the server sent already counts what it shows as the last message
      // (a sync after a reconnect sends some of those again).
      const newer = !c.last || (c.last.seq || 0) < f.seq;
      if (newer) c.last = f;
      state.conversations = [c, ...state.conversations.filter((x) => x !== c)];
      if (newer && f.from !== state.user && state.open !== partner) c.unread += 1;
      refresh(partner);
    } else if (f.type === "dm_status") {
      for (const [partner, messages] of state.threads) {
        const m = messages.get(`${state.user}:${f.id}`); // statuses are of one's own messages
        if (m && rank(f.status) > rank(m.status)) { m.status = f.status; refresh(partner); }
      }
    } else if (f.type === "dm_read") {
      // Read here or on another device: nothing up to there is unread any more.
      const c = state.conversations.find((x) => x.with === f.with);
      if (c && c.unread && (!c.last || (c.last.seq || 0) <= f.up_to)) { c.unread = 0; refresh(f.with); }
      if (f.up_to > (state.readUpTo[f.with] || 0)) state.readUpTo[f.with] = f.up_to;
    } else if (f.type === "ack" && state.pending.has(f.id)) {
      state.pending.delete(f.id);
    } else if (f.type === "reject" && state.pending.has(f.id)) {
      const out = state.pending.get(f.id).frame;
      state.pending.delete(f.id);
      const m = messagesOf(out.to).get(`${state.user}:${f.id}`);
      if (m) m.status = "failed";
      if (state.open === out.to) error.textContent = f.message;
      refresh(out.to);
    }
  }
  const rank = (status) => ["sending", "sent", "delivered", "read"].indexOf(status);

  function refresh(partner) {
    if (state.open === partner) renderThread();
    else if (dialog.open && !state.open) showList();
    renderBadge();
  }

  async function inbox() {
    const me = state.user;
    const conversations = await Account.get("/api/me/conversations").catch(() => null);
    if (!conversations || state.user !== me) return;
    state.conversations = conversations.map((c) => ({ ...c, unread: c.with === state.open ? 0 : c.unread }));
    if (dialog.open && !state.open) showList();
    renderBadge();
  }

  function signedIn(session) {
    if (session && session.username === state.user) return;
    if (state.ws) { const ws = state.ws; state.ws = null; ws.close(1000, "signed out"); }
    if (!session && state.user) localStorage.removeItem(sinceKey());
    state.user = session ? session.username : null;
    thread.replaceChildren(); text.value = "";
    state.conversations = []; state.threads = new Map(); state.pending = new Map(); state.open = null; state.readUpTo = {};
    state.seen = null;
    button.hidden = !session;
    if (dialog.open) dialog.close();
    renderBadge();
    if (session) connect();
  }

  mountButton();
  Account.onChange((session) => signedIn(session));
  signedIn(Account.current());

  return {
    // Opens the conversation with `username` (the room's "Message" action).
    open: (username) => { if (Account.current()) openThread(username.toLowerCase()); },
    me: () => state.user,
    // Test hooks: drop the socket (it reconnects and syncs), and what the page has seen.
    drop: () => state.ws && state.ws.close(),
    since,
  };
})();
window.chanshareMessages = Messages;
