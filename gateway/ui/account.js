// The signed-in account, shared by the lobby and the room page (DESIGN §4a). The session (an
// access token, a refresh token, when the access token expires) lives in localStorage, so every
// tab of this browser shares it; tokens are refreshed before they expire, by one tab at a time
// (Web Locks), and a tab that finds the session gone says so. Nothing here puts user text in
// innerHTML.
"use strict";

const Account = (() => {
  const KEY = "chanshare:session";
  const EARLY_MS = 60_000; // refresh this long before the access token expires
  const listeners = new Set();
  let timer = null;

  function read() {
    try {
      const s = JSON.parse(localStorage.getItem(KEY) || "null");
      return s && s.access_token && s.refresh_token ? s : null;
    } catch { return null; }
  }
  function write(session) {
    if (session) localStorage.setItem(KEY, JSON.stringify(session));
    else localStorage.removeItem(KEY);
    changed();
  }
  function fromReply(reply) {
    return {
      access_token: reply.access_token,
      refresh_token: reply.refresh_token,
      expires_at_ms: Date.now() + reply.expires_in * 1000,
      account_id: reply.account_id,
      username: reply.username,
    };
  }
  function changed() {
    schedule();
    for (const listener of listeners) listener(read());
  }
  function schedule() {
    clearTimeout(timer);
    const s = read();
    if (!s) return;
    timer = setTimeout(() => token().catch(() => {}), Math.max(1000, s.expires_at_ms - EARLY_MS - Date.now()));
  }

  async function post(path, body, access) {
    const headers = { "content-type": "application/json" };
    if (access) headers.authorization = `Bearer ${access}`;
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    const reply = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, reply };
  }
  const message = (r, fallback) => {
    const text = (r.reply.error && r.reply.error.message) || `${fallback} (${r.status})`;
    return text.charAt(0).toUpperCase() + text.slice(1);
  };

  // Replaces the session whose access token is `used` (about to expire, or refused): one
  // refresh at a time in this tab (callers share it), and across tabs under a Web Lock, inside
  // which a session another tab refreshed meanwhile is taken as it is. Presenting a refresh
  // token twice would be taken for a stolen one, and revoke the session.
  let inflight = null;
  function refresh(used) {
    const run = async () => {
      const current = read();
      if (!current) return null;
      if (current.access_token !== used) return current;
      const r = await post("/api/sessions/refresh", { refresh_token: current.refresh_token });
      if (r.ok) {
        // Signed out while the answer was on its way: stay signed out.
        if (read()?.refresh_token !== current.refresh_token) return read();
        write(fromReply(r.reply));
        return read();
      }
      if (r.status === 401) { revoked(); return null; }
      throw new Error(message(r, "Could not refresh the session"));
    };
    inflight ??= (navigator.locks ? navigator.locks.request("chanshare-refresh", run) : run())
      .finally(() => { inflight = null; });
    return inflight;
  }

  // A new access token after `refused` was refused (4401, a rotated key): refreshed once.
  async function renew(refused) {
    const fresh = await refresh(refused);
    return fresh ? fresh.access_token : null;
  }

  // A valid access token (refreshed first when it is about to expire), or null when signed out.
  async function token() {
    const s = read();
    if (!s) return null;
    if (s.expires_at_ms - Date.now() > EARLY_MS) return s.access_token;
    return renew(s.access_token);
  }

  // The server ended the session (signed out elsewhere, or a spent refresh token came back).
  function revoked() {
    write(null);
    sessionStorage.setItem("chanshare:revoked", "1");
    for (const listener of listeners) listener(null, "revoked");
  }

  async function signUp(username, password) {
    const r = await post("/api/accounts", { username, password });
    if (!r.ok) throw new Error(message(r, "Could not sign up"));
    return signIn(username, password);
  }
  async function signIn(username, password) {
    const r = await post("/api/sessions", { username, password });
    if (!r.ok) throw new Error(message(r, "Could not sign in"));
    sessionStorage.removeItem("chanshare:revoked");
    write(fromReply(r.reply));
    return read();
  }
  async function signOut() {
    const access = await token().catch(() => null);
    write(null);
    if (access) await fetch("/api/sessions", { method: "DELETE", headers: { authorization: `Bearer ${access}` } }).catch(() => {});
  }
  // GET with the access token: the JSON, or null when signed out. A token refused as invalid
  // (a replaced signing key) is renewed once.
  async function get(path, retried = false) {
    const access = await token();
    if (!access) return null;
    const response = await fetch(path, { headers: { authorization: `Bearer ${access}` } });
    if (response.status === 401) {
      const reply = await response.json().catch(() => ({}));
      const code = reply.error && reply.error.code;
      if (code === "session_revoked") revoked();
      else if (!retried && (await renew(access))) return get(path, true);
      return null;
    }
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  // Another tab signed in or out.
  window.addEventListener("storage", (event) => { if (event.key === KEY) changed(); });
  schedule();

  // The header's account box: "Sign in" / "Sign up", or the username and "Sign out"; a dialog
  // for the form.
  function mount(box) {
    const dialog = document.createElement("dialog");
    dialog.id = "account-dialog";
    dialog.setAttribute("aria-labelledby", "account-title");
    const form = document.createElement("form");
    form.method = "dialog";
    form.className = "account-form";
    const title = Object.assign(document.createElement("h2"), { id: "account-title" });
    const field = (label, input) => {
      const l = document.createElement("label");
      l.append(label, input);
      return l;
    };
    const username = Object.assign(document.createElement("input"), {
      name: "username", required: true, minLength: 3, maxLength: 32, autocomplete: "username",
      pattern: "[A-Za-z0-9_\\-]{3,32}", title: "3 to 32 letters, digits, _ or -",
    });
    username.setAttribute("autocapitalize", "none");
    const password = Object.assign(document.createElement("input"), {
      name: "password", type: "password", required: true, minLength: 10, maxLength: 256,
    });
    const hint = Object.assign(document.createElement("p"), { className: "muted hint" });
    const error = Object.assign(document.createElement("p"), { className: "error", role: "alert" });
    const submit = Object.assign(document.createElement("button"), { type: "submit", value: "go" });
    const cancel = Object.assign(document.createElement("button"), { type: "button", textContent: "Cancel" });
    cancel.onclick = () => dialog.close();
    const buttons = Object.assign(document.createElement("div"), { className: "account-buttons" });
    buttons.append(submit, cancel);
    const other = Object.assign(document.createElement("button"), { type: "button", className: "link", id: "account-switch" });
    other.onclick = () => open(mode === "up" ? "in" : "up");
    form.append(title, field("Username", username), field("Password", password), hint, error, buttons, other);
    dialog.append(form);
    document.body.append(dialog);
    let mode = "in";
    const open = (which) => {
      mode = which;
      title.textContent = which === "up" ? "Create an account" : "Sign in";
      submit.textContent = which === "up" ? "Sign up" : "Sign in";
      password.autocomplete = which === "up" ? "new-password" : "current-password";
      hint.textContent = which === "up" ? "Your name is yours on every device; nobody else can take it. Passwords: 10 characters or more, not a common one." : "";
      other.textContent = which === "up" ? "Have an account? Sign in" : "No account yet? Sign up";
      error.textContent = "";
      if (!dialog.open) dialog.showModal();
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.textContent = "";
      try {
        if (mode === "up") await signUp(username.value.trim(), password.value);
        else await signIn(username.value.trim(), password.value);
        password.value = "";
        dialog.close();
      } catch (e) {
        error.textContent = e.message;
      } finally {
        submit.disabled = false;
      }
    });

    const render = () => {
      const s = read();
      const items = [];
      if (s) {
        const me = Object.assign(document.createElement("span"), { className: "account-name", textContent: `@${s.username}` });
        me.title = "Signed in";
        const out = Object.assign(document.createElement("button"), { type: "button", id: "sign-out", textContent: "Sign out" });
        out.onclick = () => signOut();
        items.push(me, out);
      } else {
        const inButton = Object.assign(document.createElement("button"), { type: "button", id: "sign-in", textContent: "Sign in" });
        inButton.onclick = () => open("in");
        const upButton = Object.assign(document.createElement("button"), { type: "button", id: "sign-up", textContent: "Sign up" });
        upButton.onclick = () => open("up");
        items.push(inButton, upButton);
      }
      box.replaceChildren(...items);
    };
    listeners.add(render);
    render();
    return { open };
  }

  return {
    current: read,
    token,
    renew,
    signUp,
    signIn,
    signOut,
    get,
    mount,
    revokedBefore: () => sessionStorage.getItem("chanshare:revoked") === "1",
    clearRevoked: () => sessionStorage.removeItem("chanshare:revoked"),
    onChange: (listener) => listeners.add(listener),
    // Test hook: make the access token look expired, so the next use refreshes it.
    expire: () => { const s = read(); if (s) { s.expires_at_ms = Date.now(); localStorage.setItem(KEY, JSON.stringify(s)); } },
  };
})();
window.chanshareAccount = Account;
