// What the live room page and the rewatch page share: the fold of the room's events on its
// pinned state JSON, and the player that keeps a <video>/<img> on the room's clock. The live
// page drives it with the server's clock; the rewatch page with a clock that runs through the
// room's history at 1×, 2× or 4×.
"use strict";

const RoomPlayer = (() => {
  const CHAT_TAIL = 50; // what the room state keeps (events::state::CHAT_TAIL)
  const MAX_RATE = 16; // the fastest a browser plays a video (a 4× room rewatched at 4×)

  // Mirrors `evolve` (events/src/state.rs) on the pinned state JSON. `roles.host` is the host's
  // member id, which the state JSON only holds as a member's role.
  function fold(room, event, roles) {
    const members = room.members;
    const byId = (id) => members.find((m) => m.member_id === id);
    switch (event.type) {
      case "room_created": Object.assign(room, { room_id: event.room_id, title: event.title, source: event.source }); Object.assign(room.settings, event.settings); break;
      case "items_added": room.playlist.push(...event.items); break;
      case "item_removed": room.playlist = room.playlist.filter((i) => i.item_id !== event.item_id); break;
      case "item_moved": {
        const at = room.playlist.findIndex((i) => i.item_id === event.item_id);
        if (at >= 0) { const [item] = room.playlist.splice(at, 1); room.playlist.splice(Math.min(event.to, room.playlist.length), 0, item); }
        break;
      }
      case "playback_changed": room.playback = event.playback; break;
      // A big room's state lists only its latest members (`member_count` says how many there
      // are): events about the others move the counts alone.
      case "member_joined":
        members.push({ member_id: event.member_id, name: event.name, role: event.member_id === roles.host ? "host" : "member", online: true });
        count(room, 1, 1);
        break;
      case "member_returned": {
        const m = byId(event.member_id);
        if (m) { members.splice(members.indexOf(m), 1); m.online = true; members.push(m); }
        count(room, 0, 1);
        break;
      }
      case "member_went_offline": { const m = byId(event.member_id); if (m) m.online = false; count(room, 0, -1); break; }
      case "member_left": {
        const m = byId(event.member_id);
        // Of a member not listed here: the longest-offline one is pruned; the others leave online.
        const online = m ? m.online : event.reason !== "pruned";
        room.members = members.filter((x) => x.member_id !== event.member_id);
        count(room, -1, online ? -1 : 0);
        break;
      }
      case "member_renamed": { const m = byId(event.member_id); if (m) m.name = event.name; break; }
      case "account_bound": {
        const m = byId(event.member_id);
        if (m) { m.account = event.account.username; if (event.owner) m.owner = true; }
        break;
      }
      case "host_changed":
        roles.host = event.member_id;
        for (const m of members) m.role = m.member_id === event.member_id ? "host" : "member";
        break;
      case "chat_posted": room.chat.push(event.message); if (room.chat.length > CHAT_TAIL) room.chat.shift(); break;
      case "chat_deleted": room.chat = room.chat.filter((c) => c.id !== event.message_id); break;
      case "control_changed": room.settings.control = event.control; break;
      case "listed_changed": room.settings.listed = event.listed; break;
      // A closed room has nobody online, whatever its members' last presence said.
      case "room_closed": room.closed = true; if (typeof room.online_count === "number") room.online_count = 0; break;
      case "image_seconds_changed": room.settings.image_seconds = event.seconds; break;
      case "shuffle_changed": room.settings.shuffle = event.shuffle; break;
      case "loop_changed": room.settings.loop = event.loop; break;
      case "rewatch_changed": room.settings.rewatch = event.rewatch; break;
    }
  }

  // Moves the state's member counts (absent from states of older servers: then the list is whole).
  function count(room, members, online) {
    if (typeof room.member_count === "number") room.member_count = Math.max(0, room.member_count + members);
    if (typeof room.online_count === "number") room.online_count = Math.max(0, room.online_count + online);
  }

  // How many members a state shows online: none in a closed room; else the room's count (a big
  // room's state lists only its latest members), or the listed ones' (states of older servers).
  function onlineCount(room) {
    if (room.closed) return 0;
    if (typeof room.online_count === "number") return room.online_count;
    return room.members.reduce((n, m) => n + (m.online ? 1 : 0), 0);
  }

  // The host's member id in a state JSON.
  function hostOf(room) { return (room.members.find((m) => m.role === "host") || {}).member_id || null; }

  // A player for `room()`'s playback as `playback()` says it is at `now()` (ms, the server's
  // clock). `speed()` multiplies every rate (the rewatch's 2× and 4×). The page hears of what
  // it shows through `on`: ended(itemId) when the item on screen reached its end (once per
  // playback), clock(at, total), sync(driftSeconds | null, bad), finished(on), muted() when the
  // browser only let a video play without sound.
  function create({ video, image, empty, now, room, playback, speed = () => 1, on }) {
    const preload = document.createElement("video");
    preload.preload = "auto";
    preload.muted = true;
    let loaded = null; // the item on screen: { id, kind }
    let endedSent = null;
    // A newly loaded item (or a resumed play) starts by jumping to the room's position: at an
    // item's start that is no visible jump, and it spares the correction loop the load delay.
    let align = false;
    let outOfSyncSince = null;

    function current() {
      const r = room();
      if (!r || !r.playback.item_id) return null;
      return r.playlist.find((i) => i.item_id === r.playback.item_id) || null;
    }
    function imageSeconds() { const r = room(); return (r && r.settings.image_seconds) || 6; }
    function target() {
      const p = playback();
      const elapsed = p.playing ? Math.max(0, now() - p.anchor_ms) * p.rate : 0;
      return (p.position_ms + elapsed) / 1000;
    }

    // Puts `item` on screen. Whatever was there stops: a video that is left is paused and
    // unloaded, so it can neither be heard under an image nor report an end for an item it does
    // not show.
    function load(item) {
      const leaving = loaded;
      loaded = item ? { id: item.item_id, kind: item.kind } : null;
      endedSent = null;
      align = true;
      if (leaving && leaving.kind === "video") {
        video.pause();
        video.removeAttribute("src");
        video.load();
      }
      video.hidden = image.hidden = true;
      empty.hidden = !!item;
      if (!item) { image.removeAttribute("src"); return; }
      if (item.kind === "video") {
        video.dataset.item = item.item_id;
        video.src = item.url;
        video.hidden = false;
      } else {
        image.src = item.url;
        image.hidden = false;
      }
      const list = room().playlist;
      const next = list[list.indexOf(item) + 1];
      if (next && next.kind === "video") preload.src = next.url;
    }

    // Reports once that `itemId` reached its end.
    function ended(itemId) {
      if (endedSent === itemId) return;
      endedSent = itemId;
      on.ended(itemId);
    }

    // The room stopped at the end of its last item (not looping).
    function finished(item, p, at, total) {
      const r = room();
      const last = r.playlist[r.playlist.length - 1];
      return !p.playing && !r.settings.loop && item === last && total > 0 && at >= total - 0.1;
    }

    // Keeps the player on the room's clock; the pages run it ten times a second and after
    // every commit.
    function tick() {
      if (!room()) return;
      const item = current();
      if ((item ? item.item_id : null) !== (loaded ? loaded.id : null)) load(item);
      if (!item) { on.sync(null, false); on.clock(0, 0); on.finished(false); return; }
      const p = playback();
      const at = target();
      const rate = p.rate * speed();
      if (item.kind === "image") {
        const due = imageSeconds();
        on.finished(finished(item, p, at, due));
        if (p.playing && at >= due) ended(item.item_id);
        on.clock(Math.min(at, due), due);
        on.sync(null, false);
        return;
      }
      if (video.readyState < 1) return;
      const duration = Number.isFinite(video.duration) ? video.duration : 0;
      on.finished(finished(item, p, at, duration));
      if (p.playing && duration && at >= duration - 0.05) {
        if (!video.paused) video.pause();
        ended(item.item_id);
        on.clock(duration, duration);
        return;
      }
      // Starting takes a moment: aim slightly ahead so the first frames land on time.
      const lead = p.playing && video.paused ? 0.05 * rate : 0;
      if (align || (p.playing && video.paused && Math.abs(video.currentTime - at) > 0.05)) {
        video.currentTime = Math.max(0, at + lead);
        video.playbackRate = Math.min(MAX_RATE, rate);
        align = false;
      }
      if (p.playing && video.paused) {
        video.play().catch((error) => {
          if (error.name === "NotAllowedError" && !video.muted) { video.muted = true; on.muted(); video.play().catch(() => {}); }
        });
      }
      if (!p.playing && !video.paused) video.pause();
      const drift = video.currentTime - at;
      if (Math.abs(drift) > 1 || (!p.playing && Math.abs(drift) > 0.04)) {
        video.currentTime = Math.max(0, at);
        video.playbackRate = Math.min(MAX_RATE, rate);
      } else if (p.playing) {
        // Proportional correction, no dead band: 100 ms behind plays 8 % fast until caught up.
        const nudge = Math.max(-0.2, Math.min(0.2, drift * 0.8));
        video.playbackRate = Math.min(MAX_RATE, Math.max(0.25, rate * (1 - nudge)));
      }
      const bad = p.playing && Math.abs(drift) > 0.5 && !video.seeking;
      outOfSyncSince = bad ? outOfSyncSince || Date.now() : null;
      on.sync(drift, !!(outOfSyncSince && Date.now() - outOfSyncSince > 3000));
      on.clock(video.currentTime, duration);
    }

    // The only `ended` that counts is the one of the video on screen, for the item it was
    // loaded for.
    video.addEventListener("ended", () => {
      if (loaded && loaded.kind === "video" && video.dataset.item === loaded.id) ended(loaded.id);
    });

    return {
      tick,
      target,
      current,
      imageSeconds,
      loaded: () => loaded,
      // A new playback of the same item (a loop, a seek back, play after the end) may end again.
      rearm() { endedSent = null; },
      // Back onto the room's position at once.
      resync() { video.currentTime = target(); outOfSyncSince = null; },
      // Jumps to the room's position at the next tick (after a scrub).
      realign() { align = true; },
    };
  }

  return { fold, hostOf, onlineCount, create, CHAT_TAIL };
})();
