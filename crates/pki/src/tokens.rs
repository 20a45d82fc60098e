//! Static bearer tokens, kept in `<data-dir>/tokens` (JSON, mode 0600).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::{ADMIN_GROUP, ADMIN_USER, PkiError, files};

/// The user and groups a token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    token: String,
    #[serde(flatten)]
    identity: Identity,
}

/// The token store. Tokens are `K10` followed by 64 hex digits (256 bits from the system CSPRNG).
pub struct Tokens {
    path: PathBuf,
    entries: RwLock<Vec<Entry>>,
    /// When the file was last read: a token not found is looked for again if the file changed since
    /// (`gantry token create` adds tokens to the file of a running server).
    read_at: RwLock<Option<std::time::SystemTime>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Node join tokens authenticate as this user, in group `system:bootstrappers` (as Kubernetes bootstrap tokens).
pub const NODE_JOIN_USER: &str = "system:bootstrap:gantry-node-join";
pub const NODE_JOIN_GROUP: &str = "system:bootstrappers";

impl Tokens {
    /// Loads `dir/tokens`, creating it with an admin token (user `gantry-admin`, group `system:masters`)
    /// on first start.
    pub fn load_or_create(dir: &Path) -> Result<Tokens, PkiError> {
        let path = dir.join("tokens");
        let entries = match files::read_optional(&path)? {
            Some(text) => serde_json::from_str(&text).map_err(|e| PkiError::Invalid {
                path: path.clone(),
                reason: format!("not a token list: {e}"),
            })?,
            None => {
                files::create_private_dir(dir)?;
                let admin = Identity {
                    user: ADMIN_USER.into(),
                    groups: vec![ADMIN_GROUP.into()],
                };
                let entries = vec![Entry {
                    token: new_token()?,
                    identity: admin,
                }];
                save(&path, &entries)?;
                entries
            }
        };
        let read_at = modified(&path);
        Ok(Tokens {
            path,
            entries: RwLock::new(entries),
            read_at: RwLock::new(read_at),
        })
    }

    /// The first token of the admin user.
    pub fn admin_token(&self) -> Option<String> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| e.identity.user == ADMIN_USER)
            .map(|e| e.token.clone())
    }

    /// Makes, stores and returns a new token for joining nodes.
    pub fn generate_node_join_token(&self) -> Result<String, PkiError> {
        let identity = Identity {
            user: NODE_JOIN_USER.into(),
            groups: vec![NODE_JOIN_GROUP.into()],
        };
        let token = new_token()?;
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut updated = entries.clone();
        updated.push(Entry {
            token: token.clone(),
            identity,
        });
        save(&self.path, &updated)?;
        *entries = updated;
        Ok(token)
    }

    /// The identity of `token`, if it is one of ours. Compares in constant time with every stored token;
    /// rereads the file first when a token is not found and the file changed since it was read.
    pub fn verify(&self, token: &str) -> Option<Identity> {
        if let Some(identity) = self.find(token) {
            return Some(identity);
        }
        let now = modified(&self.path);
        let mut read_at = self.read_at.write().unwrap_or_else(|e| e.into_inner());
        if now == *read_at {
            return None;
        }
        let reread = files::read_optional(&self.path)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<Vec<Entry>>(&text).ok());
        *read_at = now;
        if let Some(entries) = reread {
            *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
        }
        drop(read_at);
        self.find(token)
    }

    fn find(&self, token: &str) -> Option<Identity> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for entry in entries.iter() {
            if bool::from(entry.token.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(entry.identity.clone());
            }
        }
        found
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn new_token() -> Result<String, PkiError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Issue("system random number generator failed".into()))?;
    Ok(bytes.iter().fold(String::from("K10"), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}

fn save(path: &Path, entries: &[Entry]) -> Result<(), PkiError> {
    let mut text = serde_json::to_string_pretty(entries).unwrap_or_default();
    text.push('\n');
    files::write_atomic(path, text.as_bytes(), 0o600)
}
