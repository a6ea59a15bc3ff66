//! The derived playback clock.

use crate::*;

fn playback(playing: bool, position_ms: u64, anchor_ms: u64, rate: f64) -> Playback {
    Playback {
        item_id: Some(ItemId::nth(1)),
        playing,
        position_ms,
        anchor_ms,
        rate: Rate::from_factor(rate).unwrap(),
    }
}

#[test]
fn position_is_derived_from_the_anchor() {
    let cases = [
        // (playing, position, anchor, rate, now, expected)
        (true, 0, 1000, 1.0, 1000, 0),
        (true, 0, 1000, 1.0, 4000, 3000),
        (true, 500, 1000, 2.0, 2000, 2500),
        (true, 500, 1000, 0.25, 5000, 1500),
        (true, 500, 1000, 1.0, 10, 500),
        (false, 700, 1000, 1.0, 9000, 700),
        (true, u64::MAX - 1, 0, 4.0, u64::MAX, u64::MAX),
    ];
    for (playing, position, anchor, rate, now, expected) in cases {
        let p = playback(playing, position, anchor, rate);
        assert_eq!(p.position_at(now), expected, "{p:?} at {now}");
    }
}

#[test]
fn reanchoring_keeps_the_position() {
    let p = playback(true, 1000, 0, 1.5);
    let q = p.reanchored(2000);
    assert_eq!((q.position_ms, q.anchor_ms), (4000, 2000));
    assert_eq!(q.position_at(3000), p.position_at(3000));
}

#[test]
fn rate_bounds() {
    assert_eq!(Rate::from_factor(1.0), Some(Rate::NORMAL));
    assert_eq!(Rate::from_factor(0.25), Some(Rate::MIN));
    assert_eq!(Rate::from_factor(4.0), Some(Rate::MAX));
    for bad in [0.24, 4.01, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(Rate::from_factor(bad), None, "{bad}");
    }
}
