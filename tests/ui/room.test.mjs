// Browser tests of the web client, with a real Chromium against a real `chanshare serve`.
// Run by tests/it/browser.rs, which starts the servers and passes BASE_URL, MEDIA_BASE and
// SCREENSHOTS. Prints the measured sync numbers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const MEDIA = process.env.MEDIA_BASE;
const SHOTS = process.env.SCREENSHOTS;
// About 30 s of video, so playback is still going when the late joiner arrives.
const CLIPS = ["1743100800333444.webm", "1743100200123456.webm", "1743101000777888.webm", "1743100800333444.webm", "1743100200123456.webm"];
const VIDEOS = [...CLIPS, ...CLIPS];

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
      "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"],
  });
});
after(async () => { await browser?.close(); });

async function createRoom(control = "everyone", title = "sync test") {
  const response = await fetch(`${BASE}/api/rooms`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ title, control, name: "host", source: { urls: VIDEOS.map((v) => `${MEDIA}/wsg/${v}`) } }),
  });
  assert.equal(response.status, 201);
  return response.json();
}

async function open(room, name, token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (token) await context.addInitScript(([id, t]) => localStorage.setItem(`chanshare:token:${id}`, t), [room.room_id, token]);
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error:`, error.message));
  await page.goto(`${BASE}/r/${room.room_id}?name=${encodeURIComponent(name)}`);
  await page.waitForFunction(() => window.chanshare && window.chanshare.session.room);
  return page;
}

const sample = (page) => page.evaluate(() => window.chanshare.sample());
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

test("two pages play in sync; a late joiner lands on the right item and position", async () => {
  const room = await createRoom();
  const host = await open(room, "alice", room.host_token);
  const guest = await open(room, "bob");
  await host.click("#toggle");
  await guest.waitForFunction(() => window.chanshare.session.room.playback.playing);
  await sleep(1500);
  // Seek to the middle and skip on the host; the guest follows both.
  await host.evaluate(() => { const seek = document.getElementById("seek"); seek.value = 500; seek.dispatchEvent(new Event("change")); });
  await guest.waitForFunction(() => window.chanshare.session.room.playback.position_ms >= 1500);
  await host.click("#next");
  await guest.waitForFunction(() => window.chanshare.session.room.playback.item_id === "i2");
  await sleep(1000);

  const diffs = [];
  const drifts = [];
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const [a, b] = await Promise.all([sample(host), sample(guest)]);
    if (a.item && a.item === b.item && a.playing && b.playing && a.drift !== null && b.drift !== null && a.target > 0.3) {
      diffs.push(Math.abs(a.drift - b.drift) * 1000);
      drifts.push(Math.abs(a.drift) * 1000, Math.abs(b.drift) * 1000);
    }
    await sleep(100);
  }
  const p95 = percentile(diffs, 95);
  console.log(`sync: ${diffs.length} samples, p50 ${percentile(diffs, 50).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms between the two pages; p95 drift from the room clock ${percentile(drifts, 95).toFixed(1)} ms`);
  assert.ok(diffs.length > 30, `enough samples while playing: ${diffs.length}`);
  assert.ok(p95 <= 100, `p95 difference ${p95} ms`);

  // A third page joining late starts at the right item and position.
  const late = await open(room, "carol");
  await late.waitForFunction(() => { const s = window.chanshare.sample(); return s.item && s.playing && s.time > 0.2; }, null, { timeout: 10_000 });
  await sleep(1000);
  const [h, l] = await Promise.all([sample(host), sample(late)]);
  assert.equal(l.item, h.item, "the late joiner plays the room's item");
  const off = Math.abs(l.drift) * 1000;
  console.log(`late joiner: ${off.toFixed(0)} ms from the room's position (the host: ${(Math.abs(h.drift) * 1000).toFixed(0)} ms)`);
  assert.ok(off <= 200, `late joiner ${off} ms off`);
  if (SHOTS) await host.screenshot({ path: `${SHOTS}/room.png` });
  await Promise.all([host, guest, late].map((p) => p.context().close()));
});

test("chat reaches both pages, as text", async () => {
  const room = await createRoom("everyone", "chat test");
  const a = await open(room, "alice", room.host_token);
  const b = await open(room, "bob");
  const evil = "<img src=x onerror=alert(1)>";
  let dialogs = 0;
  for (const page of [a, b]) page.on("dialog", (dialog) => { dialogs += 1; dialog.dismiss(); });
  await a.fill("#say input", evil);
  await a.press("#say input", "Enter");
  await b.fill("#say input", "hello alice");
  await b.press("#say input", "Enter");
  for (const page of [a, b]) {
    await page.waitForFunction(() => window.chanshare.chat().length === 2);
    assert.deepEqual(await page.evaluate(() => window.chanshare.chat()), [evil, "hello alice"]);
    assert.equal(await page.locator("#chat img").count(), 0, "no element injected");
  }
  assert.equal(dialogs, 0);
  await Promise.all([a, b].map((p) => p.context().close()));
});

test("host-only mode disables a member's controls and the server refuses a forced command", async () => {
  const room = await createRoom("host", "host only");
  const host = await open(room, "alice", room.host_token);
  const member = await open(room, "bob");
  assert.equal(await host.locator("#toggle").isDisabled(), false);
  assert.equal(await member.locator("#toggle").isDisabled(), true);
  await member.evaluate(() => window.chanshare.session.ws.send(JSON.stringify({ type: "command", id: crypto.randomUUID(), command: { type: "play" } })));
  await member.waitForFunction(() => document.getElementById("toast").textContent.includes("host"));
  assert.equal(await member.evaluate(() => window.chanshare.session.room.playback.playing), false);
  if (SHOTS) await member.screenshot({ path: `${SHOTS}/room-member.png` });
  await Promise.all([host, member].map((p) => p.context().close()));
});

test("after the socket is cut and restored the page resumes with every chat message once", async () => {
  const room = await createRoom("everyone", "resume test");
  const a = await open(room, "alice", room.host_token);
  const b = await open(room, "bob");
  await b.evaluate(() => window.chanshare.cut());
  for (const text of ["one", "two", "three"]) {
    await a.fill("#say input", text);
    await a.press("#say input", "Enter");
  }
  await b.waitForFunction(() => window.chanshare.chat().length === 3, null, { timeout: 15_000 });
  await sleep(500);
  assert.deepEqual(await b.evaluate(() => window.chanshare.chat()), ["one", "two", "three"]);
  await Promise.all([a, b].map((p) => p.context().close()));
});

test("a room made from a 4chan thread (the README screenshot)", async () => {
  const response = await fetch(`${BASE}/api/rooms`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "alice", source: { chan: { board: "wsg", thread: 5812345 } } }),
  });
  assert.equal(response.status, 201);
  const room = await response.json();
  const host = await open(room, "alice", room.host_token);
  const guest = await open(room, "bob");
  assert.equal(await host.evaluate(() => window.chanshare.session.room.playlist.length), 6);
  assert.equal(await host.locator(".pl-item a").first().getAttribute("href"), "https://boards.4chan.org/wsg/thread/5812345#p5812345");
  for (const [page, text] of [[host, "first one is a classic"], [guest, "lmao the cat"], [host, "next one has sound"]]) {
    await page.fill("#say input", text);
    await page.press("#say input", "Enter");
  }
  await host.click("#toggle");
  await host.waitForFunction(() => window.chanshare.chat().length === 3 && window.chanshare.sample().time > 1);
  await host.waitForFunction(() => [...document.querySelectorAll(".pl-item img")].every((img) => img.complete && img.naturalWidth > 0));
  if (SHOTS) await host.screenshot({ path: `${SHOTS}/thread-room.png` });
  await Promise.all([host, guest].map((p) => p.context().close()));
});

test("the lobby lists rooms and creates one", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(BASE);
  await page.waitForSelector(".room-card");
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/lobby.png` });
  await page.click("[data-tab=urls]");
  await page.fill("textarea[name=urls]", `${MEDIA}/wsg/${VIDEOS[0]}`);
  await page.fill("input[name=name]", "dora");
  await page.click("#create button[type=submit]");
  await page.waitForURL(/\/r\//);
  await page.waitForFunction(() => window.chanshare && window.chanshare.session.room);
  assert.equal(await page.evaluate(() => window.chanshare.session.room.playlist.length), 1);
  await context.close();
});
