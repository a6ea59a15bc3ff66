// Browser tests of direct messages (issue 21): two signed-in people in a room, one messages the
// other from the member list; the marks go ✓ sent → ✓✓ delivered → read as the other page gets
// and opens it; the unread badge; a reply; a page that lost its socket gets what it missed,
// once. Screenshots at 1280×800 and 390×844 go to SCREENSHOTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, DESKTOP, PHONE, SHOTS, api, launch, media, open } from "./lib.mjs";

const RUN = Date.now().toString(36).slice(-6);
const AMY = `amy_${RUN}`;
const BO = `bo_with_a_long_name_${RUN}`;
const PASSWORD = "watching together since 2026";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function session(username) {
  assert.equal((await api("POST", "/api/accounts", { username, password: PASSWORD })).status, 201);
  const signedIn = await api("POST", "/api/sessions", { username, password: PASSWORD });
  assert.equal(signedIn.status, 200);
  const r = signedIn.body;
  return { access_token: r.access_token, refresh_token: r.refresh_token, expires_at_ms: Date.now() + r.expires_in * 1000, account_id: r.account_id, username: r.username };
}

// A page signed in as `account` (its session in localStorage, as signing in leaves it).
async function page(account, path, viewport) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript((s) => localStorage.setItem("chanshare:session", JSON.stringify(s)), account);
  const p = await context.newPage();
  p.on("pageerror", (error) => console.error(`[${account.username}] page error:`, error.message));
  await p.goto(`${BASE}${path}`);
  return p;
}

const marks = (p) => p.$$eval(".dm-thread li.mine", (rows) => rows.map((r) => [r.querySelector(".text").textContent, r.dataset.status]));

test("dms: a message from the member list goes sent, delivered, read; a reply; a dropped socket catches up", async () => {
  const [amy, bo] = [await session(AMY), await session(BO)];
  const created = await fetch(`${BASE}/api/rooms`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${amy.access_token}` },
    body: JSON.stringify({ title: "DM party", listed: false, source: { urls: [media("1743100800333444.webm"), media("1743100700111222.jpg")] } }),
  }).then((r) => r.json());
  const amyPage = await page(amy, `/r/${created.room_id}`, DESKTOP);
  const boPage = await page(bo, "/", PHONE);
  await boPage.waitForSelector("#messages-button:not([hidden])");
  // Bo joins the room too (as the account): Amy's member list offers to message him.
  const boRoom = await page(bo, `/r/${created.room_id}`, PHONE);
  await amyPage.waitForSelector(`#members button.message[aria-label="Message @${BO}"]`);
  await amyPage.click(`#members button.message[aria-label="Message @${BO}"]`);
  await amyPage.waitForSelector("#messages[open] .compose:not([hidden])");
  await amyPage.fill("#messages textarea", "hey, did you see the cat jump? 🐈");
  await amyPage.keyboard.press("Enter");
  // Bo's pages are open (lobby and room): delivered at once.
  await amyPage.waitForFunction(() => document.querySelector(".dm-thread li.mine")?.dataset.status === "delivered");

  // Bo sees the unread badge, opens the conversation: Amy's mark turns to read.
  await boPage.waitForFunction(() => document.querySelector("#messages-button .badge.unread")?.textContent === "1");
  await boPage.screenshot({ path: `${SHOTS}/dms-badge-phone.png` });
  await boPage.click("#messages-button");
  await boPage.waitForSelector(`.conversation[data-with="${AMY}"]`);
  await boPage.screenshot({ path: `${SHOTS}/dms-list-phone.png` });
  await boPage.click(`.conversation[data-with="${AMY}"]`);
  await boPage.waitForSelector(".dm-thread li.theirs");
  await amyPage.waitForFunction(() => document.querySelector(".dm-thread li.mine")?.dataset.status === "read");
  assert.equal(await boPage.textContent("#messages-button .badge.unread"), "0");
  // Bo's room page, where the conversation is not open, learns of the read: no unread left.
  await boRoom.waitForFunction(() => document.querySelector("#messages-button .badge.unread")?.textContent === "0", null, { timeout: 5_000 });

  // A reply, shown in Amy's open thread.
  await boPage.fill("#messages textarea", "yes!! it was perfect");
  await boPage.click("#messages .compose button[type=submit]");
  await amyPage.waitForSelector(".dm-thread li.theirs >> text=yes!! it was perfect");
  await boPage.waitForFunction(() => [...document.querySelectorAll(".dm-thread li.mine")].some((li) => li.dataset.status === "read"));
  await amyPage.screenshot({ path: `${SHOTS}/dms-thread-desktop.png` });
  await boPage.screenshot({ path: `${SHOTS}/dms-thread-phone.png` });

  // Bo's page loses its socket while Amy writes twice: it reconnects and gets both, once.
  await boPage.evaluate(() => window.chanshareMessages.drop());
  for (const line of ["one more thing", "the next video is better"]) {
    await amyPage.fill("#messages textarea", line);
    await amyPage.keyboard.press("Enter");
  }
  await boPage.waitForFunction(() => document.querySelectorAll(".dm-thread li.theirs").length === 3, null, { timeout: 20_000 });
  const theirs = await boPage.$$eval(".dm-thread li.theirs .text", (rows) => rows.map((r) => r.textContent));
  assert.deepEqual(theirs, ["hey, did you see the cat jump? 🐈", "one more thing", "the next video is better"]);
  await amyPage.waitForFunction(() => [...document.querySelectorAll(".dm-thread li.mine")].every((li) => li.dataset.status === "read"));
  assert.deepEqual((await marks(amyPage)).map(([, status]) => status), ["read", "read", "read"]);
  // The layout holds: nothing wider than the phone's screen in the panel.
  const overflow = await boPage.evaluate(() => [...document.querySelectorAll("#messages *")]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).map((e) => e.className || e.tagName));
  assert.deepEqual(overflow, [], "the panel fits the phone");

  // A guest in the room signs in in another tab of the same browser: the room page offers to
  // message Amy at once (its member list is drawn again, not only at the next room event).
  const cy = await session(`cy_${RUN}`);
  const guest = await open(browser, created, "cy", { viewport: PHONE });
  const envelope = `#members button.message[aria-label="Message @${AMY}"]`;
  assert.equal(await guest.$(envelope), null, "a guest page offers no direct message");
  const lobbyTab = await guest.context().newPage();
  await lobbyTab.goto(`${BASE}/`);
  await lobbyTab.evaluate((s) => localStorage.setItem("chanshare:session", JSON.stringify(s)), cy);
  await guest.waitForSelector(envelope, { timeout: 5_000 });
  for (const p of [amyPage, boPage, boRoom, guest]) await p.context().close();
});
