//! The listing's cursor: opaque to clients, and rejected when it was not made here.
//!
//! A [`Cursor`] is a position in one listing: the filter it belongs to and the last
//! [`ListKey`] a page returned. Because the merge of the shards emits keys in global
//! order (see `docs/DESIGN.md`), that one key is the position in every shard, so a cursor
//! has a fixed, small size whatever the shard count.
//!
//! On the wire it is `base64url(payload ‖ tag)` without padding, 78 characters:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | format version, 1 |
//! | 1 | filter: 0 = every status, 1..=4 = accepted, processing, succeeded, failed |
//! | 2..10 | `accepted_at` of the last item, microseconds since the Unix epoch, i64 big-endian |
//! | 10..26 | its ticket id, the UUID's 16 bytes |
//! | 26..58 | HMAC-SHA256 over `"refund-status-cursor\0" ‖ bytes 0..26`, with the [`CursorKey`] |
//!
//! The tag is what makes it tamper-proof: without the key nobody can make a cursor that
//! points elsewhere (a client walking someone's listing from a forged position, or
//! handing the store a key of its own choosing). The filter is inside the tag, so a cursor
//! from `?status=failed` is refused on `?status=succeeded` rather than silently skipping
//! items. Decoding never panics, whatever it is given (there is a property test).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{record::RefundStatus, table::ListKey};
use crate::{
    command::TicketId,
    secret::{SecretError, secret_string},
};

/// A position in a listing, only made by a store's page or by [`CursorCodec::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    filter: Option<RefundStatus>,
    after: ListKey,
}

impl Cursor {
    pub(crate) fn new(filter: Option<RefundStatus>, after: ListKey) -> Self {
        Self { filter, after }
    }

    /// The `status` filter of the listing this cursor continues (`None`: every status).
    pub fn filter(&self) -> Option<RefundStatus> {
        self.filter
    }

    /// The next page holds only items strictly after (older than) this key.
    pub fn after(&self) -> &ListKey {
        &self.after
    }
}

/// The secret the cursor's tag is made with. All instances of both functions must share
/// it (any of them may decode a cursor another made); changing it invalidates every
/// cursor handed out, which only makes clients start their listing again.
#[derive(Clone)]
pub struct CursorKey(Hmac<Sha256>);

/// A key shorter than [`CursorKey::MIN_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor key must be at least {} bytes", CursorKey::MIN_LEN)]
pub struct WeakCursorKey;

impl CursorKey {
    /// HMAC-SHA256's own strength: a shorter key would be the weak point.
    pub const MIN_LEN: usize = 32;

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeakCursorKey> {
        if bytes.len() < Self::MIN_LEN {
            return Err(WeakCursorKey);
        }
        // HMAC takes a key of any length; the error cannot happen past the check above.
        <Hmac<Sha256> as KeyInit>::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| WeakCursorKey)
    }

    /// A key for this process alone: cursors it signs are refused by any other process
    /// (another execution environment, a restarted `cargo lambda watch`). A whole HMAC-SHA256 block (64 bytes, so HMAC takes it as it is) from four v4
    /// UUIDs, 488 of its bits from the OS's random source.
    pub fn random() -> Self {
        let mut key = hmac::digest::Key::<Hmac<Sha256>>::default();
        for chunk in key.chunks_exact_mut(16) {
            chunk.copy_from_slice(Uuid::new_v4().as_bytes());
        }
        Self(<Hmac<Sha256> as KeyInit>::new(&key))
    }
}

impl CursorKey {
    /// Reads the key from the secret `arn` (the template generates it). `refund-api` reads
    /// it at its first listing, not at start-up: the 202 path, which every cold start
    /// serves first, never waits for it.
    pub async fn read(
        client: &aws_sdk_secretsmanager::Client,
        arn: &str,
    ) -> Result<Self, SecretError> {
        let value = secret_string(client, arn).await?;
        Self::from_bytes(value.as_bytes()).map_err(|e| SecretError::Unusable(e.to_string()))
    }
}

/// Never prints the key.
impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// Why a `cursor` query parameter was refused; every case is the client's 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not base64url, too long or short, or not a layout this code writes.
    #[error("cursor is malformed")]
    Malformed,
    /// The tag does not match: altered, truncated to the right length by chance, or made
    /// with another key.
    #[error("cursor was not issued by this service or has been altered")]
    Forged,
    /// A genuine cursor of a listing with another `status` filter.
    #[error("cursor belongs to a listing with another status filter")]
    WrongFilter,
}

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"refund-status-cursor\0";
const PAYLOAD_LEN: usize = 26;
const TAG_LEN: usize = 32;
const CURSOR_LEN: usize = PAYLOAD_LEN + TAG_LEN;
/// The encoded length; anything longer is refused before it is decoded.
pub const ENCODED_LEN: usize = (CURSOR_LEN * 4).div_ceil(3);

/// Encodes and checks cursors with one key.
#[derive(Debug, Clone)]
pub struct CursorCodec {
    key: CursorKey,
}

impl CursorCodec {
    pub fn new(key: CursorKey) -> Self {
        Self { key }
    }

    pub fn encode(&self, cursor: &Cursor) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_LEN);
        bytes.push(VERSION);
        bytes.push(filter_byte(cursor.filter));
        let micros = cursor.after.accepted_at().unix_timestamp_nanos() / 1_000;
        // Years 1..=9999 (see `stamp::normalise`) are ±2.6e17 µs, far inside an i64, so
        // the clamp never bites and the cast after it is lossless.
        let micros = micros.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
        bytes.extend_from_slice(&micros.to_be_bytes());
        bytes.extend_from_slice(cursor.after.ticket_id().as_uuid().as_bytes());
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor in `text`, if this service made it for a listing with `filter`.
    pub fn decode(&self, text: &str, filter: Option<RefundStatus>) -> Result<Cursor, CursorError> {
        if text.len() != ENCODED_LEN {
            return Err(CursorError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError::Malformed)?;
        if bytes.len() != CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        self.mac(payload)
            .verify_slice(tag)
            .map_err(|_| CursorError::Forged)?;
        // Authentic from here on: what follows only fails for a layout of another version.
        let [version, filter_code, rest @ ..] = payload else {
            return Err(CursorError::Malformed);
        };
        if *version != VERSION {
            return Err(CursorError::Malformed);
        }
        let cursor_filter = match filter_code {
            0 => None,
            code => Some(
                *RefundStatus::ALL
                    .get(usize::from(*code) - 1)
                    .ok_or(CursorError::Malformed)?,
            ),
        };
        if cursor_filter != filter {
            return Err(CursorError::WrongFilter);
        }
        let (micros, uuid) = rest.split_at(8);
        let micros = i64::from_be_bytes(micros.try_into().map_err(|_| CursorError::Malformed)?);
        let accepted_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map_err(|_| CursorError::Malformed)?;
        let ticket_id = TicketId::from(Uuid::from_slice(uuid).map_err(|_| CursorError::Malformed)?);
        Ok(Cursor::new(filter, ListKey::new(accepted_at, ticket_id)))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.key.0.clone();
        mac.update(DOMAIN);
        mac.update(payload);
        mac
    }
}

fn filter_byte(filter: Option<RefundStatus>) -> u8 {
    match filter {
        None => 0,
        Some(RefundStatus::Accepted) => 1,
        Some(RefundStatus::Processing) => 2,
        Some(RefundStatus::Succeeded) => 3,
        Some(RefundStatus::Failed) => 4,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn codec(key: u8) -> CursorCodec {
        CursorCodec::new(CursorKey::from_bytes(&[key; 32]).unwrap())
    }

    fn cursor(filter: Option<RefundStatus>) -> Cursor {
        Cursor::new(
            filter,
            ListKey::new(
                datetime!(2026-11-23 06:15:30.123456 UTC),
                "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            ),
        )
    }

    #[test]
    fn cursors_round_trip_for_every_filter() {
        for filter in std::iter::once(None).chain(RefundStatus::ALL.map(Some)) {
            let text = codec(1).encode(&cursor(filter));
            assert_eq!(text.len(), ENCODED_LEN);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(codec(1).decode(&text, filter), Ok(cursor(filter)));
        }
    }

    #[test]
    fn every_altered_character_is_refused() {
        let text = codec(1).encode(&cursor(Some(RefundStatus::Failed)));
        for i in 0..text.len() {
            for replacement in ['A', 'z', '0', '-', '_'] {
                let mut altered = text.clone().into_bytes();
                if altered[i] == replacement as u8 {
                    continue;
                }
                altered[i] = replacement as u8;
                let altered = String::from_utf8(altered).unwrap();
                let result = codec(1).decode(&altered, Some(RefundStatus::Failed));
                assert!(
                    matches!(result, Err(CursorError::Forged | CursorError::Malformed)),
                    "{i} {replacement}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn a_cursor_is_refused_by_another_key_filter_or_length() {
        let text = codec(1).encode(&cursor(None));
        assert_eq!(codec(2).decode(&text, None), Err(CursorError::Forged));
        assert_eq!(
            codec(1).decode(&text, Some(RefundStatus::Accepted)),
            Err(CursorError::WrongFilter)
        );
        assert_eq!(
            codec(1).decode(&text[..text.len() - 1], None),
            Err(CursorError::Malformed)
        );
        assert_eq!(
            codec(1).decode(&format!("{text}A"), None),
            Err(CursorError::Malformed)
        );
        assert_eq!(codec(1).decode("", None), Err(CursorError::Malformed));
        assert_eq!(
            codec(1).decode(&"=".repeat(ENCODED_LEN), None),
            Err(CursorError::Malformed)
        );
    }

    #[test]
    fn random_keys_differ() {
        let [one, two] = [CursorKey::random(), CursorKey::random()].map(CursorCodec::new);
        let text = one.encode(&cursor(None));
        assert_eq!(one.decode(&text, None), Ok(cursor(None)));
        assert_eq!(two.decode(&text, None), Err(CursorError::Forged));
    }

    #[test]
    fn keys_must_be_long_enough_and_never_print() {
        assert_eq!(CursorKey::from_bytes(&[7; 31]).unwrap_err(), WeakCursorKey);
        let key = CursorKey::from_bytes(&[7; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "CursorKey(..)");
    }

    proptest! {
        #[test]
        fn decoding_any_text_never_panics(text in ".{0,200}") {
            let _ = codec(1).decode(&text, None);
        }

        #[test]
        fn decoding_any_bytes_of_the_right_length_never_panics_nor_passes(
            bytes in proptest::collection::vec(any::<u8>(), CURSOR_LEN)
        ) {
            let text = URL_SAFE_NO_PAD.encode(bytes);
            prop_assert!(codec(1).decode(&text, None).is_err());
        }
    }
}
