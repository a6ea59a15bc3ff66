// Browser tests of accounts (issue 20): sign up in the lobby header, create a room as the
// account, sign in from a second browser and find the room under "Your rooms"; the same member
// on both; the account mark a guest cannot wear; a silent refresh; the page a revoked session
// gets. Screenshots at 1280×800 and 390×844 go to SCREENSHOTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, DESKTOP, PHONE, SHOTS, axe, launch, media, open } from "./lib.mjs";

// Long, as usernames are: on a phone the member row has to cut it short.
const USER = `longer_name_for_phones_${Date.now().toString(36).slice(-6)}`;
const PASSWORD = "watching together since 2026";
const TITLE = "Accounts party: a long title that wraps on a phone because people write long ones";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function lobbyPage(viewport) {
  const context = await browser.newContext({ viewport, bypassCSP: true });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("[accounts] page error:", error.message));
  await page.goto(BASE);
  return page;
}

async function submitAccount(page, which, username, password) {
  await page.click(which === "up" ? "#sign-up" : "#sign-in");
  await page.fill("#account-dialog input[name=username]", username);
  await page.fill("#account-dialog input[name=password]", password);
  await page.click("#account-dialog button[type=submit]");
}

const members = (page) => page.$$eval("#members li", (rows) => rows.map((r) => ({
  name: r.querySelector(".name").textContent + (r.querySelector(".you")?.textContent || ""),
  mark: r.querySelector(".account-mark")?.title || null,
  creator: Boolean(r.querySelector(".badge.owner")),
})));

test("sign up, create a room, sign in from a second browser and find it under 'Your rooms'", async () => {
  // First browser: sign up from the lobby header.
  const first = await lobbyPage(DESKTOP);
  await submitAccount(first, "up", USER.toUpperCase(), PASSWORD);
  await first.waitForSelector(`.account-name >> text=@${USER}`);
  assert.equal(await first.isVisible("#name-field"), false, "signed in, the room needs no nickname");
  assert.equal(await first.isVisible("#mine"), true);
  await first.screenshot({ path: `${SHOTS}/accounts-lobby-signed-in-desktop.png` });

  // Create a room from URLs, as the account.
  await first.click("#tab-urls");
  await first.fill("#create textarea[name=urls]", `${media("1743100800333444.webm")}\n${media("1743100700111222.jpg")}`);
  await first.fill("#create input[name=title]", TITLE);
  // Unlisted: "Your rooms" holds it all the same, and the lobby test that runs next sees no
  // room of this one reorder as its members leave (its first page was compared mid-move).
  await first.uncheck("#create input[name=listed]");
  await first.click("#create button[type=submit]");
  await first.waitForURL(/\/r\//);
  await first.waitForFunction(() => window.chanshare && window.chanshare.session.room);
  const roomId = await first.evaluate(() => window.chanshare.session.room.room_id);
  assert.equal(await first.isVisible("#name-dialog"), false, "no nickname prompt when signed in");
  await first.waitForFunction(() => document.querySelector("#members .account-mark"));
  assert.deepEqual(await members(first), [{ name: `${USER} (you)`, mark: `Signed in as @${USER}`, creator: true }]);
  const memberId = await first.evaluate(() => window.chanshare.session.memberId);
  // The account's member tokens stay out of storage: signing out must leave nothing that joins
  // as the account (the host token of a signed-in creation included).
  assert.deepEqual(await first.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("chanshare:token:"))), []);

  // A guest who calls itself by the username gets no mark.
  const guest = await open(browser, { room_id: roomId }, USER);
  await first.waitForFunction(() => document.querySelectorAll("#members li").length === 2);
  const seen = await members(first);
  assert.deepEqual(seen.find((m) => m.name === USER), { name: USER, mark: null, creator: false }, JSON.stringify(seen));
  // Nothing in the side column is pushed out of the window by the marks.
  const overflow = await first.evaluate(() => [...document.querySelectorAll(".side *")]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).map((e) => e.className || e.tagName));
  assert.deepEqual(overflow, [], "the side column fits the window");
  await first.screenshot({ path: `${SHOTS}/accounts-room-desktop.png` });

  // Second browser (a phone): sign in, and the room is under "Your rooms".
  const second = await lobbyPage(PHONE);
  await submitAccount(second, "in", USER, PASSWORD);
  await second.waitForSelector(`.account-name >> text=@${USER}`);
  await second.waitForFunction(async (id) => {
    await window.chanshareLobby.loadMine();
    return document.querySelector(`#my-rooms .room-card[data-room="${id}"]`);
  }, roomId, { polling: 500, timeout: 15_000 });
  const mine = await second.$$eval("#my-rooms .room-card strong", (titles) => titles.map((t) => t.textContent));
  assert.deepEqual(mine, [TITLE]);
  assert.equal(await second.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, "no sideways scroll");
  assert.deepEqual(await axe(second), [], "axe-core: nothing serious or critical");
  await second.screenshot({ path: `${SHOTS}/accounts-lobby-your-rooms-phone.png`, fullPage: true });

  // The same member from the phone: still one member with the mark.
  await second.click(`#my-rooms .room-card[data-room="${roomId}"]`);
  await second.waitForFunction(() => window.chanshare && window.chanshare.session.room && window.chanshare.session.memberId);
  assert.equal(await second.evaluate(() => window.chanshare.session.memberId), memberId, "one member on every device");
  assert.equal((await members(second)).filter((m) => m.mark).length, 1);
  // The name is cut short on a phone; "(you)" and the marks never are.
  const cut = await second.evaluate(() => {
    const row = document.querySelector("#members li .you").parentElement;
    const name = row.querySelector(".name");
    const right = row.getBoundingClientRect().right;
    return {
      nameCut: name.scrollWidth > name.clientWidth,
      tailsInside: [...row.querySelectorAll(".you, .badge")].every((e) => e.getBoundingClientRect().right <= right + 0.5 && e.scrollWidth <= e.clientWidth + 1),
    };
  });
  assert.deepEqual(cut, { nameCut: true, tailsInside: true });
  // The header keeps the room's title on a phone (a long username once pushed it out).
  assert.ok(await second.evaluate(() => document.getElementById("title").getBoundingClientRect().width > 100), "the title is shown");
  await second.screenshot({ path: `${SHOTS}/accounts-room-phone.png` });

  // A silent refresh: the access token is renewed before it expires, the room stays connected.
  const before = await second.evaluate(() => JSON.parse(localStorage.getItem("chanshare:session")));
  await second.evaluate(async () => { window.chanshareAccount.expire(); await window.chanshareAccount.token(); });
  const after = await second.evaluate(() => JSON.parse(localStorage.getItem("chanshare:session")));
  assert.notEqual(after.refresh_token, before.refresh_token);
  assert.ok(after.expires_at_ms > Date.now() + 60_000);
  await second.evaluate(() => window.chanshare.cut());
  await second.waitForFunction((id) => window.chanshare.session.live && window.chanshare.session.memberId === id, memberId);

  // Signing out elsewhere ends the first browser's session only if it is that session: sign the
  // first browser's own session out from the server's side (as another device would by reusing
  // its spent refresh token), and the lobby says so.
  const spent = before.refresh_token;
  const reused = await fetch(`${BASE}/api/sessions/refresh`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: spent }) });
  assert.equal(reused.status, 401, "a spent refresh token revokes its family");
  // The room page finds out at its next connect, and says so instead of retrying forever.
  await second.evaluate(() => window.chanshare.cut());
  await second.waitForSelector("#gone:not([hidden])");
  assert.equal(await second.textContent("#gone-title"), "You were signed out");
  await second.screenshot({ path: `${SHOTS}/accounts-room-revoked-phone.png` });
  await second.goto(BASE);
  await second.waitForSelector("#revoked:not([hidden])");
  assert.equal(await second.isVisible("#sign-in"), true);
  await second.screenshot({ path: `${SHOTS}/accounts-revoked-phone.png` });
  // The first browser is another session: still signed in.
  await first.goto(BASE);
  await first.waitForSelector(`.account-name >> text=@${USER}`);
  assert.equal(await first.isVisible("#revoked"), false);

  // Sign out: the header offers sign-in again and "Your rooms" goes.
  await first.click("#sign-out");
  await first.waitForSelector("#sign-in");
  assert.equal(await first.isVisible("#mine"), false);
  assert.equal(await first.evaluate(() => localStorage.getItem("chanshare:session")), null);
  await Promise.all([first, second, guest].map((p) => p.context().close()));
});

test("wrong credentials and a taken name are said in the dialog", async () => {
  const page = await lobbyPage(PHONE);
  await submitAccount(page, "in", USER, "not the right password");
  await page.waitForSelector("#account-dialog .error:not(:empty)");
  assert.match(await page.textContent("#account-dialog .error"), /wrong username or password/i);
  await page.screenshot({ path: `${SHOTS}/accounts-dialog-error-phone.png` });
  await page.click("#account-switch");
  assert.equal(await page.textContent("#account-title"), "Create an account");
  await page.click("#account-dialog button[type=button]");
  await submitAccount(page, "up", USER, "another long password");
  await page.waitForSelector("#account-dialog .error:not(:empty)");
  assert.match(await page.textContent("#account-dialog .error"), /taken/i);
  await page.context().close();
});
