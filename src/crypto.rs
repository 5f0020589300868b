//! Tokens, password hashing and the attribute key ring. Everything here uses vetted crates
//! (sha2, argon2, aes-gcm) and the OS CSPRNG; nothing is hand-rolled.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
    mpsc,
};

use aes_gcm::{
    Aes256Gcm, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use zeroize::Zeroizing;

use crate::domain::{RecoveryCodeHash, TokenHash};

/// Every UST starts with this, so leaked tokens are easy to recognise in code and scanners.
pub const UST_PREFIX: &str = "ssod_ust_";
/// Every sign-up confirmation and password reset token starts with this.
pub const ACCOUNT_TOKEN_PREFIX: &str = "ssod_act_";
const TOKEN_RANDOM_BYTES: usize = 32;
const TOKEN_ENCODED_LEN: usize = 43;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no encryption key is configured")]
    NoKeys,
    #[error("unknown encryption key id {0}")]
    UnknownKey(String),
    #[error("ciphertext does not decrypt")]
    Decrypt,
    #[error("invalid key ring: {0}")]
    InvalidKeyRing(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("too many password hashes are waiting")]
    Overloaded,
}

/// A freshly minted UST: 256 bits from the OS CSPRNG, URL-safe, with a recognisable prefix.
pub fn generate_ust() -> String {
    generate_token(UST_PREFIX)
}

/// Whether `text` has the shape of a UST; malformed tokens are refused without a look-up.
pub fn is_well_formed_ust(text: &str) -> bool {
    is_well_formed_token(UST_PREFIX, text)
}

/// SHA-256 of the token text: the token has 256 bits of entropy, so a fast hash is enough
/// and keeps the hot path cheap.
pub fn hash_ust(ust: &str) -> TokenHash {
    hash_token(ust)
}

/// A sign-up confirmation or password reset token, made like a UST under its own prefix.
pub fn generate_account_token() -> String {
    generate_token(ACCOUNT_TOKEN_PREFIX)
}

/// Whether `text` has the shape of an account token.
pub fn is_well_formed_account_token(text: &str) -> bool {
    is_well_formed_token(ACCOUNT_TOKEN_PREFIX, text)
}

/// SHA-256 of an account token, the only form stores keep.
pub fn hash_account_token(token: &str) -> TokenHash {
    hash_token(token)
}

fn generate_token(prefix: &str) -> String {
    let mut bytes = Zeroizing::new([0u8; TOKEN_RANDOM_BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn is_well_formed_token(prefix: &str, text: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == TOKEN_ENCODED_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// A random password for users created without one.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A TOTP secret: 160 bits from the OS CSPRNG, the length RFC 4226 recommends.
pub fn generate_totp_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    OsRng.fill_bytes(&mut secret);
    secret
}

const RECOVERY_CODE_BYTES: usize = 10;
/// Base32 characters of a recovery code: 80 bits, 5 bits each.
const RECOVERY_CODE_CHARS: usize = RECOVERY_CODE_BYTES * 8 / 5;
const RECOVERY_CODE_ALPHABET: base32::Alphabet = base32::Alphabet::Rfc4648Lower { padding: false };

/// A recovery code: 80 bits from the OS CSPRNG in lower-case base32 (no 0/1/8/9 to misread),
/// in groups of four (`abcd-efgh-ijkl-mnop`) for people to copy.
pub fn generate_recovery_code() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    let encoded = Zeroizing::new(base32::encode(RECOVERY_CODE_ALPHABET, bytes.as_ref()));
    let groups: Vec<&str> = encoded
        .as_bytes()
        .chunks(4)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect();
    Zeroizing::new(groups.join("-"))
}

/// The SHA-256 of a recovery code as typed (any case, dashes and spaces ignored); `None` when
/// it cannot be one. A fast hash suffices: the code has 80 random bits, which no one can
/// search, unlike a password.
pub fn hash_recovery_code(code: &str) -> Option<RecoveryCodeHash> {
    let normalised: Zeroizing<String> = Zeroizing::new(
        code.chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    let well_formed = normalised.len() == RECOVERY_CODE_CHARS
        && normalised
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    well_formed.then(|| RecoveryCodeHash(Sha256::digest(normalised.as_bytes()).into()))
}

/// One hashing job, run on a hasher thread with that thread's Argon2 instance.
type HashJob = Box<dyn FnOnce(&Argon2<'static>) + Send>;

/// How the hasher pool is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HasherSettings {
    /// Hashes running at once, each on its own thread.
    pub threads: usize,
    /// Jobs that may wait beyond those running; more are refused as overloaded.
    pub max_pending: usize,
}

/// Argon2id hashing on a fixed set of dedicated, lower-priority threads, so logins cannot
/// starve the other RPCs of runtime threads, and memory stays bounded: each hash needs
/// 19 MiB, and the allocator keeps that per thread that ever hashed; a fixed set of threads
/// keeps it to `threads × 19 MiB` (on tokio's elastic blocking pool it grew to hundreds of
/// MiB).
///
/// Admission is bounded and abandoned work is dropped: a job holds its admission permit
/// until it has run or been skipped (not merely until its caller gives up), and a job whose
/// caller has gone (cancelled, or past its deadline) is skipped without hashing. So callers
/// that give up cannot grow the queue, and a flood is refused at once instead of queued.
#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: mpsc::Sender<HashJob>,
    /// One permit per running or waiting job: `threads + max_pending`.
    admission: Arc<Semaphore>,
    /// Verified against when a username is unknown, so that costs the same as a wrong
    /// password.
    dummy_hash: Arc<str>,
    /// Hashes and verifications run to the end, for tests that count what work cost.
    completed: Arc<AtomicU64>,
}

/// A place in the hasher pool, taken before the work it is for: a login reserves one before
/// it claims its attempt, so an admitted claim is never refused as overloaded afterwards.
pub struct HashPlace {
    /// Held until the work has run or been skipped; dropping it frees the place.
    _permit: OwnedSemaphorePermit,
}

impl PasswordHasherPool {
    /// OWASP's minimum for Argon2id: 19 MiB, two passes, one lane.
    pub fn new(settings: HasherSettings) -> Result<Self, CryptoError> {
        let params = Params::new(19 * 1024, 2, 1, None)
            .map_err(|error| CryptoError::Hashing(error.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_with(&argon2, &generate_password())?;
        let threads = settings.threads.max(1);
        let (jobs, queue) = mpsc::channel::<HashJob>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads {
            let queue = Arc::clone(&queue);
            let argon2 = argon2.clone();
            std::thread::Builder::new()
                .name(format!("ssod-argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is only held while waiting; a job runs without it.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&argon2),
                            // Every pool handle is gone.
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|error| CryptoError::Hashing(error.to_string()))?;
        }
        Ok(Self {
            jobs,
            admission: Arc::new(Semaphore::new(threads + settings.max_pending)),
            dummy_hash: dummy_hash.into(),
            completed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Takes a place for one hash, or refuses at once when every place is taken.
    pub fn reserve(&self) -> Result<HashPlace, CryptoError> {
        Arc::clone(&self.admission)
            .try_acquire_owned()
            .map(|permit| HashPlace { _permit: permit })
            .map_err(|_| CryptoError::Overloaded)
    }

    /// Hashes and verifications that have run to the end since the pool started.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, CryptoError> {
        let password = Zeroizing::new(password.to_owned());
        self.run(move |argon2| hash_with(argon2, &password)).await
    }

    /// Verifies `password` against `hash`, or against a dummy hash when `hash` is `None`.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, CryptoError> {
        self.verify_in(self.reserve()?, password, hash).await
    }

    /// [`Self::verify`] in a place reserved beforehand.
    pub async fn verify_in(
        &self,
        place: HashPlace,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, CryptoError> {
        let password = Zeroizing::new(password.to_owned());
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matches = self
            .run_in(place, move |argon2| {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|error| CryptoError::Hashing(error.to_string()))?;
                Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> Result<T, CryptoError> + Send + 'static,
    ) -> Result<T, CryptoError> {
        self.run_in(self.reserve()?, work).await
    }

    async fn run_in<T: Send + 'static>(
        &self,
        place: HashPlace,
        work: impl FnOnce(&Argon2<'static>) -> Result<T, CryptoError> + Send + 'static,
    ) -> Result<T, CryptoError> {
        let (reply, answer) = oneshot::channel();
        let completed = Arc::clone(&self.completed);
        self.jobs
            .send(Box::new(move |argon2| {
                if reply.is_closed() {
                    metrics::counter!("ssod_password_hashes_skipped_total").increment(1);
                    return;
                }
                let result = work(argon2);
                metrics::counter!("ssod_password_hashes_total").increment(1);
                completed.fetch_add(1, Ordering::Relaxed);
                // Free the place before the caller resumes, so it may hash again at once.
                drop(place);
                let _ = reply.send(result);
            }))
            .map_err(|_| CryptoError::Hashing("the hasher threads have stopped".into()))?;
        answer
            .await
            .map_err(|_| CryptoError::Hashing("a hasher thread failed".into()))?
    }
}

/// Puts the calling hasher thread under `SCHED_IDLE`: it runs on cores nothing else wants,
/// and any runtime thread that wakes (a verification) preempts it at once, so a login storm
/// cannot add scheduling latency to the hot path. Logins still progress on idle cycles; under
/// load that leaves none, they wait in the bounded queue until their deadline. Best effort:
/// a host that refuses still hashes, at normal priority.
fn lower_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let lowered = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if let Err(error) = lowered {
        tracing::warn!(error = ?error, "cannot lower the hasher thread's priority");
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, CryptoError> {
    let salt = argon2::password_hash::SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| CryptoError::Hashing(error.to_string()))
}

const NONCE_LEN: usize = 12;

/// AES-256-GCM keys by id: the first encrypts, all decrypt, so keys can be rolled.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

impl KeyRing {
    /// Parses `id:base64,id:base64`; each key must be 32 bytes and each id unique.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for entry in spec
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::InvalidKeyRing("expected id:base64".into()))?;
            if id.is_empty() || keys.iter().any(|(known, _)| known == id) {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "key id {id:?} is empty or repeated"
                )));
            }
            let bytes =
                Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
                    CryptoError::InvalidKeyRing(format!("key {id:?} is not base64"))
                })?);
            if bytes.len() != 32 {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "key {id:?} must be 256 bits"
                )));
            }
            keys.push((
                id.to_owned(),
                Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            ));
        }
        Ok(Self { keys })
    }

    /// A single random key that lives as long as the process.
    pub fn ephemeral() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        Self {
            keys: vec![("ephemeral".to_owned(), Aes256Gcm::new(&key))],
        }
    }

    /// Encrypts with the first key and a fresh random nonce; returns the key id and
    /// nonce ‖ ciphertext.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(String, Vec<u8>), CryptoError> {
        let (id, cipher) = self.keys.first().ok_or(CryptoError::NoKeys)?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok((id.clone(), sealed))
    }

    pub fn open(&self, key_id: &str, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn ust_is_prefixed_url_safe_and_unique() {
        let a = generate_ust();
        let b = generate_ust();
        assert!(a.starts_with(UST_PREFIX));
        assert!(is_well_formed_ust(&a));
        assert_ne!(a, b);
        assert_eq!(a.len(), UST_PREFIX.len() + TOKEN_ENCODED_LEN);
    }

    #[test]
    fn account_tokens_are_not_usts() {
        let token = generate_account_token();
        assert!(is_well_formed_account_token(&token));
        assert!(!is_well_formed_ust(&token));
        assert!(!is_well_formed_account_token(&generate_ust()));
        assert_ne!(token, generate_account_token());
    }

    #[test]
    fn malformed_usts_are_recognised() {
        let good = generate_ust();
        assert!(!is_well_formed_ust(""));
        assert!(!is_well_formed_ust(&good[1..]));
        assert!(!is_well_formed_ust(&format!("{good}x")));
        assert!(!is_well_formed_ust(&good.replace('_', "+")));
    }

    #[test]
    fn recovery_codes_are_80_random_bits_and_hash_as_typed() {
        let code = generate_recovery_code();
        assert_eq!(code.len(), 19, "{}", code.as_str());
        assert_eq!(code.matches('-').count(), 3);
        assert_ne!(code, generate_recovery_code());
        let hash = hash_recovery_code(&code).unwrap();
        let retyped = code.replace('-', " ").to_uppercase();
        assert_eq!(hash_recovery_code(&retyped), Some(hash));
        assert_eq!(hash_recovery_code("123456"), None);
        assert_eq!(hash_recovery_code(&format!("{}a", code.as_str())), None);
    }

    #[test]
    fn ust_hash_is_sha256_of_the_text() {
        let hash = hash_ust("abc");
        assert_eq!(
            hash.0[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "sha256(abc) starts ba7816bf"
        );
    }

    #[tokio::test]
    async fn argon2id_hashes_verify_and_unknown_users_never_match() {
        let pool = PasswordHasherPool::new(settings(2, 0)).unwrap();
        let hash = pool.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(pool.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!pool.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(!pool.verify("correct horse", None).await.unwrap());
    }

    fn settings(threads: usize, max_pending: usize) -> HasherSettings {
        HasherSettings {
            threads,
            max_pending,
        }
    }

    /// A job that holds its hasher thread until `release` is dropped or sent to.
    fn held(
        pool: &PasswordHasherPool,
    ) -> (
        std::sync::mpsc::Sender<()>,
        impl Future<Output = Result<(), CryptoError>>,
    ) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let job = pool.run(move |_| {
            let _ = wait.recv();
            Ok(())
        });
        (release, job)
    }

    /// The scheduling policy of each hasher thread of this process, from `/proc`.
    fn hasher_policies() -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if !name.starts_with("ssod-argon2") {
                continue;
            }
            let stat = std::fs::read_to_string(path.join("stat")).unwrap();
            // Fields after the parenthesised name: state is field 3, policy is field 41.
            let after_name = stat.rsplit_once(") ").unwrap().1;
            found.push(after_name.split(' ').nth(38).unwrap().parse().unwrap());
        }
        found
    }

    #[tokio::test]
    async fn hasher_threads_run_at_lower_priority() {
        let pool = PasswordHasherPool::new(settings(1, 0)).unwrap();
        // Each thread lowers itself as it starts; a finished job proves this one has started.
        pool.hash("warm up").await.unwrap();
        let policies = hasher_policies();
        assert!(!policies.is_empty());
        // 5: SCHED_IDLE.
        assert!(policies.iter().all(|&policy| policy == 5), "{policies:?}");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = PasswordHasherPool::new(settings(1, 1)).unwrap();
        let (release_running, running) = held(&pool);
        let (release_waiting, waiting) = held(&pool);
        let (mut running, mut waiting) = (Box::pin(running), Box::pin(waiting));
        assert!(futures::poll!(&mut running).is_pending());
        assert!(futures::poll!(&mut waiting).is_pending());
        let refused = pool.hash("one too many").await;
        assert!(
            matches!(refused, Err(CryptoError::Overloaded)),
            "{refused:?}"
        );
        drop((release_running, release_waiting));
        running.await.unwrap();
        waiting.await.unwrap();
        // Both permits came back with their jobs.
        assert!(pool.hash("admitted again").await.is_ok());
    }

    #[tokio::test]
    async fn a_job_whose_caller_gave_up_never_runs_and_frees_its_place() {
        let pool = PasswordHasherPool::new(settings(1, 1)).unwrap();
        let (release, running) = held(&pool);
        let mut running = Box::pin(running);
        assert!(futures::poll!(&mut running).is_pending());
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let mut abandoned = Box::pin(pool.run(move |_| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }));
        assert!(futures::poll!(&mut abandoned).is_pending());
        // The caller gives up (a cancelled call or a passed deadline drops its future) while
        // its job still waits behind the running one.
        drop(abandoned);
        drop(release);
        running.await.unwrap();
        // The single thread takes jobs in order: once this one has run, the abandoned one
        // was taken off the queue before it.
        pool.hash("after").await.unwrap();
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "abandoned work ran"
        );
        assert_eq!(pool.admission.available_permits(), 2);
    }

    #[test]
    fn key_ring_round_trips_and_binds_associated_data() {
        let ring = KeyRing::parse(&format!("k1:{}", key(1))).unwrap();
        let (id, sealed) = ring.seal(b"secret", b"owner/a").unwrap();
        assert_eq!(id, "k1");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(ring.open(&id, &sealed, b"owner/a").unwrap(), b"secret");
        assert!(ring.open(&id, &sealed, b"owner/b").is_err());
    }

    #[test]
    fn nonces_are_fresh_per_value() {
        let ring = KeyRing::ephemeral();
        let (_, a) = ring.seal(b"same", b"").unwrap();
        let (_, b) = ring.seal(b"same", b"").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn first_key_encrypts_and_old_keys_still_decrypt() {
        let old = KeyRing::parse(&format!("old:{}", key(1))).unwrap();
        let (old_id, sealed) = old.seal(b"v", b"").unwrap();
        let rolled = KeyRing::parse(&format!("new:{},old:{}", key(2), key(1))).unwrap();
        assert_eq!(rolled.open(&old_id, &sealed, b"").unwrap(), b"v");
        assert_eq!(rolled.seal(b"v", b"").unwrap().0, "new");
        assert!(matches!(
            KeyRing::parse(&format!("new:{}", key(2)))
                .unwrap()
                .open(&old_id, &sealed, b""),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_key_rings_are_refused() {
        assert!(KeyRing::parse("nocolon").is_err());
        assert!(KeyRing::parse("k:notbase64!").is_err());
        assert!(KeyRing::parse(&format!("k:{}", STANDARD.encode([0u8; 16]))).is_err());
        assert!(KeyRing::parse(&format!("k:{},k:{}", key(1), key(2))).is_err());
        assert!(matches!(
            KeyRing::parse("").unwrap().seal(b"v", b""),
            Err(CryptoError::NoKeys)
        ));
    }
}
