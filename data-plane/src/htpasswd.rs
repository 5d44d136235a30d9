//! `basicAuth` users: htpasswd files read once per apply and again when they change on disk,
//! and password checks that cannot stall the proxy: bcrypt runs on a bounded blocking pool and
//! verified credentials are cached (by a digest, with a TTL, bounded in number).
//!
//! Schemes: bcrypt (`$2y$`, `$2b$`, `$2a$`; the `bcrypt` crate), Apache's MD5 (`$apr1$`: the
//! md5-crypt rounds over RustCrypto's MD5) and `{SHA}` (RustCrypto's SHA-1). Plain text and
//! `crypt(3)` DES entries are refused when the file is read.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tollgate_shared::config::model::{BasicAuth, Config};
use tollgate_shared::files;

use crate::clock::{self, Instant};

/// How long a verified (user, password) pair is trusted without another check.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// At most this many verified pairs are remembered per file.
const VERIFIED_MAX: usize = 10_000;
/// How long a request waits for a place on the bcrypt pool before it gets a 503.
pub const POOL_WAIT: Duration = Duration::from_secs(2);

/// bcrypt checks running at once: half the cores (at least one), so a flood of wrong
/// passwords leaves the others to every other request.
static BCRYPT_POOL: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new((cores / 2).max(1))
});

/// An htpasswd file that cannot be used: the config is rejected. Names the file and the line,
/// never a hash.
#[derive(Debug, thiserror::Error)]
#[error("basicAuth: htpasswd file `{file}`: {reason}")]
pub struct HtpasswdError {
    pub file: String,
    pub reason: String,
}

/// Why `basicAuth` refused a request; the text is the 401 body (it never contains the
/// credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BasicRejection {
    #[error("missing basic credentials")]
    Missing,
    #[error("malformed basic credentials")]
    Malformed,
    #[error("invalid username or password")]
    Invalid,
}

/// The compiled form of one `basicAuth` policy: the policy and its file's users.
pub struct BasicAuthPolicy {
    pub policy: BasicAuth,
    pub users: Arc<HtpasswdCell>,
}

/// The bcrypt pool stayed full for [`POOL_WAIT`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many password checks in progress; retry later")]
pub struct PoolBusy;

/// One user's password hash.
enum Hash {
    Bcrypt(String),
    /// `$apr1$<salt>$<checksum>`, kept whole to compare.
    Apr1 {
        salt: String,
        whole: String,
    },
    /// `{SHA}`: the SHA-1 digest.
    Sha1([u8; 20]),
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, &'static str> {
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| text.starts_with(p)) {
            return Ok(Hash::Bcrypt(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("$apr1$") {
            let (salt, _) = rest.split_once('$').ok_or("a malformed `$apr1$` hash")?;
            return Ok(Hash::Apr1 {
                salt: salt.chars().take(8).collect(),
                whole: text.to_string(),
            });
        }
        if let Some(encoded) = text.strip_prefix("{SHA}") {
            let digest = STANDARD
                .decode(encoded)
                .map_err(|_| "a malformed `{SHA}` hash")?;
            return digest
                .try_into()
                .map(Hash::Sha1)
                .map_err(|_| "a malformed `{SHA}` hash");
        }
        Err("an unsupported scheme (bcrypt, `$apr1$` and `{SHA}` are supported)")
    }

    fn is_slow(&self) -> bool {
        matches!(self, Hash::Bcrypt(_))
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            Hash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Hash::Apr1 { salt, whole } => {
                let computed = apr1(password.as_bytes(), salt.as_bytes());
                computed.as_bytes().ct_eq(whole.as_bytes()).into()
            }
            Hash::Sha1(digest) => sha1::Sha1::digest(password.as_bytes())
                .as_slice()
                .ct_eq(digest)
                .into(),
        }
    }
}

/// Apache's `$apr1$` hash: md5-crypt's 1,000 MD5 rounds with the `$apr1$` magic.
fn apr1(password: &[u8], salt: &[u8]) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    let mut bits = password.len();
    while bits != 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round & 1 == 1 {
            ctx.update(password);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round & 1 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(password);
        }
        digest = ctx.finalize();
    }
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = format!("$apr1${}$", String::from_utf8_lossy(salt));
    let mut push = |mut value: u32, chars: usize| {
        for _ in 0..chars {
            out.push(ALPHABET[(value & 0x3f) as usize] as char);
            value >>= 6;
        }
    };
    let d = |i: usize| u32::from(digest[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push((d(a) << 16) | (d(b) << 8) | d(c), 4);
    }
    push(d(11), 2);
    out
}

/// The users of one htpasswd file, and the credentials verified against it.
pub struct Users {
    hashes: HashMap<String, Arc<Hash>>,
    /// Checked for unknown users, so that a missing user costs what a wrong password does
    /// and timing does not tell which users exist.
    decoy: Option<Arc<Hash>>,
    /// SHA-256 of (user, password) -> when the pair was verified.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Users {
    /// `user:hash` lines; blank lines and `#` comments skipped. Errors name the line.
    fn parse(text: &str) -> Result<Users, String> {
        let mut hashes = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: not `user:hash`", n + 1))?;
            let hash = Hash::parse(hash).map_err(|e| format!("line {} (`{user}`): {e}", n + 1))?;
            hashes.insert(user.to_string(), Arc::new(hash));
        }
        let decoy = hashes
            .values()
            .find(|h| h.is_slow())
            .or_else(|| hashes.values().next())
            .cloned();
        Ok(Users {
            hashes,
            decoy,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `password` is `user`'s. bcrypt runs on the bounded pool; a pair verified in the
    /// last [`VERIFIED_TTL`] is not checked again.
    pub async fn check(&self, user: &str, password: &str) -> Result<bool, PoolBusy> {
        let (known, hash) = match (self.hashes.get(user), &self.decoy) {
            (Some(hash), _) => (true, hash),
            (None, Some(decoy)) => (false, decoy),
            (None, None) => return Ok(false),
        };
        let pair: [u8; 32] = Sha256::new()
            .chain_update(user)
            .chain_update([0u8])
            .chain_update(password)
            .finalize()
            .into();
        let now = clock::system().now();
        if self
            .verified
            .lock()
            .get(&pair)
            .is_some_and(|at| now.duration_since(*at) < VERIFIED_TTL)
        {
            return Ok(true);
        }
        let valid = if hash.is_slow() {
            let _permit = tokio::time::timeout(POOL_WAIT, BCRYPT_POOL.acquire())
                .await
                .map_err(|_| PoolBusy)?
                .expect("the pool is never closed");
            let (hash, password) = (hash.clone(), password.to_string());
            tokio::task::spawn_blocking(move || hash.verify(&password))
                .await
                .unwrap_or(false)
        } else {
            hash.verify(password)
        };
        let valid = valid && known;
        if valid {
            self.remember(pair, now);
        }
        Ok(valid)
    }

    fn remember(&self, pair: [u8; 32], now: Instant) {
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, at| now.duration_since(*at) < VERIFIED_TTL);
        }
        if verified.len() >= VERIFIED_MAX
            && let Some(oldest) = verified.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
        {
            verified.remove(&oldest);
        }
        verified.insert(pair, now);
    }
}

/// One htpasswd file: its users, swapped whole when the file changes.
pub struct HtpasswdCell {
    pub file: PathBuf,
    users: ArcSwap<Users>,
    /// SHA-256 of the text the users were read from: an unchanged file is not re-read.
    text: Mutex<[u8; 32]>,
}

impl HtpasswdCell {
    fn load(file: PathBuf) -> Result<HtpasswdCell, HtpasswdError> {
        let (users, text) = read(&file).map_err(|reason| HtpasswdError {
            file: file.display().to_string(),
            reason,
        })?;
        Ok(HtpasswdCell {
            file,
            users: ArcSwap::from_pointee(users),
            text: Mutex::new(text),
        })
    }

    pub fn users(&self) -> Arc<Users> {
        self.users.load_full()
    }

    /// Reads the file again: `Ok(true)` when it changed and was swapped in; on error the last
    /// good users are kept.
    pub fn reload(&self) -> Result<bool, String> {
        let (users, text) = read(&self.file)?;
        let mut last = self.text.lock();
        if *last == text {
            return Ok(false);
        }
        *last = text;
        self.users.store(Arc::new(users));
        Ok(true)
    }
}

fn read(file: &std::path::Path) -> Result<(Users, [u8; 32]), String> {
    let text = files::read_to_string(file, files::MAX_DOCUMENT).map_err(|e| e.to_string())?;
    Ok((Users::parse(&text)?, Sha256::digest(&text).into()))
}

/// One cell per htpasswd file the config names.
#[derive(Default, Clone)]
pub struct HtpasswdFiles(HashMap<PathBuf, Arc<HtpasswdCell>>);

impl HtpasswdFiles {
    /// Reads every htpasswd file of `config`.
    pub fn load(config: &Config) -> Result<HtpasswdFiles, HtpasswdError> {
        let mut out = HashMap::new();
        let files = config
            .binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|l| &l.routes)
            .filter_map(|r| r.policies.basic_auth.as_ref())
            .map(|b| &b.htpasswd);
        for file in files {
            if !out.contains_key(file) {
                out.insert(file.clone(), Arc::new(HtpasswdCell::load(file.clone())?));
            }
        }
        Ok(HtpasswdFiles(out))
    }

    pub fn get(&self, file: &std::path::Path) -> Option<&Arc<HtpasswdCell>> {
        self.0.get(file)
    }

    pub fn cells(&self) -> impl Iterator<Item = &Arc<HtpasswdCell>> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apr1_matches_apache() {
        // `openssl passwd -apr1 -salt …`
        for (password, salt, expected) in [
            (
                "password",
                "abcdefgh",
                "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1",
            ),
            ("secret", "Xy12", "$apr1$Xy12$GLsymIGo7.ZavKYrGfltS0"),
            ("p", "01234567", "$apr1$01234567$Hxhr8xh.ujGiqqlDGh50P/"),
        ] {
            assert_eq!(apr1(password.as_bytes(), salt.as_bytes()), expected);
        }
    }

    #[tokio::test]
    async fn every_scheme_verifies_and_wrong_passwords_fail() {
        let bcrypt = bcrypt::hash("b-pass", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        let users = Users::parse(&format!(
            "# users\nb:{bcrypt}\n\na:$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1\ns:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
        ))
        .unwrap();
        for (user, password) in [("b", "b-pass"), ("a", "password"), ("s", "password")] {
            assert!(users.check(user, password).await.unwrap(), "{user}");
            assert!(!users.check(user, "wrong").await.unwrap(), "{user}");
        }
        assert!(!users.check("nobody", "password").await.unwrap());
        assert_eq!(users.verified.lock().len(), 3, "only good pairs are cached");
    }

    #[test]
    fn the_verified_cache_is_bounded() {
        let users = Users::parse("s:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
        let now = clock::system().now();
        for i in 0..=VERIFIED_MAX as u32 {
            let mut pair = [0u8; 32];
            pair[..4].copy_from_slice(&i.to_be_bytes());
            users.remember(pair, now);
        }
        assert_eq!(users.verified.lock().len(), VERIFIED_MAX);
    }

    #[test]
    fn unsupported_entries_are_refused_by_line_without_the_hash() {
        let err = Users::parse("ok:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nplain:hunter2\n")
            .err()
            .unwrap();
        assert!(
            err.starts_with("line 2 (`plain`): an unsupported scheme"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        assert!(Users::parse("nocolon").is_err());
    }
}
