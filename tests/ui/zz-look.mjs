// Temporary: a person's look at ./dev/up (deleted after).
import { launch, createRoom, open, PHONE, DESKTOP, BASE } from "./lib.mjs";
const browser = await launch();
const shot = (p, name) => p.screenshot({ path: `/tmp/look-${name}.png` });
const lobbyD = await (await browser.newContext({ viewport: DESKTOP })).newPage();
await lobbyD.goto(`${BASE}/`); await lobbyD.waitForTimeout(800); await shot(lobbyD, "lobby-desktop");
const lobbyP = await (await browser.newContext({ viewport: PHONE })).newPage();
await lobbyP.goto(`${BASE}/`); await lobbyP.waitForTimeout(800); await shot(lobbyP, "lobby-phone");
const room = await createRoom({ chan: { board: "wsg", thread: 5812345 }, title: "" , name: "host" });
console.log("room", room.room_id, "items", room.playlist?.length);
const host = await open(browser, room, "host", { token: room.host_token, viewport: DESKTOP });
const guest = await open(browser, room, "ゲスト👀 with a rather long name", { viewport: PHONE });
const guest2 = await open(browser, room, "second guest", { viewport: DESKTOP });
for (const p of [host, guest, guest2]) p.on("console", (m) => { if (m.type() === "error") console.log("CONSOLE", m.text()); });
await host.waitForTimeout(1000);
await shot(host, "host-start"); await shot(guest, "guest-start");
await host.evaluate(() => window.chanshare.command({ type: "play" }));
const state = (p) => p.evaluate(() => { const r = window.chanshare.session.room; return { item: r.playback.item_id, pos: r.playback.position_ms, playing: r.playback.playing, n: r.playlist.length }; });
const t0 = Date.now();
let last = null, i = 0;
while (Date.now() - t0 < 90_000) {
  await host.waitForTimeout(2000);
  const s = await state(host); const g = await state(guest);
  if (!last || s.item !== last.item) { i += 1; await shot(host, `host-item${i}`); await shot(guest, `guest-item${i}`); console.log("item", s, "guest", g); }
  last = s;
  if (!s.playing && i > 1) break;
}
await shot(host, "host-end"); await shot(guest, "guest-end"); await shot(guest2, "guest2-end");
console.log("end", await state(host), await state(guest), await host.evaluate(() => document.body.innerText.includes("End of the playlist")));
// A page that lost its connection.
await guest.context().setOffline(true); await guest.waitForTimeout(4000); await shot(guest, "guest-offline");
await guest.context().setOffline(false); await guest.waitForTimeout(6000); await shot(guest, "guest-back");
await browser.close();
