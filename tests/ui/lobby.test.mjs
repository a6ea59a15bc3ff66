// Browser tests of the lobby, with a real Chromium against a real `chanshare serve`: paging with
// "Show more", search, the layout at desktop and phone sizes, the favicon, and axe-core.
// Run with BASE_URL (the server), MEDIA_BASE (the fixture CDN) and SCREENSHOTS (a directory).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, DESKTOP, MEDIA, PHONE, SHOTS, api, axe, launch } from "./lib.mjs";

const VIDEO = "1743100800333444.webm";
// Titles of this run's rooms start with this, so a shared server's other rooms do not matter.
const RUN = `lobby ${Date.now().toString(36)}`;
const ROOMS = 60;

let browser;
before(async () => {
  browser = await launch();
  // (tests/it/browser.rs raises the per-address creation limit for the whole suite.)
  const made = [];
  for (let n = 0; n < ROOMS; n += 1) {
    made.push(api("POST", "/api/rooms", { title: `${RUN} #${String(n).padStart(2, "0")}`, name: "host", source: { urls: [`${MEDIA}/wsg/${VIDEO}`] } }));
  }
  for (const reply of await Promise.all(made)) assert.equal(reply.status, 201, JSON.stringify(reply.body));
  // The views are eventually consistent: wait until the lobby lists them all.
  const deadline = Date.now() + 15_000;
  while ((await everyRoom(RUN)).length < ROOMS) {
    assert.ok(Date.now() < deadline, "the rooms reached the lobby");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});
after(async () => { await browser?.close(); });

// Every listed room (matching `q`), through the API's cursor.
async function everyRoom(q) {
  const rooms = [];
  let cursor = null;
  do {
    const params = new URLSearchParams({ limit: "200" });
    if (q) params.set("q", q);
    if (cursor) params.set("cursor", cursor);
    const response = await fetch(`${BASE}/api/rooms?${params}`);
    assert.equal(response.status, 200);
    const page = await response.json();
    rooms.push(...page.rooms);
    cursor = page.next_cursor;
  } while (cursor);
  return rooms;
}

async function lobby(viewport) {
  // bypassCSP: axe-core is injected as an inline script, which the pages' policy refuses.
  const context = await browser.newContext({ viewport, bypassCSP: true });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("[lobby] page error:", error.message));
  await page.goto(BASE);
  await page.waitForFunction(() => document.querySelectorAll(".room-card").length > 0);
  return page;
}

const cardIds = (page) => page.$$eval(".room-card", (cards) => cards.map((c) => c.dataset.room));


// Every visible control of the create form, with its box and the card's.
async function overflow(page) {
  return page.evaluate(() => {
    const card = document.getElementById("create").closest(".panel").getBoundingClientRect();
    const out = [];
    for (const control of document.querySelectorAll("#create input, #create select, #create textarea, #create button")) {
      const box = control.getBoundingClientRect();
      if (!box.width) continue; // hidden
      if (box.left < card.left - 0.5 || box.right > card.right + 0.5) {
        out.push(`${control.name || control.textContent.trim()}: ${box.left.toFixed(0)}..${box.right.toFixed(0)} outside ${card.left.toFixed(0)}..${card.right.toFixed(0)}`);
      }
    }
    if (document.documentElement.scrollWidth > window.innerWidth) out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
    return out;
  });
}

test("the lobby shows 50 rooms and 'Show more' brings the rest, each once", async () => {
  const page = await lobby(DESKTOP);
  const all = (await everyRoom()).map((r) => r.room_id);
  assert.ok(all.length > 50, `${all.length} listed rooms`);
  await page.waitForFunction(() => document.querySelectorAll(".room-card").length === 50);
  assert.deepEqual(await cardIds(page), all.slice(0, 50), "the first page: the 50 most recently active");
  assert.equal(await page.locator("#more").isVisible(), true);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/lobby-desktop.png` });
  for (let clicks = 1; await page.locator("#more").isVisible(); clicks += 1) {
    assert.ok(clicks <= Math.ceil(all.length / 50), "no more clicks than pages");
    const shown = (await cardIds(page)).length;
    await page.click("#more");
    await page.waitForFunction((n) => document.querySelectorAll(".room-card").length > n, shown);
  }
  const ids = await cardIds(page);
  assert.equal(new Set(ids).size, ids.length, "no room twice");
  assert.deepEqual(ids, all, "every room, in the lobby's order");
  assert.match(await page.textContent("#rooms-status"), new RegExp(`^${all.length} rooms$`));
  // The periodic refresh keeps what was shown.
  await page.waitForTimeout(5500);
  assert.equal((await cardIds(page)).length, all.length);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/lobby-all.png`, fullPage: true });
  assert.deepEqual(await axe(page), [], "axe-core: nothing serious or critical");
  await page.context().close();
});

test("the search box finds rooms by title, ignoring case", async () => {
  const page = await lobby(DESKTOP);
  // "#0" is in the titles of rooms 00 to 09 of this run.
  const query = `${RUN} #0`.toUpperCase();
  const expected = (await everyRoom(`${RUN} #0`)).map((r) => r.room_id);
  assert.equal(expected.length, 10);
  await page.fill("#q", query);
  await page.waitForFunction((n) => document.querySelectorAll(".room-card").length === n && !document.getElementById("rooms-status").textContent.includes("Loading"), expected.length);
  assert.deepEqual(await cardIds(page), expected);
  const titles = await page.$$eval(".room-card strong", (s) => s.map((e) => e.textContent));
  assert.ok(titles.every((t) => t.startsWith(`${RUN} #0`)), titles.join(", "));
  assert.equal(await page.locator("#more").isVisible(), false);
  assert.match(await page.textContent("#rooms-status"), /10 rooms matching/);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/lobby-search.png` });
  await page.fill("#q", "no room has this title");
  await page.waitForFunction(() => document.getElementById("rooms-status").textContent.startsWith("No public room matches"));
  assert.equal(await page.locator(".room-card").count(), 0);
  await page.fill("#q", "");
  await page.waitForFunction(() => document.querySelectorAll(".room-card").length === 50);
  await page.context().close();
});

test("at 1280×800 every form control stays inside its card", async () => {
  const page = await lobby(DESKTOP);
  assert.deepEqual(await overflow(page), [], "the 4chan thread pane");
  assert.deepEqual(await pairAligned(page), { top: 0, height: 0, labels: 0 }, "board and thread fields level");
  // The tabs work with the arrow keys too.
  await page.focus("[data-tab=chan]");
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.locator("textarea[name=urls]").isVisible(), true);
  assert.equal(await page.getAttribute("[data-tab=urls]", "aria-selected"), "true");
  assert.deepEqual(await overflow(page), [], "the media URLs pane");
  assert.deepEqual(await axe(page), [], "axe-core: nothing serious or critical");
  await page.context().close();
});

// The board and thread fields sit side by side, one row: same top, same height, labels level.
// (A `.thread` rule of the messages panel once padded the Thread label and pushed it down.)
const pairAligned = (page) => page.evaluate(() => {
  const box = (selector) => document.querySelector(selector).getBoundingClientRect();
  const [board, thread] = [box("input[name=board]"), box("input[name=thread]")];
  const [boardLabel, threadLabel] = [box("label.board"), box("label.thread")];
  return {
    top: Math.round(board.top - thread.top),
    height: Math.round(board.height - thread.height),
    labels: Math.round(boardLabel.top - threadLabel.top),
  };
});

test("at 390×844 the lobby fits the phone and creates a room", async () => {
  const page = await lobby(PHONE);
  assert.deepEqual(await overflow(page), []);
  assert.deepEqual(await pairAligned(page), { top: 0, height: 0, labels: 0 }, "board and thread fields level");
  assert.deepEqual(await axe(page), [], "axe-core: nothing serious or critical");
  if (SHOTS) {
    await page.screenshot({ path: `${SHOTS}/lobby-phone.png` });
    await page.locator("#more").scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${SHOTS}/lobby-phone-more.png` });
    await page.evaluate(() => window.scrollTo(0, 0));
  }
  await page.click("[data-tab=urls]");
  await page.fill("textarea[name=urls]", `${MEDIA}/wsg/${VIDEO}`);
  await page.fill("input[name=title]", `${RUN} from a phone`);
  await page.fill("input[name=name]", "pocket");
  assert.deepEqual(await overflow(page), []);
  await page.click("#create button[type=submit]");
  await page.waitForURL(/\/r\//);
  await page.waitForFunction(() => window.chanshare && window.chanshare.session.room);
  assert.equal(await page.evaluate(() => window.chanshare.session.room.title), `${RUN} from a phone`);
  assert.equal(await page.evaluate(() => window.chanshare.session.room.playlist.length), 1);
  await page.context().close();
});

test("the lobby links its icon, and /favicon.ico is an image", async () => {
  const page = await lobby(DESKTOP);
  const href = await page.$eval("link[rel=icon]", (link) => link.href);
  for (const url of [href, `${BASE}/favicon.ico`]) {
    const response = await fetch(url);
    assert.equal(response.status, 200, url);
    assert.match(response.headers.get("content-type"), /^image\//, url);
  }
  // The icon is a picture Chromium can draw.
  const size = await page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    return [img.naturalWidth, img.naturalHeight];
  }, href);
  assert.ok(size[0] > 0 && size[1] > 0, `icon size ${size}`);
  await page.context().close();
});
