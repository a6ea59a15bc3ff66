//! `decide`: the rules. Given a room and a command, the events it produces or why not.

use crate::command::{Command, LeaveReason};
use crate::event::{CloseReason, Event, PlaybackCause, RemovalReason};
use crate::ids::{Actor, ItemId, MemberId, MessageId, RoomId};
use crate::model::{AccountRef, ChatMessage, Control, ItemKind, Media, Settings, Source};
use crate::playback::{Playback, Rate};
use crate::rejection::{RejectCode, Rejection};
use crate::state::RoomState;

/// Configurable bounds on what a room accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items in a playlist.
    pub max_items: usize,
    /// Characters in a chat message.
    pub max_chat_chars: usize,
    /// Characters in a nickname.
    pub max_name_chars: usize,
    /// Characters in a room title.
    pub max_title_chars: usize,
    /// Listed members (online or not); the longest-offline one is pruned to make room
    /// (`CHANSHARE_MAX_MEMBERS`).
    pub max_members: usize,
    /// URLs in one `add_items`.
    pub max_urls_per_command: usize,
    /// Bytes in one media URL.
    pub max_url_bytes: usize,
    /// The furthest position a seek may go to.
    pub max_position_ms: u64,
    /// The longest an image may be shown.
    pub max_image_seconds: u32,
    /// Bytes of text in a playlist (URLs, titles, thumbnails, post links, hashes). With the
    /// other limits this bounds the encoded room state under the 8 MiB a snapshot message may
    /// carry (`infra/jetstream`): `tests::limits` builds the largest state they allow.
    pub max_playlist_bytes: usize,
    /// Kicked members a room remembers (each also bans an address fingerprint).
    pub max_bans: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_items: 1000,
            max_chat_chars: 500,
            max_name_chars: 32,
            max_title_chars: 120,
            max_members: 10_000,
            max_urls_per_command: 100,
            max_url_bytes: 2048,
            max_position_ms: 24 * 3600 * 1000,
            max_image_seconds: 600,
            max_playlist_bytes: 192 << 10,
            max_bans: 1000,
        }
    }
}

/// What a decision knows besides the room and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    /// The room the command is for (the state does not know it before the room exists).
    pub room: RoomId,
    /// Who issued the command (verified by the caller).
    pub actor: Actor,
    /// Server time, ms since the Unix epoch.
    pub now_ms: u64,
    /// Bounds.
    pub limits: Limits,
    /// Randomness for the rules that need it (shuffle); decisions are deterministic given it.
    pub entropy: u64,
}

impl Ctx {
    /// A context with default limits and no randomness.
    pub fn new(room: RoomId, actor: Actor, now_ms: u64) -> Self {
        Self { room, actor, now_ms, limits: Limits::default(), entropy: 0 }
    }
}

/// Decides a command against a room: the events to append (empty when the command is accepted
/// but changes nothing, e.g. `play` while playing), or why it is refused.
pub fn decide(state: &RoomState, command: Command, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let d = Decision { state, ctx, limits: &ctx.limits };
    if !state.exists() {
        return match command {
            Command::CreateRoom { title, source, settings, name, items, account } => {
                d.create(title, source, settings, name, items, account)
            }
            _ => Err(Rejection::not_found("room does not exist")),
        };
    }
    if state.closed.is_some() {
        // A closed room lives on as its history: its host, or the account that created it, may
        // still decide whether others rewatch it.
        return match (&ctx.actor, command) {
            (Actor::Member(me), Command::SetRewatch { rewatch })
                if state.host.as_ref() == Some(me) || state.owner.as_ref() == Some(me) =>
            {
                Ok(changed(state.rewatch_off == rewatch, Event::RewatchChanged { rewatch }))
            }
            _ => Err(Rejection::new(RejectCode::Closed, "room is closed")),
        };
    }
    let me = match &ctx.actor {
        Actor::System => {
            return match command {
                Command::RefreshThread { items } => d.refresh(items),
                Command::Close => d.close_idle(),
                other => {
                    Err(Rejection::forbidden(format!("the server does not issue {}", other.name())))
                }
            };
        }
        Actor::Member(me) => me,
    };
    let arriving = matches!(command, Command::Join { .. } | Command::CreateRoom { .. });
    if !arriving && state.member(me).is_none() {
        return Err(Rejection::forbidden("join the room first"));
    }
    if command.is_control() && state.settings.control == Control::Host && !d.is_host(me) {
        return Err(Rejection::forbidden("only the host controls playback in this room"));
    }
    match command {
        Command::CreateRoom { .. } => Err(Rejection::conflict("room already exists")),
        Command::Join { name, address, account } => d.join(me, name, address, account),
        Command::AddItems { urls } => d.add_items(urls),
        Command::RemoveItem { item_id } => d.remove_item(&item_id),
        Command::MoveItem { item_id, to } => d.move_item(item_id, to),
        Command::Play => d.play(),
        Command::Pause => d.pause(),
        Command::Seek { position_ms } => d.seek(position_ms),
        Command::Next { expected_item_id } => d.step(1, expected_item_id),
        Command::Previous { expected_item_id } => d.step(-1, expected_item_id),
        Command::Jump { item_id } => d.jump(&item_id),
        Command::SetRate { rate } => d.set_rate(rate),
        Command::Leave { reason } => Ok(d.leave(me, reason)),
        Command::Rename { name } => d.rename(me, name),
        Command::Chat { text } => d.chat(me, text),
        Command::DeleteChat { message_id } => d.delete_chat(me, &message_id),
        Command::SetControl { control } => {
            d.host_only(me)?;
            Ok(changed(state.settings.control != control, Event::ControlChanged { control }))
        }
        Command::SetListed { listed } => {
            d.host_only(me)?;
            Ok(changed(state.settings.listed != listed, Event::ListedChanged { listed }))
        }
        Command::Kick { member_id } => d.kick(me, member_id),
        Command::TransferHost { member_id } => d.transfer_host(me, member_id),
        Command::Close => {
            d.host_only(me)?;
            Ok(d.close(CloseReason::Host))
        }
        Command::RefreshThread { .. } => {
            Err(Rejection::forbidden("only the thread watcher refreshes a thread"))
        }
        Command::SetImageSeconds { seconds } => {
            d.host_only(me)?;
            if seconds == 0 || seconds > d.limits.max_image_seconds {
                return Err(Rejection::invalid(format!(
                    "an image is shown for 1 to {} seconds",
                    d.limits.max_image_seconds
                )));
            }
            let unchanged = state.play_mode.image_seconds == seconds;
            Ok(changed(!unchanged, Event::ImageSecondsChanged { seconds }))
        }
        Command::SetShuffle { shuffle } => {
            Ok(changed(state.play_mode.shuffle != shuffle, Event::ShuffleChanged { shuffle }))
        }
        Command::SetLoop { looping } => {
            Ok(changed(state.play_mode.looping != looping, Event::LoopChanged { looping }))
        }
        // The account that created the room decides too, host or not (as once it closed).
        Command::SetRewatch { rewatch } => {
            if state.owner.as_ref() != Some(me) {
                d.host_only(me)?;
            }
            Ok(changed(state.rewatch_off == rewatch, Event::RewatchChanged { rewatch }))
        }
    }
}

/// The message of the `forbidden` a join gets when the member list is full of online members.
pub const ROOM_FULL: &str = "room is full";

/// The message of the `forbidden` a join of an account's member gets without the account (a
/// member token alone, which outlives the account's session): only a signed-in join is that
/// member, so signing out ends it everywhere.
pub const SIGN_IN_FIRST: &str = "this member is an account's: sign in to join as it";

/// A guarded `next` that would restart the item it names (a loop of one item) is a late
/// duplicate while that item has played less than this.
const SAME_ITEM_GUARD_MS: u64 = 1000;

/// Spreads the bits of `x` (SplitMix64's finalizer), so that close entropy values pick far apart.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn changed(is_change: bool, event: Event) -> Vec<Event> {
    if is_change { vec![event] } else { Vec::new() }
}

struct Decision<'a> {
    state: &'a RoomState,
    ctx: &'a Ctx,
    limits: &'a Limits,
}

impl Decision<'_> {
    fn is_host(&self, id: &MemberId) -> bool {
        self.state.host.as_ref() == Some(id)
    }

    fn host_only(&self, me: &MemberId) -> Result<(), Rejection> {
        if self.is_host(me) {
            Ok(())
        } else {
            Err(Rejection::forbidden("only the host can do that"))
        }
    }

    fn create(
        &self,
        title: String,
        source: Source,
        settings: Settings,
        name: String,
        items: Vec<Media>,
        account: Option<AccountRef>,
    ) -> Result<Vec<Event>, Rejection> {
        let Actor::Member(host) = &self.ctx.actor else {
            return Err(Rejection::forbidden("a room is created by its first member"));
        };
        let room_id = self.ctx.room.clone();
        let name = match &account {
            Some(account) if name.trim().is_empty() => account.username.to_string(),
            _ => clean_name(&name, self.limits.max_name_chars)?,
        };
        let media = match &source {
            Source::Chan { board, thread } => {
                if board.is_empty()
                    || board.len() > 10
                    || !board.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    return Err(Rejection::invalid("board must be 1 to 10 characters a-z0-9"));
                }
                if *thread == 0 {
                    return Err(Rejection::invalid("thread number must be positive"));
                }
                items
            }
            Source::Urls(urls) => {
                if !items.is_empty() {
                    return Err(Rejection::invalid("a url room takes its items from its urls"));
                }
                if urls.is_empty() {
                    return Err(Rejection::invalid("a url room needs at least one url"));
                }
                self.urls_to_media(urls)?
            }
        };
        if media.len() > self.limits.max_items {
            return Err(Rejection::invalid(format!(
                "a playlist holds at most {} items",
                self.limits.max_items
            )));
        }
        self.fits(&media)?;
        let title = if title.trim().is_empty() {
            match &source {
                Source::Chan { board, thread } => format!("/{board}/ {thread}"),
                Source::Urls(_) => "Watch party".to_owned(),
            }
        } else {
            clean_text("title", &title, self.limits.max_title_chars, false)?
        };
        let mut events = vec![
            Event::RoomCreated { room_id, title, source, settings },
            Event::MemberJoined { member_id: host.clone(), name },
            Event::HostChanged { member_id: Some(host.clone()) },
        ];
        if let Some(account) = account {
            events.push(Event::AccountBound { member_id: host.clone(), account, owner: true });
        }
        events.extend(self.append_items(media));
        Ok(events)
    }

    fn join(
        &self,
        me: &MemberId,
        name: String,
        address: Option<String>,
        account: Option<AccountRef>,
    ) -> Result<Vec<Event>, Rejection> {
        let removed = || Rejection::forbidden("you were removed from this room");
        if self.state.banned.contains(me) {
            return Err(removed());
        }
        // A member is one account for its whole life (the gateway derives an account's member
        // id from the account); another account under the same id is a forgery or a bug.
        let bound = self.state.accounts.get(me);
        if let (Some(bound), Some(account)) = (bound, &account)
            && bound != account
        {
            return Err(Rejection::forbidden("this member belongs to another account"));
        }
        if bound.is_some() && account.is_none() {
            return Err(Rejection::forbidden(SIGN_IN_FIRST));
        }
        // A new identity from a kicked member's address is the kicked member, as far as the
        // server can tell (best effort: addresses are shared and change).
        if self.state.member(me).is_none()
            && address.as_ref().is_some_and(|a| self.state.banned_addresses.contains(a))
        {
            return Err(removed());
        }
        // A listed member may come back without a name (a reconnect): they keep theirs; a new
        // signed-in member without one is called by their username.
        let name = match (self.state.member(me), &account) {
            (Some(member), _) if name.trim().is_empty() => member.name.clone(),
            (None, Some(account)) if name.trim().is_empty() => account.username.to_string(),
            _ => clean_name(&name, self.limits.max_name_chars)?,
        };
        let mut events = Vec::new();
        match self.state.member(me) {
            Some(member) if member.online => {}
            Some(_) => events.push(Event::MemberReturned { member_id: me.clone() }),
            None => {
                if self.state.members.len() >= self.limits.max_members {
                    let Some(oldest) = self.state.members.iter().find(|m| !m.online) else {
                        return Err(Rejection::forbidden(ROOM_FULL));
                    };
                    events.push(Event::MemberLeft {
                        member_id: oldest.member_id.clone(),
                        reason: RemovalReason::Pruned,
                    });
                }
                events.push(Event::MemberJoined { member_id: me.clone(), name: name.clone() });
            }
        }
        if let Some(member) = self.state.member(me).filter(|m| m.name != name) {
            events.push(Event::MemberRenamed { member_id: member.member_id.clone(), name });
        }
        if let Some(address) = address
            && self.state.addresses.get(me) != Some(&address)
        {
            events.push(Event::MemberAddressSeen { member_id: me.clone(), address });
        }
        if let Some(account) = account
            && bound.is_none()
        {
            events.push(Event::AccountBound { member_id: me.clone(), account, owner: false });
        }
        // Someone online must be host: the joiner takes over from an absent or offline host
        // (a pruned member was offline). A returning host is host still, and the room's owner
        // takes host back from whoever holds it.
        let owner = self.state.owner.as_ref() == Some(me);
        let host_stays = match &self.state.host {
            Some(host) => {
                host == me || (!owner && self.state.member(host).is_some_and(|m| m.online))
            }
            None => false,
        };
        if !host_stays {
            events.push(Event::HostChanged { member_id: Some(me.clone()) });
        }
        Ok(events)
    }

    fn leave(&self, me: &MemberId, reason: LeaveReason) -> Vec<Event> {
        let Some(member) = self.state.member(me) else {
            return Vec::new();
        };
        let mut events = match reason {
            LeaveReason::Left => {
                vec![Event::MemberLeft { member_id: me.clone(), reason: RemovalReason::Left }]
            }
            LeaveReason::Timeout | LeaveReason::Disconnected if member.online => {
                vec![Event::MemberWentOffline { member_id: me.clone() }]
            }
            LeaveReason::Timeout | LeaveReason::Disconnected => return Vec::new(),
        };
        if self.is_host(me) {
            let successor = self.successor(me);
            match (successor, reason) {
                (Some(next), _) => events.push(Event::HostChanged { member_id: Some(next) }),
                (None, LeaveReason::Left) => events.push(Event::HostChanged { member_id: None }),
                // Nobody else is online: the host stays host, offline, until someone comes.
                (None, LeaveReason::Timeout | LeaveReason::Disconnected) => {}
            }
        }
        events
    }

    /// The longest-present online member other than `leaving`.
    fn successor(&self, leaving: &MemberId) -> Option<MemberId> {
        self.state
            .members
            .iter()
            .find(|m| m.online && &m.member_id != leaving)
            .map(|m| m.member_id.clone())
    }

    fn kick(&self, me: &MemberId, target: MemberId) -> Result<Vec<Event>, Rejection> {
        self.host_only(me)?;
        if &target == me {
            return Err(Rejection::invalid("you cannot kick yourself"));
        }
        if self.state.member(&target).is_none() {
            return Err(Rejection::not_found("no such member"));
        }
        if self.state.owner.as_ref() == Some(&target) {
            return Err(Rejection::forbidden("the room's creator cannot be removed from it"));
        }
        if self.state.banned.len() >= self.limits.max_bans {
            return Err(Rejection::invalid(format!(
                "this room has banned {} members, the most it can",
                self.limits.max_bans
            )));
        }
        Ok(vec![Event::MemberLeft { member_id: target, reason: RemovalReason::Kicked }])
    }

    fn transfer_host(&self, me: &MemberId, target: MemberId) -> Result<Vec<Event>, Rejection> {
        self.host_only(me)?;
        if &target == me {
            return Err(Rejection::invalid("you are the host already"));
        }
        match self.state.member(&target) {
            None => Err(Rejection::not_found("no such member")),
            Some(m) if !m.online => Err(Rejection::invalid("the new host must be online")),
            Some(_) => Ok(vec![Event::HostChanged { member_id: Some(target) }]),
        }
    }

    fn rename(&self, me: &MemberId, name: String) -> Result<Vec<Event>, Rejection> {
        let name = clean_name(&name, self.limits.max_name_chars)?;
        let unchanged = self.state.member(me).is_some_and(|m| m.name == name);
        Ok(changed(!unchanged, Event::MemberRenamed { member_id: me.clone(), name }))
    }

    fn chat(&self, me: &MemberId, text: String) -> Result<Vec<Event>, Rejection> {
        let text = clean_text("message", &text, self.limits.max_chat_chars, true)?;
        let message = ChatMessage {
            id: MessageId::nth(self.state.messages_posted + 1),
            member_id: me.clone(),
            text,
            at_ms: self.ctx.now_ms,
        };
        Ok(vec![Event::ChatPosted { message }])
    }

    fn delete_chat(&self, me: &MemberId, id: &MessageId) -> Result<Vec<Event>, Rejection> {
        let Some(message) = self.state.chat.iter().find(|m| &m.id == id) else {
            return Err(Rejection::not_found("no such message"));
        };
        if &message.member_id != me && !self.is_host(me) {
            return Err(Rejection::forbidden("only its author or the host can delete a message"));
        }
        Ok(vec![Event::ChatDeleted { message_id: id.clone() }])
    }

    fn close_idle(&self) -> Result<Vec<Event>, Rejection> {
        if self.state.online_count() > 0 {
            return Err(Rejection::conflict("room is not idle"));
        }
        Ok(self.close(CloseReason::Idle))
    }

    fn close(&self, reason: CloseReason) -> Vec<Event> {
        let mut events = Vec::new();
        if self.state.playback.playing {
            events.push(self.playback(PlaybackCause::Pause, |p| p.playing = false));
        }
        events.push(Event::RoomClosed { reason });
        events
    }

    // Playlist.

    fn add_items(&self, urls: Vec<String>) -> Result<Vec<Event>, Rejection> {
        if urls.is_empty() {
            return Err(Rejection::invalid("no urls"));
        }
        if urls.len() > self.limits.max_urls_per_command {
            return Err(Rejection::invalid(format!(
                "at most {} urls at once",
                self.limits.max_urls_per_command
            )));
        }
        let media = self.urls_to_media(&urls)?;
        if self.state.playlist.len() + media.len() > self.limits.max_items {
            return Err(Rejection::invalid(format!(
                "a playlist holds at most {} items",
                self.limits.max_items
            )));
        }
        self.fits(&media)?;
        Ok(self.append_items(media))
    }

    /// Refuses `media` that would take the playlist over its byte budget.
    fn fits(&self, media: &[Media]) -> Result<(), Rejection> {
        let adding: usize = media.iter().map(Media::text_bytes).sum();
        if self.playlist_bytes() + adding > self.limits.max_playlist_bytes {
            return Err(Rejection::invalid(format!(
                "the playlist is full: its urls and titles may take {} KiB in all",
                self.limits.max_playlist_bytes >> 10
            )));
        }
        Ok(())
    }

    fn playlist_bytes(&self) -> usize {
        self.state.playlist.iter().map(|item| item.media.text_bytes()).sum()
    }

    fn refresh(&self, media: Vec<Media>) -> Result<Vec<Event>, Rejection> {
        if !matches!(self.state.source, Some(Source::Chan { .. })) {
            return Err(Rejection::invalid("only a thread room can be refreshed"));
        }
        let mut seen: std::collections::BTreeSet<&str> =
            self.state.playlist.iter().filter_map(|i| i.media.source_key.as_deref()).collect();
        let room = self.limits.max_items.saturating_sub(self.state.playlist.len());
        // A thread that outgrows the playlist's budget adds what fits, in thread order.
        let mut budget = self.limits.max_playlist_bytes.saturating_sub(self.playlist_bytes());
        let fresh: Vec<Media> = media
            .iter()
            .filter(|m| m.source_key.as_deref().is_some_and(|key| seen.insert(key)))
            .take(room)
            .take_while(|m| match budget.checked_sub(m.text_bytes()) {
                Some(left) => {
                    budget = left;
                    true
                }
                None => false,
            })
            .cloned()
            .collect();
        Ok(self.append_items(fresh))
    }

    /// `items_added` (and a first current item for an empty playlist).
    fn append_items(&self, media: Vec<Media>) -> Vec<Event> {
        if media.is_empty() {
            return Vec::new();
        }
        let first = self.state.items_added + 1;
        let items: Vec<_> = media
            .into_iter()
            .zip(first..)
            .map(|(media, n)| crate::model::Item { item_id: ItemId::nth(n), media })
            .collect();
        let mut events = Vec::with_capacity(2);
        let first_id = items[0].item_id.clone();
        events.push(Event::ItemsAdded { items });
        if self.state.playback.item_id.is_none() {
            events.push(self.switch(PlaybackCause::ItemsAdded, Some(first_id), false));
        }
        events
    }

    fn urls_to_media(&self, urls: &[String]) -> Result<Vec<Media>, Rejection> {
        urls.iter().map(|url| url_media(url, self.limits.max_url_bytes)).collect()
    }

    fn remove_item(&self, item_id: &ItemId) -> Result<Vec<Event>, Rejection> {
        let Some(index) = self.state.item_index(item_id) else {
            return Err(Rejection::not_found("no such item"));
        };
        let mut events = vec![Event::ItemRemoved { item_id: item_id.clone() }];
        if self.state.playback.item_id.as_ref() == Some(item_id) {
            let playlist = &self.state.playlist;
            let replacement = playlist
                .get(index + 1)
                .or_else(|| index.checked_sub(1).and_then(|i| playlist.get(i)));
            let next = replacement.map(|i| i.item_id.clone());
            let playing = next.is_some() && self.state.playback.playing;
            events.push(self.switch(PlaybackCause::ItemRemoved, next, playing));
        }
        Ok(events)
    }

    fn move_item(&self, item_id: ItemId, to: u32) -> Result<Vec<Event>, Rejection> {
        let Some(from) = self.state.item_index(&item_id) else {
            return Err(Rejection::not_found("no such item"));
        };
        if to as usize >= self.state.playlist.len() {
            return Err(Rejection::invalid(format!(
                "position {to} is outside the playlist (0 to {})",
                self.state.playlist.len() - 1
            )));
        }
        Ok(changed(from != to as usize, Event::ItemMoved { item_id, to }))
    }

    // Playback.

    fn current(&self) -> Result<usize, Rejection> {
        self.state.current_index().ok_or_else(|| Rejection::invalid("the playlist is empty"))
    }

    fn play(&self) -> Result<Vec<Event>, Rejection> {
        self.current()?;
        Ok(changed(
            !self.state.playback.playing,
            self.playback(PlaybackCause::Play, |p| p.playing = true),
        ))
    }

    fn pause(&self) -> Result<Vec<Event>, Rejection> {
        self.current()?;
        Ok(changed(
            self.state.playback.playing,
            self.playback(PlaybackCause::Pause, |p| p.playing = false),
        ))
    }

    fn seek(&self, position_ms: u64) -> Result<Vec<Event>, Rejection> {
        self.current()?;
        if position_ms > self.limits.max_position_ms {
            return Err(Rejection::invalid("position is beyond the longest supported item"));
        }
        Ok(vec![self.playback(PlaybackCause::Seek, |p| p.position_ms = position_ms)])
    }

    fn set_rate(&self, factor: f64) -> Result<Vec<Event>, Rejection> {
        self.current()?;
        let Some(rate) = Rate::from_factor(factor) else {
            return Err(Rejection::invalid("rate must be between 0.25 and 4.0"));
        };
        Ok(changed(
            self.state.playback.rate != rate,
            self.playback(PlaybackCause::Rate, |p| p.rate = rate),
        ))
    }

    fn step(&self, by: isize, expected: Option<ItemId>) -> Result<Vec<Event>, Rejection> {
        let current = self.current()?;
        if let Some(expected) = &expected
            && self.state.playback.item_id.as_ref() != Some(expected)
        {
            return Err(Rejection::conflict("the room already moved on"));
        }
        let cause = if by > 0 { PlaybackCause::Next } else { PlaybackCause::Previous };
        let playlist = &self.state.playlist;
        let mode = &self.state.play_mode;
        let target = if by > 0 && mode.shuffle {
            self.shuffled_next(current)
        } else {
            match current.checked_add_signed(by).and_then(|i| playlist.get(i)) {
                Some(item) => Some(item),
                None if mode.looping && by > 0 => playlist.first(),
                None if mode.looping => playlist.last(),
                None => None,
            }
        };
        match target {
            // Looping a single item: a second report of the same end must not restart it again.
            Some(item)
                if expected.is_some()
                    && Some(&item.item_id) == self.state.playback.item_id.as_ref()
                    && self.state.playback.position_at(self.ctx.now_ms) < SAME_ITEM_GUARD_MS =>
            {
                Err(Rejection::conflict("the room already moved on"))
            }
            Some(item) => Ok(vec![self.switch(
                cause,
                Some(item.item_id.clone()),
                self.state.playback.playing,
            )]),
            // The last item ended (clients report it with the item they saw end): stop there.
            None if by > 0 && expected.is_some() => Ok(changed(
                self.state.playback.playing,
                self.playback(PlaybackCause::Ended, |p| p.playing = false),
            )),
            None if by > 0 => Err(Rejection::invalid("already at the last item")),
            None => Err(Rejection::invalid("already at the first item")),
        }
    }

    /// Under shuffle: a random item not played this round; when every item has been, a new
    /// round if the room loops (never the item that just ended, unless it is the only one).
    fn shuffled_next(&self, current: usize) -> Option<&crate::model::Item> {
        let playlist = &self.state.playlist;
        let fresh: Vec<_> = playlist
            .iter()
            .enumerate()
            .filter(|(i, item)| *i != current && !self.state.played.contains(&item.item_id))
            .map(|(_, item)| item)
            .collect();
        let candidates = if !fresh.is_empty() {
            fresh
        } else if self.state.play_mode.looping {
            let others: Vec<_> = playlist
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != current)
                .map(|(_, i)| i)
                .collect();
            if others.is_empty() { vec![&playlist[current]] } else { others }
        } else {
            return None;
        };
        let pick = (splitmix(self.ctx.entropy) % candidates.len() as u64) as usize;
        candidates.get(pick).copied()
    }

    fn jump(&self, item_id: &ItemId) -> Result<Vec<Event>, Rejection> {
        if self.state.item_index(item_id).is_none() {
            return Err(Rejection::not_found("no such item"));
        }
        Ok(vec![self.switch(
            PlaybackCause::Jump,
            Some(item_id.clone()),
            self.state.playback.playing,
        )])
    }

    /// Playback re-anchored at now, then changed by `change`.
    fn playback(&self, cause: PlaybackCause, change: impl FnOnce(&mut Playback)) -> Event {
        let mut playback = self.state.playback.reanchored(self.ctx.now_ms);
        change(&mut playback);
        Event::PlaybackChanged { cause, playback }
    }

    /// Playback of `item_id` from its start.
    fn switch(&self, cause: PlaybackCause, item_id: Option<ItemId>, playing: bool) -> Event {
        let playback = Playback {
            item_id,
            playing,
            position_ms: 0,
            anchor_ms: self.ctx.now_ms,
            rate: self.state.playback.rate,
        };
        Event::PlaybackChanged { cause, playback }
    }
}

/// Trims `text` and checks it is non-empty, at most `max_chars` characters and free of control
/// characters (newlines allowed where `multiline`).
fn clean_text(
    what: &str,
    text: &str,
    max_chars: usize,
    multiline: bool,
) -> Result<String, Rejection> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::invalid(format!("{what} is empty")));
    }
    if text.chars().count() > max_chars {
        return Err(Rejection::invalid(format!("{what} is longer than {max_chars} characters")));
    }
    if text.chars().any(|c| c.is_control() && !(multiline && c == '\n')) {
        return Err(Rejection::invalid(format!("{what} contains control characters")));
    }
    Ok(text.to_owned())
}

/// A nickname: [`clean_text`], and free of Unicode format characters, which can make one name
/// look like another or reorder the text around it (bidi overrides, zero-width characters).
fn clean_name(name: &str, max_chars: usize) -> Result<String, Rejection> {
    let name = clean_text("name", name, max_chars, false)?;
    if name.chars().any(is_format_char) {
        return Err(Rejection::invalid("name contains invisible or direction-changing characters"));
    }
    Ok(name)
}

/// Unicode's format characters (general category Cf) that text can hide: soft hyphen, Arabic
/// letter mark, Mongolian vowel separator, zero-width space/joiners and marks, bidi embeddings,
/// overrides and isolates, invisible operators, the byte order mark, interlinear annotations.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "gif", "webp", "avif", "bmp"];

/// A media item for a URL the browsers will load directly: http(s) only, titled by its file name.
fn url_media(url: &str, max_bytes: usize) -> Result<Media, Rejection> {
    let bad = |why: &str| Rejection::invalid(format!("bad url: {why}"));
    if url.len() > max_bytes {
        return Err(bad("too long"));
    }
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return Err(bad("only http and https urls can be played"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    // Not valid in a URL unencoded, and each would take two bytes in every JSON copy.
    if url.contains(['"', '\\']) {
        return Err(bad("quotes and backslashes must be percent-encoded"));
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || host.starts_with(':') || host.contains('@') {
        return Err(bad("no host"));
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let file = path.rsplit('/').find(|segment| !segment.is_empty()).unwrap_or(host);
    let extension = file.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    let kind = match extension {
        Some(ext) if IMAGE_EXTENSIONS.contains(&ext.as_str()) => ItemKind::Image,
        _ => ItemKind::Video,
    };
    Ok(Media {
        title: file.chars().take(120).collect(),
        url: url.to_owned(),
        thumb_url: None,
        kind,
        size: None,
        width: None,
        height: None,
        post_url: None,
        md5: None,
        source_key: None,
    })
}
