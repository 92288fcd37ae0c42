//! What the fuzz targets and the helper binaries share: the fixed keys,
//! a small byte reader for structured inputs (and its writer, for seeds),
//! and the `key_rows` input with its expected outcome.
//!
//! Built with `--cfg fuzzing` (cargo-fuzz sets it) so that the hooks of
//! `fieldseal::fuzzing` exist.

use fieldseal::fuzzing::{KeyRowIn, KeyringRowIn};
use fieldseal::{Keyring, SecretKey};

fieldseal::context!(
    /// The column every `open_ciphertext` value belongs to.
    pub Col = "users.email"
);
fieldseal::context!(
    /// Another column: a value of [`Col`] must not open as one of it.
    pub OtherCol = "users.name"
);

/// Data key 1.
pub const DATA_KEY_1: [u8; 32] = [7; 32];
/// Data key 2 (active).
pub const DATA_KEY_2: [u8; 32] = [8; 32];
/// Blind-index key 1.
pub const INDEX_KEY_1: [u8; 32] = [9; 32];
/// The master key of the `key_rows` target.
pub const MASTER: [u8; 32] = [0x4d; 32];
/// A master key that is not [`MASTER`].
pub const OTHER_MASTER: [u8; 32] = [0x4e; 32];

fn key(bytes: [u8; 32]) -> SecretKey {
    SecretKey::from_bytes(&mut bytes.to_owned())
}

/// Data keys 1 and 2 (2 active) and index key 1.
pub fn keyring() -> Keyring {
    Keyring::new(
        [(1, key(DATA_KEY_1)), (2, key(DATA_KEY_2))],
        [(1, key(INDEX_KEY_1))],
    )
    .expect("a data key")
}

/// Data key 1 only: what sealed values before key 2 was added.
pub fn old_keyring() -> Keyring {
    Keyring::new([(1, key(DATA_KEY_1))], [(1, key(INDEX_KEY_1))]).expect("a data key")
}

/// Reads a structured input; past the end every read gives zeros or empty.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader(data)
    }
    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }
    /// `n` bytes, fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.take(N);
        out[..got.len()].copy_from_slice(got);
        out
    }
    /// Little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
    /// Little-endian.
    pub fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.array())
    }
    /// Little-endian.
    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.array())
    }
    /// A byte string with a one-byte length.
    pub fn bytes(&mut self) -> Vec<u8> {
        let n = self.u8() as usize;
        self.take(n).to_vec()
    }
    /// A string with a one-byte length (lossy UTF-8).
    pub fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// Writes what [`Reader`] reads.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// Little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Little-endian.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Little-endian.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A byte string with a one-byte length (at most 255 bytes).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let v = &v[..v.len().min(255)];
        self.u8(v.len() as u8);
        self.0.extend_from_slice(v);
        self
    }
    /// Raw bytes.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
}

/// The key check value of a `key_rows` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// Of [`MASTER`].
    Valid,
    /// Of [`OTHER_MASTER`].
    OtherMaster,
    /// These bytes.
    Raw(Vec<u8>),
}

/// The key-list MAC of a `key_rows` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mac {
    /// The right one for the rows as built.
    Valid,
    /// `NULL`.
    Missing,
    /// These bytes.
    Raw(Vec<u8>),
    /// The right one with this bit flipped (mod 256).
    Flipped(u8),
}

/// The wrapped key of a key row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrap {
    /// The key `[b; 32]` wrapped for this row (when the row's purpose and
    /// id can be wrapped for at all; otherwise 60 bytes of `b`).
    Valid(u8),
    /// These bytes.
    Raw(Vec<u8>),
    /// Wrapped for another id.
    OtherId(u8),
    /// Wrapped for the other purpose.
    OtherPurpose(u8),
    /// Wrapped for another keyring (format 1 for a format-2 store, and the
    /// other way round).
    OtherKeyring(u8),
    /// Wrapped for this row, then shortened by 1 + (n mod 60) bytes.
    Truncated(u8, u8),
}

/// One key row of a `key_rows` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSpec {
    /// `data`, `index` or anything.
    pub purpose: String,
    /// Any id.
    pub id: i64,
    /// The wrapped key.
    pub wrap: Wrap,
    /// Any state.
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A `key_rows` input: a keyring row and key rows, described so that the
/// fuzzer reaches both the checks and what lies behind them (valid MACs,
/// valid wraps), which it could not forge from raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRowsInput {
    /// Argon2id memory, as stored.
    pub m: i32,
    /// Argon2id iterations, as stored.
    pub t: i32,
    /// Argon2id lanes, as stored.
    pub p: i32,
    /// Salt.
    pub salt: Vec<u8>,
    /// Key check value.
    pub key_check: KeyCheck,
    /// Keyring id (`None`: format 1).
    pub keyring_id: Option<Vec<u8>>,
    /// Version.
    pub version: i64,
    /// Key-list MAC.
    pub mac: Mac,
    /// Key rows (at most 16; later duplicates of a purpose and id are
    /// dropped, as the table's primary key would refuse them).
    pub rows: Vec<RowSpec>,
}

const MAX_ROWS: usize = 16;

impl KeyRowsInput {
    /// Decodes fuzzer bytes.
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let flags = r.u8();
        let (m, t, p) = (r.i32(), r.i32(), r.i32());
        let salt = r.bytes();
        let key_check = match flags & 3 {
            0 => KeyCheck::Valid,
            1 => KeyCheck::OtherMaster,
            _ => KeyCheck::Raw(r.bytes()),
        };
        let keyring_id = match (flags >> 2) & 3 {
            0 => None,
            _ => Some(r.bytes()),
        };
        let version = r.i64();
        let mac = match (flags >> 4) & 3 {
            0 => Mac::Valid,
            1 => Mac::Missing,
            2 => Mac::Raw(r.bytes()),
            _ => Mac::Flipped(r.u8()),
        };
        let n = (r.u8() as usize).min(MAX_ROWS);
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let purpose = match r.u8() {
                0 => "data".to_owned(),
                1 => "index".to_owned(),
                _ => r.string(),
            };
            let id = match r.u8() {
                small @ 0..=0x7f => i64::from(small),
                _ => r.i64(),
            };
            let wrap = match r.u8() % 6 {
                0 => Wrap::Valid(r.u8()),
                1 => Wrap::Raw(r.bytes()),
                2 => Wrap::OtherId(r.u8()),
                3 => Wrap::OtherPurpose(r.u8()),
                4 => Wrap::OtherKeyring(r.u8()),
                _ => Wrap::Truncated(r.u8(), r.u8()),
            };
            let state = r.string();
            let created_at = r.i64();
            rows.push(RowSpec {
                purpose,
                id,
                wrap,
                state,
                created_at,
            });
        }
        KeyRowsInput {
            m,
            t,
            p,
            salt,
            key_check,
            keyring_id,
            version,
            mac,
            rows,
        }
    }

    /// Encodes what [`decode`](Self::decode) reads (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let kc = match self.key_check {
            KeyCheck::Valid => 0,
            KeyCheck::OtherMaster => 1,
            KeyCheck::Raw(_) => 2,
        };
        let kid = u8::from(self.keyring_id.is_some());
        let mac = match self.mac {
            Mac::Valid => 0,
            Mac::Missing => 1,
            Mac::Raw(_) => 2,
            Mac::Flipped(_) => 3,
        };
        w.u8(kc | (kid << 2) | (mac << 4));
        w.i32(self.m).i32(self.t).i32(self.p).bytes(&self.salt);
        if let KeyCheck::Raw(b) = &self.key_check {
            w.bytes(b);
        }
        if let Some(id) = &self.keyring_id {
            w.bytes(id);
        }
        w.i64(self.version);
        match &self.mac {
            Mac::Raw(b) => {
                w.bytes(b);
            }
            Mac::Flipped(bit) => {
                w.u8(*bit);
            }
            _ => {}
        }
        w.u8(self.rows.len().min(MAX_ROWS) as u8);
        for row in self.rows.iter().take(MAX_ROWS) {
            match row.purpose.as_str() {
                "data" => {
                    w.u8(0);
                }
                "index" => {
                    w.u8(1);
                }
                other => {
                    w.u8(2).bytes(other.as_bytes());
                }
            }
            match u8::try_from(row.id) {
                Ok(small) if small <= 0x7f => {
                    w.u8(small);
                }
                _ => {
                    w.u8(0xff).i64(row.id);
                }
            }
            match &row.wrap {
                Wrap::Valid(b) => w.u8(0).u8(*b),
                Wrap::Raw(bytes) => w.u8(1).bytes(bytes),
                Wrap::OtherId(b) => w.u8(2).u8(*b),
                Wrap::OtherPurpose(b) => w.u8(3).u8(*b),
                Wrap::OtherKeyring(b) => w.u8(4).u8(*b),
                Wrap::Truncated(b, n) => w.u8(5).u8(*b).u8(*n),
            };
            w.bytes(row.state.as_bytes()).i64(row.created_at);
        }
        w.0
    }

    /// The key rows, with their wrapped keys, as a database would hold
    /// them (one per purpose and id), each with `Some(b)` when its wrap is
    /// the valid one for the row, of the key `[b; 32]`.
    pub fn key_rows(&self) -> Vec<(KeyRowIn, Option<u8>)> {
        let mut seen = std::collections::HashSet::new();
        let kid = self.keyring_id.as_deref();
        let mut out = Vec::new();
        for spec in &self.rows {
            if !seen.insert((spec.purpose.clone(), spec.id)) {
                continue;
            }
            let wrap = |keyring: Option<&[u8]>, purpose: &str, id: i64, b: u8| {
                u32::try_from(id).ok().and_then(|id| {
                    fieldseal::fuzzing::wrap_key(&MASTER, keyring, purpose, id, &[b; 32])
                })
            };
            let filler = |b: u8| vec![b; 60];
            let (wrapped, valid) = match &spec.wrap {
                Wrap::Valid(b) => match wrap(kid, &spec.purpose, spec.id, *b) {
                    Some(w) => (w, Some(*b)),
                    None => (filler(*b), None),
                },
                Wrap::Raw(bytes) => (bytes.clone(), None),
                Wrap::OtherId(b) => {
                    let other = if spec.id >= i64::from(u32::MAX) {
                        spec.id - 1
                    } else {
                        spec.id + 1
                    };
                    (
                        wrap(kid, &spec.purpose, other, *b).unwrap_or_else(|| filler(*b)),
                        None,
                    )
                }
                Wrap::OtherPurpose(b) => {
                    let other = if spec.purpose == "data" {
                        "index"
                    } else {
                        "data"
                    };
                    (
                        wrap(kid, other, spec.id, *b).unwrap_or_else(|| filler(*b)),
                        None,
                    )
                }
                Wrap::OtherKeyring(b) => {
                    let other: Option<&[u8]> = match kid {
                        Some(_) => None,
                        None => Some(&[0u8; 16]),
                    };
                    (
                        wrap(other, &spec.purpose, spec.id, *b).unwrap_or_else(|| filler(*b)),
                        None,
                    )
                }
                Wrap::Truncated(b, n) => {
                    let mut w = wrap(kid, &spec.purpose, spec.id, *b).unwrap_or_else(|| filler(*b));
                    let cut = 1 + usize::from(*n) % 60;
                    w.truncate(w.len().saturating_sub(cut));
                    (w, None)
                }
            };
            out.push((
                KeyRowIn {
                    purpose: spec.purpose.clone(),
                    id: spec.id,
                    wrapped,
                    state: spec.state.clone(),
                    created_at: spec.created_at,
                },
                valid,
            ));
        }
        out
    }

    /// The keyring row for `rows` (its MAC is computed over them).
    pub fn keyring_row(&self, rows: &[KeyRowIn]) -> KeyringRowIn {
        let key_check = match &self.key_check {
            KeyCheck::Valid => fieldseal::fuzzing::key_check_value(&MASTER),
            KeyCheck::OtherMaster => fieldseal::fuzzing::key_check_value(&OTHER_MASTER),
            KeyCheck::Raw(b) => b.clone(),
        };
        let valid_mac = || {
            fieldseal::fuzzing::key_list_mac(
                &MASTER,
                self.keyring_id.as_deref().unwrap_or_default(),
                self.version,
                rows,
            )
        };
        let key_list_mac = match &self.mac {
            Mac::Valid => Some(valid_mac()),
            Mac::Missing => None,
            Mac::Raw(b) => Some(b.clone()),
            Mac::Flipped(bit) => {
                let mut mac = valid_mac();
                mac[usize::from(*bit / 8) % 32] ^= 1 << (bit % 8);
                Some(mac)
            }
        };
        KeyringRowIn {
            kdf_salt: self.salt.clone(),
            kdf_m_cost: self.m,
            kdf_t_cost: self.t,
            kdf_p_cost: self.p,
            key_check,
            keyring_id: self.keyring_id.clone(),
            version: self.version,
            key_list_mac,
        }
    }
}

/// What `KeyStore::unlock` must say about a key table, by its
/// documentation: the checks in the order it makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Unlocks.
    Ok,
    /// [`fieldseal::KeyStoreError::KdfParams`].
    KdfParams,
    /// [`fieldseal::Error::WrongMasterKey`].
    WrongMasterKey,
    /// [`fieldseal::KeyStoreError::KeyIdOutOfRange`].
    KeyIdOutOfRange(i64),
    /// [`fieldseal::Error::KeyTableAltered`].
    KeyTableAltered,
    /// [`fieldseal::KeyStoreError::UnknownPurpose`].
    UnknownPurpose(String),
    /// [`fieldseal::Error::CorruptWrappedKey`].
    CorruptWrappedKey(String, u32),
    /// [`fieldseal::KeyStoreError::NoDataKey`].
    NoDataKey,
}

impl Expected {
    /// The expectation for `row` and `rows` (with each wrap's validity).
    pub fn of(row: &KeyringRowIn, rows: &[(KeyRowIn, Option<u8>)]) -> Self {
        let mut sorted: Vec<&(KeyRowIn, Option<u8>)> = rows.iter().collect();
        sorted.sort_by(|a, b| (&a.0.purpose, a.0.id).cmp(&(&b.0.purpose, b.0.id)));
        let params = [row.kdf_m_cost, row.kdf_t_cost, row.kdf_p_cost];
        if params.iter().any(|v| *v < 0) {
            return Expected::KdfParams;
        }
        let params = fieldseal::KdfParams {
            m_cost_kib: row.kdf_m_cost as u32,
            t_cost: row.kdf_t_cost as u32,
            p_cost: row.kdf_p_cost as u32,
        };
        let (lo, hi) = (fieldseal::KdfParams::FLOOR, fieldseal::KdfParams::CEILING);
        if !(lo.m_cost_kib..=hi.m_cost_kib).contains(&params.m_cost_kib)
            || !(lo.t_cost..=hi.t_cost).contains(&params.t_cost)
            || !(lo.p_cost..=hi.p_cost).contains(&params.p_cost)
        {
            return Expected::KdfParams;
        }
        if row.key_check != fieldseal::fuzzing::key_check_value(&MASTER) {
            return Expected::WrongMasterKey;
        }
        if let Some(kid) = &row.keyring_id {
            if let Some((r, _)) = sorted.iter().find(|(r, _)| u32::try_from(r.id).is_err()) {
                return Expected::KeyIdOutOfRange(r.id);
            }
            let plain: Vec<KeyRowIn> = rows.iter().map(|(r, _)| r.clone()).collect();
            let mac = fieldseal::fuzzing::key_list_mac(&MASTER, kid, row.version, &plain);
            if row.key_list_mac.as_deref() != Some(mac.as_slice()) {
                return Expected::KeyTableAltered;
            }
        }
        for (r, valid) in &sorted {
            if r.purpose != "data" && r.purpose != "index" {
                return Expected::UnknownPurpose(r.purpose.clone());
            }
            let Ok(id) = u32::try_from(r.id) else {
                return Expected::KeyIdOutOfRange(r.id);
            };
            if valid.is_none() {
                return Expected::CorruptWrappedKey(r.purpose.clone(), id);
            }
        }
        if !rows.iter().any(|(r, _)| r.purpose == "data") {
            return Expected::NoDataKey;
        }
        Expected::Ok
    }

    /// Whether `result` is what was expected.
    pub fn matches(&self, result: &Result<Keyring, fieldseal::Error>) -> bool {
        use fieldseal::{Error, KeyStoreError as K};
        match (self, result) {
            (Expected::Ok, Ok(_)) => true,
            (Expected::KdfParams, Err(Error::KeyStore(K::KdfParams(_)))) => true,
            (Expected::WrongMasterKey, Err(Error::WrongMasterKey)) => true,
            (Expected::KeyIdOutOfRange(a), Err(Error::KeyStore(K::KeyIdOutOfRange(b)))) => a == b,
            (Expected::KeyTableAltered, Err(Error::KeyTableAltered)) => true,
            (Expected::UnknownPurpose(a), Err(Error::KeyStore(K::UnknownPurpose(b)))) => a == b,
            (Expected::CorruptWrappedKey(p, i), Err(Error::CorruptWrappedKey { purpose, id })) => {
                p == purpose && i == id
            }
            (Expected::NoDataKey, Err(Error::KeyStore(K::NoDataKey))) => true,
            _ => false,
        }
    }
}
