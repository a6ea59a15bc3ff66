//! The session timeline, given/when/then: given a room's commits (decided one after another,
//! `gap_ms` apart), when they are folded into a timeline, then it counts and marks them so.

use super::fixtures::*;
use crate::timeline::{FIRST_BUCKET_MS, MAX_BUCKETS, Timeline};
use crate::*;

/// Decides `steps` (each must be accepted) `gap_ms` apart: the states before each and the commits.
fn session(steps: &[(Actor, Command)], gap_ms: u64) -> Vec<(RoomState, Commit)> {
    let mut state = RoomState::default();
    let mut out = Vec::new();
    for (n, (actor, command)) in steps.iter().enumerate() {
        let now = T0 + n as u64 * gap_ms;
        let ctx = Ctx::new(room(), actor.clone(), now);
        let events = decide(&state, command.clone(), &ctx)
            .unwrap_or_else(|r| panic!("step {n} ({}) was rejected: {r}", command.name()));
        let commit = commit(state.version + 1, actor.clone(), now, events);
        let next = state.clone().apply(&commit);
        out.push((state, commit));
        state = next;
    }
    out
}

/// Folds the commits from the `from`th on into a timeline starting at the state before it.
fn timeline(session: &[(RoomState, Commit)], from: usize) -> Timeline {
    let mut timeline = Timeline::starting_at(&session[from].0);
    for (_, commit) in &session[from..] {
        timeline.add(commit);
    }
    timeline
}

struct Case {
    name: &'static str,
    given: Vec<(Actor, Command)>,
    gap_ms: u64,
    from: usize,
    then: fn(&Timeline) -> bool,
}

fn chats(n: usize) -> Vec<(Actor, Command)> {
    (0..n).map(|i| (alice(), Command::Chat { text: format!("line {i}") })).collect()
}

#[test]
fn timeline_cases() {
    let cases = [
        Case {
            name: "a short session: a bucket per 5 s from the first commit",
            given: with(vec![
                (host(), Command::Play),
                (alice(), Command::Chat { text: "hi".into() }),
            ]),
            gap_ms: 1_000,
            from: 0,
            then: |t| {
                t.start.version == 0
                    && t.start.at_ms == T0
                    && t.end.version == 4
                    && t.bucket_ms == FIRST_BUCKET_MS
                    && t.buckets.len() == 1
                    && t.buckets[0].commits == 4
                    && t.buckets[0].chat == 1
                    && t.buckets[0].joins == 2
            },
        },
        Case {
            name: "each change of the playing item is marked with its version",
            given: with(vec![
                (host(), Command::Play),
                (host(), Command::Next { expected_item_id: None }),
                (host(), Command::Seek { position_ms: 1_000 }),
                (host(), Command::Jump { item_id: item(1) }),
            ]),
            gap_ms: 10_000,
            from: 0,
            then: |t| {
                let marks: Vec<_> =
                    t.marks.iter().map(|m| (m.version, m.item_id.clone())).collect();
                // The first item starts with the room; a seek is no change.
                marks == [(1, Some(item(1))), (4, Some(item(2))), (6, Some(item(1)))]
                    && t.buckets.iter().map(|b| b.items).sum::<u32>() == 3
                    && t.playing == Some(item(1))
            },
        },
        Case {
            name: "a long session widens its buckets and never has more than the cap",
            given: with(chats(300)),
            gap_ms: 60_000,
            from: 0,
            then: |t| {
                t.buckets.len() <= MAX_BUCKETS
                    && t.bucket_ms > FIRST_BUCKET_MS
                    && t.buckets.iter().map(|b| b.chat).sum::<u32>() == 300
                    && t.buckets.iter().map(|b| b.commits).sum::<u32>() == 302
            },
        },
        Case {
            name: "a closed room's session ends at its close, whatever its host changes later",
            given: with(vec![
                (host(), Command::Play),
                (host(), Command::Close),
                (host(), Command::SetRewatch { rewatch: false }),
                (host(), Command::SetRewatch { rewatch: true }),
            ]),
            gap_ms: 3_600_000,
            from: 0,
            then: |t| t.closed && t.end.version == 4 && t.end.at_ms == T0 + 3 * 3_600_000,
        },
        Case {
            name: "from a later fold (a checkpoint): only what came after it",
            given: with(vec![
                (host(), Command::Play),
                (alice(), Command::Chat { text: "before".into() }),
                (host(), Command::Next { expected_item_id: None }),
                (alice(), Command::Chat { text: "after".into() }),
            ]),
            gap_ms: 1_000,
            from: 4,
            then: |t| {
                t.start.version == 4
                    && t.start.at_ms == T0 + 3_000
                    && t.end.version == 6
                    && t.buckets.iter().map(|b| b.chat).sum::<u32>() == 1
                    && t.marks.len() == 1
                    && t.marks[0].item_id == Some(item(2))
            },
        },
    ];
    for case in cases {
        let session = session(&case.given, case.gap_ms);
        let timeline = timeline(&session, case.from);
        assert!((case.then)(&timeline), "{}: {timeline:?}", case.name);
    }
}

#[test]
fn a_commit_that_does_not_follow_is_ignored() {
    let session = session(&with(vec![(host(), Command::Play)]), 1_000);
    let mut timeline = timeline(&session, 0);
    let before = timeline.clone();
    timeline.add(&session[1].1);
    assert_eq!(timeline, before, "a repeated commit counts once");
}

#[test]
fn extending_a_timeline_equals_folding_it_at_once() {
    let session = session(&with(chats(100)), 20_000);
    let whole = timeline(&session, 0);
    let mut first = Timeline::starting_at(&session[0].0);
    for (_, commit) in &session[..50] {
        first.add(commit);
    }
    let json = serde_json::to_string(&first).unwrap();
    let mut extended: Timeline = serde_json::from_str(&json).unwrap();
    for (_, commit) in &session[50..] {
        extended.add(commit);
    }
    assert_eq!(extended, whole);
}
