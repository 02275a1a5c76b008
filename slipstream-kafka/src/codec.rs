//! Codecs: how keys and values become bytes on a topic, and back.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use slipstream_core::BoxError;

/// Turns values of type `T` into bytes and back. Implement it for custom formats (the `avro`
/// example implements one with the `apache-avro` crate).
///
/// ```
/// use slipstream::{BoxError, Codec};
///
/// /// Big-endian `u64`s.
/// struct U64Codec;
///
/// impl Codec<u64> for U64Codec {
///     fn encode(&self, value: &u64) -> Result<Vec<u8>, BoxError> {
///         Ok(value.to_be_bytes().to_vec())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<u64, BoxError> {
///         Ok(u64::from_be_bytes(bytes.try_into()?))
///     }
/// }
///
/// assert_eq!(U64Codec.decode(&U64Codec.encode(&7).unwrap()).unwrap(), 7);
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// The bytes of `value`.
    fn encode(&self, value: &T) -> Result<Vec<u8>, BoxError>;
    /// The value these bytes hold; an error for bytes this codec cannot read.
    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError>;

    /// The payload of `value` as produced: `None` for a null payload (a tombstone). Every value
    /// has bytes unless the codec says otherwise ([`Nullable`]).
    fn encode_nullable(&self, value: &T) -> Result<Option<Vec<u8>>, BoxError> {
        self.encode(value).map(Some)
    }

    /// The value of a payload as consumed; `None` is a null payload (a tombstone), read as
    /// empty bytes unless the codec says otherwise ([`Nullable`]).
    fn decode_nullable(&self, bytes: Option<&[u8]>) -> Result<T, BoxError> {
        self.decode(bytes.unwrap_or_default())
    }
}

/// Null payloads (tombstones) as `None`: the codec of `Option<T>` values, around the codec of
/// `T`. `Topic<String, Option<String>>` uses it by default; for other codecs, wrap them
/// (`Nullable::new(JsonCodec::<T>::new())`). A tombstone tells a compacted topic to delete
/// its key.
///
/// ```
/// use slipstream::{Codec, Nullable, Utf8};
///
/// let codec = Nullable::new(Utf8);
/// assert_eq!(codec.encode_nullable(&None).unwrap(), None);
/// assert_eq!(codec.decode_nullable(None).unwrap(), None);
/// assert_eq!(codec.decode_nullable(Some(b"")).unwrap(), Some(String::new()));
/// ```
pub struct Nullable<T>(std::sync::Arc<dyn Codec<T>>);

impl<T: 'static> Nullable<T> {
    /// `codec` for the values that are not null.
    pub fn new(codec: impl Codec<T>) -> Self {
        Nullable(std::sync::Arc::new(codec))
    }
}

impl<T> std::fmt::Debug for Nullable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nullable")
    }
}

impl<T: 'static> Codec<Option<T>> for Nullable<T> {
    /// A key, or a value inside a payload that is not null: `None` has no bytes.
    fn encode(&self, value: &Option<T>) -> Result<Vec<u8>, BoxError> {
        match value {
            Some(value) => self.0.encode(value),
            None => Ok(Vec::new()),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Option<T>, BoxError> {
        self.0.decode(bytes).map(Some)
    }

    fn encode_nullable(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, BoxError> {
        value.as_ref().map(|v| self.0.encode(v)).transpose()
    }

    fn decode_nullable(&self, bytes: Option<&[u8]>) -> Result<Option<T>, BoxError> {
        bytes.map(|b| self.0.decode(b)).transpose()
    }
}

/// UTF-8 text: the default codec of `String` keys and values.
///
/// ```
/// use slipstream::{Codec, Utf8};
/// assert_eq!(Utf8.decode(b"fish").unwrap(), "fish");
/// assert!(Utf8.decode(&[0xff]).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8;

impl Codec<String> for Utf8 {
    fn encode(&self, value: &String) -> Result<Vec<u8>, BoxError> {
        Ok(value.as_bytes().to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, BoxError> {
        Ok(std::str::from_utf8(bytes)?.to_owned())
    }
}

/// Raw bytes, unchanged: the default codec of `Vec<u8>` keys and values.
///
/// ```
/// use slipstream::{Codec, Raw};
/// assert_eq!(Raw.decode(&[1, 2]).unwrap(), vec![1, 2]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl Codec<Vec<u8>> for Raw {
    fn encode(&self, value: &Vec<u8>) -> Result<Vec<u8>, BoxError> {
        Ok(value.clone())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(bytes.to_vec())
    }
}

/// JSON through serde, for any `Serialize + DeserializeOwned` type.
///
/// ```
/// use slipstream::{Codec, JsonCodec};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Catch { fish: String }
///
/// let codec = JsonCodec::new();
/// let bytes = codec.encode(&Catch { fish: "🐟".into() }).unwrap();
/// assert_eq!(String::from_utf8(bytes.clone()).unwrap(), r#"{"fish":"🐟"}"#);
/// assert_eq!(codec.decode(&bytes).unwrap(), Catch { fish: "🐟".into() });
/// ```
pub struct JsonCodec<T = serde_json::Value>(PhantomData<fn(T) -> T>);

impl<T> JsonCodec<T> {
    /// A JSON codec.
    pub const fn new() -> Self {
        JsonCodec(PhantomData)
    }
}

impl<T> Default for JsonCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for JsonCodec<T> {}

impl<T> std::fmt::Debug for JsonCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonCodec")
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for JsonCodec<T> {
    fn encode(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Types with a codec chosen when none is given: `String` (UTF-8), `Vec<u8>` (raw),
/// `serde_json::Value` (JSON), and `Option`s of them (a null payload, a tombstone, is `None`).
pub trait DefaultCodec: Sized + 'static {
    /// The codec.
    fn default_codec() -> std::sync::Arc<dyn Codec<Self>>;
}

impl DefaultCodec for String {
    fn default_codec() -> std::sync::Arc<dyn Codec<Self>> {
        std::sync::Arc::new(Utf8)
    }
}

impl DefaultCodec for Vec<u8> {
    fn default_codec() -> std::sync::Arc<dyn Codec<Self>> {
        std::sync::Arc::new(Raw)
    }
}

impl DefaultCodec for serde_json::Value {
    fn default_codec() -> std::sync::Arc<dyn Codec<Self>> {
        std::sync::Arc::new(JsonCodec::new())
    }
}

impl<T: DefaultCodec> DefaultCodec for Option<T> {
    fn default_codec() -> std::sync::Arc<dyn Codec<Self>> {
        std::sync::Arc::new(Nullable(T::default_codec()))
    }
}
