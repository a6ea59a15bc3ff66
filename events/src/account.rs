//! Accounts: a username claimed once, with its password hash, as the fold of the account's
//! events. The rules of registration (what a username and a password may be, that a name is
//! claimed once) live here; hashing and storage are the `accounts` crate's.
//!
//! Each account has its own subject in the account stream, named by its username, and the
//! first event on it is the claim: appending it expecting the subject empty is what makes a
//! username unique, in every gateway at once.

use serde::{Deserialize, Serialize};

/// Characters in a password, at least.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Characters in a password, at most (a hash of a megabyte is a denial of service).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A username: 3 to 32 of `[a-z0-9_-]`, unique case-insensitively (stored lowercase, so
/// `Alice` and `alice` are one name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl schemars::JsonSchema for Username {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Username".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[a-z0-9_-]{3,32}$"})
    }
}

impl Username {
    /// Checks and lowercases `raw`.
    pub fn parse(raw: &str) -> Result<Self, AccountRejection> {
        let name = raw.to_ascii_lowercase();
        if !(3..=32).contains(&name.len()) {
            return Err(AccountRejection::Invalid("a username is 3 to 32 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(AccountRejection::Invalid(
                "a username may use only letters a-z, digits, '_' and '-'",
            ));
        }
        Ok(Self(name))
    }

    /// The name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = AccountRejection;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

/// Checks a password against the rules: 10 to 256 characters, not one of the most common
/// (`is_common` answers for the shipped list; it is asked about the lowercased password).
pub fn check_password(
    password: &str,
    is_common: impl Fn(&str) -> bool,
) -> Result<(), AccountRejection> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AccountRejection::Invalid("a password is at least 10 characters"));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AccountRejection::Invalid("a password is at most 256 characters"));
    }
    if is_common(&password.to_lowercase()) {
        return Err(AccountRejection::Invalid(
            "that password is one of the most common ones; choose another",
        ));
    }
    Ok(())
}

/// Why an account command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountRejection {
    /// A rule of the form was broken (the message says which).
    #[error("{0}")]
    Invalid(&'static str),
    /// The username belongs to someone already.
    #[error("that username is taken")]
    Taken,
}

/// What someone asks of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Claims a username.
    Register {
        /// The new account's id.
        account_id: uuid::Uuid,
        /// The name.
        username: Username,
        /// The password's Argon2id hash, in PHC string form (never the password).
        password_hash: String,
        /// Server time, ms since the Unix epoch.
        now_ms: u64,
    },
}

/// What happened to an account. Stored as JSON, one event per message on the account's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountEvent {
    /// The username was claimed.
    Registered {
        /// The account's id.
        account_id: uuid::Uuid,
        /// Its username.
        username: Username,
        /// Argon2id, PHC string form.
        password_hash: String,
        /// When.
        at_ms: u64,
    },
}

/// An account, as the fold of its events. `AccountState::default()` is a name nobody holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountState {
    /// The account, once registered.
    pub account: Option<Account>,
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub account_id: uuid::Uuid,
    /// Its username.
    pub username: Username,
    /// Argon2id, PHC string form.
    pub password_hash: String,
    /// When it was registered.
    pub created_ms: u64,
}

impl AccountState {
    /// Folds one event in.
    pub fn apply(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Registered { account_id, username, password_hash, at_ms } => {
                self.account = Some(Account {
                    account_id: *account_id,
                    username: username.clone(),
                    password_hash: password_hash.clone(),
                    created_ms: *at_ms,
                });
            }
        }
        self
    }
}

/// Decides an account command against the account's state.
pub fn decide_account(
    state: &AccountState,
    command: AccountCommand,
) -> Result<Vec<AccountEvent>, AccountRejection> {
    match command {
        AccountCommand::Register { account_id, username, password_hash, now_ms } => {
            if state.account.is_some() {
                return Err(AccountRejection::Taken);
            }
            Ok(vec![AccountEvent::Registered {
                account_id,
                username,
                password_hash,
                at_ms: now_ms,
            }])
        }
    }
}
