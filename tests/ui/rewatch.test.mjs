// Rewatch in a real Chromium: a party is recorded (three members playing, seeking, skipping and
// chatting across a mixed playlist, a message deleted, a member leaving), the room closes, and
// the rewatch page must show, at several moments, exactly the room that
// `chanshare replay state --at-time` folds from the log for that moment: the item, the position
// in it, the chat and the members. Also: the closed room's page and the lobby lead to it, an
// unlisted room's rewatch is for its members, and a host can turn it off.
// Run with BASE_URL, SCREENSHOTS, CHANSHARE_BIN and CHANSHARE_NATS_URL (tests/it/browser.rs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { BASE, DESKTOP, PHONE, SHOTS, api, createRoom, launch, open, send, sleep } from "./lib.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// The room at `ms` as the developer tool folds it from the log.
function replayAt(room, ms) {
  const out = execFileSync(process.env.CHANSHARE_BIN, ["replay", "state", room, "--at-time", new Date(ms).toISOString()], {
    env: { ...process.env, CHANSHARE_LOG: "error" },
  });
  return JSON.parse(out.toString());
}

// Where the room's playback is at `ms`, in seconds.
function positionAt(playback, ms) {
  const elapsed = playback.playing ? Math.max(0, ms - playback.anchor_ms) * playback.rate : 0;
  return (playback.position_ms + elapsed) / 1000;
}

async function waitFor(page, predicate, arg, what) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: 10_000 });
  } catch (error) {
    throw new Error(`${what}: ${error.message}`);
  }
}

// The rewatch page shows the room at its playhead exactly as the log has it then.
async function expectSameAsLog(page, room, label) {
  const seen = await page.evaluate(() => window.rewatch.sample());
  assert.ok(seen.paused, `${label}: paused`);
  const at = Math.floor(seen.at);
  const logged = replayAt(room, at);
  assert.equal(seen.version, logged.version, `${label}: the version at ${new Date(at).toISOString()}`);
  assert.equal(seen.item, logged.playback.item_id, `${label}: the item`);
  assert.ok(Math.abs(seen.target - positionAt(logged.playback, seen.at)) < 0.002, `${label}: the position ${seen.target} vs ${positionAt(logged.playback, seen.at)}`);
  const item = logged.playlist.find((i) => i.item_id === logged.playback.item_id);
  if (item && item.kind === "video") {
    // The player itself stands there (a paused video is put on the room's position).
    await waitFor(page, () => { const s = window.rewatch.sample(); return Math.abs(s.time - s.target) < 0.15; }, undefined, `${label}: the video at the position`);
  }
  const chat = await page.evaluate(() => window.rewatch.chat());
  assert.deepEqual(chat.slice(-logged.chat.length), logged.chat.map((c) => c.id), `${label}: the chat`);
  const members = await page.evaluate(() => window.rewatch.members());
  assert.deepEqual(members, logged.members.map((m) => [m.member_id, m.name, m.online]), `${label}: the members`);
  return logged;
}

async function rewatchPage(room, { viewport = DESKTOP, query = "" } = {}) {
  const page = await (await browser.newContext({ viewport })).newPage();
  page.on("pageerror", (error) => console.error("[rewatch] page error:", error.message));
  const response = await page.goto(`${BASE}/r/${room}/rewatch${query}`);
  return { page, status: response.status() };
}

test("a recorded party rewatched equals the log at every moment looked at", async () => {
  const room = await createRoom({ chan: { board: "wsg", thread: 5812345 }, title: "Rewatch me: the /wsg/ marathon with a long title that goes on and on" });
  const host = await open(browser, room, "host", { token: room.host_token });
  const ana = await open(browser, room, "ana ✨", { viewport: PHONE });
  const bo = await open(browser, room, "bo");
  const moments = {};
  await sleep(1000);
  await send(host, { type: "play" });
  await sleep(1500);
  await send(ana, { type: "chat", text: "it starts!" });
  await sleep(1000);
  await send(bo, { type: "seek", position_ms: 1200 });
  await sleep(1200);
  moments.afterSeek = Date.now();
  await send(bo, { type: "chat", text: "oops, wrong room" });
  await sleep(700);
  const state = (await api("GET", `/api/rooms/${room.room_id}`)).body;
  const oops = state.chat.find((c) => c.text === "oops, wrong room");
  await send(bo, { type: "delete_chat", message_id: oops.id });
  await sleep(800);
  await send(host, { type: "next" });
  await sleep(2500);
  moments.secondItem = Date.now();
  await send(ana, { type: "chat", text: "<b>not bold</b> & fine" });
  await send(host, { type: "chat", text: "next one is an image" });
  await sleep(1500);
  const boId = await bo.evaluate(() => window.chanshare.session.memberId);
  await send(host, { type: "kick", member_id: boId });
  await sleep(1000);
  moments.kicked = Date.now();
  await send(host, { type: "jump", item_id: "i4" });
  await sleep(2500);
  moments.image = Date.now();
  await send(host, { type: "pause" });
  await sleep(1500);
  moments.paused = Date.now();
  await send(host, { type: "play" });
  await sleep(2000);
  await send(host, { type: "close" });
  await sleep(1500);
  // The host's page of the closed room stops where the room was (closing pauses it): nothing
  // plays on, no item ends into a refused "next".
  await host.waitForFunction(() => window.chanshare.session.room.closed);
  const atClose = await host.evaluate(() => window.chanshare.sample());
  await sleep(2500);
  const later = await host.evaluate(() => window.chanshare.sample());
  assert.equal(later.target, atClose.target, "the closed room's clock stands still");
  assert.ok(!later.playing, "the closed room's player is paused");
  assert.equal(await host.evaluate(() => window.chanshare.pending()), 0, "no command left waiting");
  assert.ok(!(await host.locator("#toast").isVisible()), "no refusal shown");
  await host.screenshot({ path: `${SHOTS}/rewatch-host-closed.png` });

  // The closed room's page says so, and leads to its rewatch.
  const late = await browser.newContext({ viewport: DESKTOP });
  const latePage = await late.newPage();
  await latePage.goto(`${BASE}/r/${room.room_id}?name=late`);
  await latePage.waitForSelector("#gone-rewatch:not([hidden])");
  assert.equal(await latePage.getAttribute("#gone-rewatch", "href"), `/r/${room.room_id}/rewatch`);
  await latePage.screenshot({ path: `${SHOTS}/rewatch-closed-room.png` });
  await late.close();
  await Promise.all([host, ana, bo].map((p) => p.context().close()));

  const { page, status } = await rewatchPage(room.room_id);
  assert.equal(status, 200);
  await waitFor(page, () => window.rewatch && window.rewatch.state.room, undefined, "the rewatch starts");
  // It starts at the start of the session, playing.
  const first = await page.evaluate(() => window.rewatch.sample());
  assert.ok(!first.paused && first.version >= 1 && first.version <= 4, JSON.stringify(first));
  await page.screenshot({ path: `${SHOTS}/rewatch-start.png` });

  // Scrubbed to moments of the party (each reads the state there, then plays on from it).
  await page.evaluate(() => window.rewatch.pause());
  for (const [label, at] of Object.entries(moments)) {
    await page.evaluate((t) => window.rewatch.goTo(t), at);
    await sleep(300);
    const logged = await expectSameAsLog(page, room.room_id, label);
    if (label === "afterSeek") assert.equal(logged.playback.item_id, "i1", "the seek was in the first item");
    if (label === "image") assert.equal(logged.playback.item_id, "i4");
  }
  // Played through at 4× from the start: commits applied one by one give the same room.
  await page.evaluate(() => window.rewatch.goTo(0));
  await page.evaluate(() => { window.rewatch.speed(4); window.rewatch.play(); });
  await sleep(2500);
  await page.evaluate(() => window.rewatch.pause());
  await sleep(300);
  await expectSameAsLog(page, room.room_id, "played 4× from the start");
  const chatShown = await page.locator("#chat").innerText();
  assert.ok(!chatShown.includes("oops, wrong room"), "a deleted message never shows its text");
  await page.evaluate(() => window.rewatch.play());
  await sleep(2500);
  await page.evaluate(() => window.rewatch.pause());
  await sleep(300);
  await expectSameAsLog(page, room.room_id, "played on");
  await page.screenshot({ path: `${SHOTS}/rewatch-desktop.png` });

  // A deep link to a version opens at that commit; one to a time at that time.
  const { page: deep } = await rewatchPage(room.room_id, { viewport: PHONE, query: `?t=${encodeURIComponent(new Date(moments.secondItem).toISOString())}` });
  await waitFor(deep, () => window.rewatch && window.rewatch.state.room, undefined, "the deep link opens");
  await deep.evaluate(() => window.rewatch.pause());
  const atLink = await deep.evaluate(() => window.rewatch.sample());
  // (It plays from there until paused: slack for a busy machine, where that takes a while.)
  assert.ok(atLink.at >= moments.secondItem && atLink.at < moments.secondItem + 10_000, `opened at the linked time: ${atLink.at - moments.secondItem}`);
  await expectSameAsLog(deep, room.room_id, "deep link by time");
  await deep.screenshot({ path: `${SHOTS}/rewatch-phone.png`, fullPage: true });
  await deep.context().close();
  const { page: byVersion } = await rewatchPage(room.room_id, { query: "?v=6" });
  await waitFor(byVersion, () => window.rewatch && window.rewatch.state.room, undefined, "the version link opens");
  await byVersion.evaluate(() => window.rewatch.pause());
  assert.equal((await byVersion.evaluate(() => window.rewatch.sample())).version, 6);
  await byVersion.context().close();

  // The lobby lists the party among the recently ended, with a link to its rewatch.
  const lobby = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  await lobby.goto(`${BASE}/`);
  const link = lobby.locator(`#closed-rooms a[href="/r/${room.room_id}/rewatch"]`);
  await link.waitFor({ timeout: 10_000 });
  await link.click();
  await lobby.waitForURL(`**/r/${room.room_id}/rewatch`);
  await lobby.context().close();
  await page.context().close();
});

test("an unlisted room is rewatched by its members only; a host can turn rewatch off", async () => {
  const reply = await api("POST", "/api/rooms", { title: "private party", name: "host", listed: false, source: { chan: { board: "wsg", thread: 5812345 } } });
  assert.equal(reply.status, 201);
  const room = reply.body;
  const host = await open(browser, room, "host", { token: room.host_token });
  await send(host, { type: "chat", text: "members only" });
  await sleep(800);
  const stranger = await rewatchPage(room.room_id);
  await waitFor(stranger.page, () => !document.getElementById("gone").hidden, undefined, "a stranger is refused");
  assert.match(await stranger.page.locator("#gone-text").innerText(), /members/);
  await stranger.page.context().close();
  const member = await rewatchPage(room.room_id, { query: `?token=${encodeURIComponent(room.host_token)}` });
  await waitFor(member.page, () => window.rewatch && window.rewatch.state.room, undefined, "a member rewatches");
  // The host may stop it from the rewatch page, and undo that.
  member.page.on("dialog", (dialog) => dialog.accept());
  await member.page.click("#rewatch-off");
  await member.page.waitForSelector("#rewatch-on:not([hidden])");
  assert.match(await member.page.locator("#gone-title").innerText(), /Rewatch is off/);
  assert.equal((await api("GET", `/api/rooms/${room.room_id}`)).body.settings.rewatch, false);
  await member.page.click("#rewatch-on");
  await waitFor(member.page, () => window.rewatch && window.rewatch.state.room, undefined, "rewatch back on");
  await member.page.context().close();

  // Off: the page answers 403 and says why; the history API refuses too.
  await send(host, { type: "set_rewatch", rewatch: false });
  await host.waitForFunction(() => window.chanshare.session.room.settings.rewatch === false);
  assert.equal(await host.isChecked("#rewatch"), false, "the host's setting shows off");
  const off = await rewatchPage(room.room_id, { query: `?token=${encodeURIComponent(room.host_token)}` });
  assert.equal(off.status, 403);
  await waitFor(off.page, () => !document.getElementById("gone").hidden, undefined, "rewatch off is refused");
  assert.match(await off.page.locator("#gone-text").innerText(), /turned rewatching off/);
  await off.page.screenshot({ path: `${SHOTS}/rewatch-off.png` });
  await off.page.context().close();
  const events = await fetch(`${BASE}/api/rooms/${room.room_id}/events?token=${encodeURIComponent(room.host_token)}`);
  assert.equal(events.status, 403);
  // Closed, its page offers no rewatch, neither to the host nor to someone coming later.
  await send(host, { type: "close" });
  await host.waitForFunction(() => window.chanshare.session.room.closed);
  await sleep(300);
  assert.ok(await host.locator("#rewatch-link").isHidden(), "no rewatch link in the host's closed room");
  const late = await (await browser.newContext({ viewport: PHONE })).newPage();
  await late.goto(`${BASE}/r/${room.room_id}?name=late`);
  await late.waitForSelector("#gone:not([hidden])");
  await sleep(500);
  assert.ok(await late.locator("#gone-rewatch").isHidden(), "no rewatch link for a room whose host turned it off");
  await late.context().close();
  await host.context().close();
});
