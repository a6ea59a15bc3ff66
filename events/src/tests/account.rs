//! Registration rules, given/when/then.

use crate::account::*;

fn name(raw: &str) -> Result<String, AccountRejection> {
    Username::parse(raw).map(String::from)
}

#[test]
fn usernames() {
    let cases: &[(&str, Result<&str, ()>)] = &[
        ("alice", Ok("alice")),
        ("Alice", Ok("alice")),
        ("ALICE_the-2nd", Ok("alice_the-2nd")),
        ("abc", Ok("abc")),
        (&"x".repeat(32), Ok("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")),
        ("ab", Err(())),
        (&"x".repeat(33), Err(())),
        ("", Err(())),
        ("al ice", Err(())),
        ("alice.b", Err(())),
        ("ålice", Err(())),
        ("alice\u{200b}", Err(())),
        ("../etc", Err(())),
        ("alice>", Err(())),
    ];
    for (raw, expected) in cases {
        match (name(raw), expected) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{raw:?}"),
            (Err(AccountRejection::Invalid(_)), Err(())) => {}
            (got, want) => panic!("{raw:?}: got {got:?}, wanted {want:?}"),
        }
    }
    // Serde goes through the same check.
    assert!(serde_json::from_str::<Username>("\"Bad Name\"").is_err());
    assert_eq!(serde_json::from_str::<Username>("\"Bob\"").unwrap().as_str(), "bob");
}

#[test]
fn passwords() {
    let common = |p: &str| ["password123", "qwertyuiop"].contains(&p);
    let cases: &[(&str, bool)] = &[
        ("correct horse battery", true),
        ("0123456789", true),
        ("ten chars!", true),
        ("nine char", false),
        ("", false),
        ("Password123", false),
        ("QWERTYUIOP", false),
        ("ääääääääää", true),
    ];
    for (password, ok) in cases {
        assert_eq!(check_password(password, common).is_ok(), *ok, "{password:?}");
    }
    assert!(check_password(&"a".repeat(256), common).is_ok());
    assert!(check_password(&"a".repeat(257), common).is_err());
    // Characters, not bytes: 256 four-byte characters are allowed, 10 bytes of 5 are not.
    assert!(check_password(&"😀".repeat(256), common).is_ok());
    assert!(check_password(&"😀".repeat(5), common).is_err());
}

fn register(n: u128, raw: &str) -> AccountCommand {
    AccountCommand::Register {
        account_id: uuid::Uuid::from_u128(n),
        username: Username::parse(raw).unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        now_ms: 1_700_000_000_000,
    }
}

#[test]
fn registration() {
    // Given nobody holds the name, when it is registered, then it is claimed.
    let state = AccountState::default();
    let events = decide_account(&state, register(1, "alice")).unwrap();
    assert!(
        matches!(&events[..], [AccountEvent::Registered { username, .. }] if username.as_str() == "alice")
    );
    let state = events.iter().fold(state, AccountState::apply);
    let account = state.account.clone().unwrap();
    assert_eq!((account.account_id.as_u128(), account.created_ms), (1, 1_700_000_000_000));
    // Given it is claimed, when anyone registers it again (any case), then it is taken.
    assert_eq!(decide_account(&state, register(2, "ALICE")), Err(AccountRejection::Taken));
    assert_eq!(decide_account(&state, register(1, "alice")), Err(AccountRejection::Taken));
}

#[test]
fn account_events_have_a_stable_json_form() {
    let event = AccountEvent::Registered {
        account_id: uuid::Uuid::from_u128(7),
        username: Username::parse("alice").unwrap(),
        password_hash: "$argon2id$x".into(),
        at_ms: 5,
    };
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(
        json,
        r#"{"type":"registered","account_id":"00000000-0000-0000-0000-000000000007","username":"alice","password_hash":"$argon2id$x","at_ms":5}"#
    );
    assert_eq!(serde_json::from_str::<AccountEvent>(&json).unwrap(), event);
    assert!(
        serde_json::from_str::<AccountEvent>(r#"{"type":"registered","username":"a b"}"#).is_err()
    );
}
