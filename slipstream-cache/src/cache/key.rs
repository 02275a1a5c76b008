//! Order-preserving key encoding: the bytes of keys sort as the keys do, so RocksDB's ordered
//! iteration is the keys' natural order — integers (negative too) and floats numerically,
//! timestamps chronologically, strings lexicographically, tuples component by component.

use chrono::{DateTime, NaiveDateTime, Utc};

/// A key whose encoding sorts like the key: what a [`Cache`](crate::Cache) is keyed by.
///
/// Implemented for the integers, `f32`/`f64`, `bool`, `char`, `String`, `Vec<u8>`,
/// `chrono::DateTime<Utc>`, `chrono::NaiveDateTime` and tuples of two or three of these.
///
/// ```
/// use slipstream::CacheKey;
///
/// let mut keys = vec![3.5f64, -2.0, 0.0, -0.5, 10.0];
/// let mut encoded: Vec<Vec<u8>> = keys.iter().map(|k| k.to_key_bytes()).collect();
/// encoded.sort();
/// keys.sort_by(f64::total_cmp);
/// let decoded: Vec<f64> = encoded.iter().map(|b| f64::from_key_bytes(b).unwrap()).collect();
/// assert_eq!(decoded, keys);
/// ```
pub trait CacheKey: Sized {
    /// Appends the encoding of `self` as a whole key.
    fn encode_key(&self, out: &mut Vec<u8>);

    /// Reads a whole key.
    fn decode_key(bytes: &[u8]) -> Result<Self, KeyError> {
        let (value, rest) = Self::decode_nested(bytes)?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(KeyError::new(std::any::type_name::<Self>(), "too long"))
        }
    }

    /// Appends the encoding of `self` inside a tuple key; it must tell where it ends.
    fn encode_nested(&self, out: &mut Vec<u8>) {
        self.encode_key(out);
    }

    /// Reads a key inside a tuple key; returns it and the bytes after it.
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError>;

    /// The encoding as a new vector.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_key(&mut out);
        out
    }

    /// Reads a whole key (an alias of [`decode_key`](CacheKey::decode_key)).
    fn from_key_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::decode_key(bytes)
    }
}

/// Something that encodes exactly like a key of type `K` (a `&str` for a `String` key), so that
/// lookups need no owned key.
pub trait KeyLike<K> {
    /// Appends the encoding.
    fn encode_like(&self, out: &mut Vec<u8>);
}

impl<K: CacheKey> KeyLike<K> for K {
    fn encode_like(&self, out: &mut Vec<u8>) {
        self.encode_key(out);
    }
}

impl KeyLike<String> for str {
    fn encode_like(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl KeyLike<String> for &str {
    fn encode_like(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

/// The first component of a pair key, as a prefix: `cache.items().prefix(&(user,))` yields the
/// entries of one user of a `Cache<(String, i64), V>`, in order.
impl<A: CacheKey, B: CacheKey> KeyLike<(A, B)> for (A,) {
    fn encode_like(&self, out: &mut Vec<u8>) {
        self.0.encode_nested(out);
    }
}

/// The first components of a triple key, as a prefix.
impl<A: CacheKey, B: CacheKey, C: CacheKey> KeyLike<(A, B, C)> for (A,) {
    fn encode_like(&self, out: &mut Vec<u8>) {
        self.0.encode_nested(out);
    }
}

/// The first two components of a triple key, as a prefix.
impl<A: CacheKey, B: CacheKey, C: CacheKey> KeyLike<(A, B, C)> for (A, B) {
    fn encode_like(&self, out: &mut Vec<u8>) {
        self.0.encode_nested(out);
        self.1.encode_nested(out);
    }
}

impl KeyLike<Vec<u8>> for [u8] {
    fn encode_like(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// Bytes that are not the encoding of a key of the expected type.
#[derive(Debug, thiserror::Error)]
#[error("not a valid {kind} key: {reason}")]
pub struct KeyError {
    kind: &'static str,
    reason: &'static str,
}

impl KeyError {
    fn new(kind: &'static str, reason: &'static str) -> Self {
        KeyError { kind, reason }
    }
}

fn fixed<const N: usize>(bytes: &[u8], kind: &'static str) -> Result<([u8; N], usize), KeyError> {
    let head = bytes
        .get(..N)
        .ok_or_else(|| KeyError::new(kind, "too short"))?;
    Ok((head.try_into().expect("N bytes"), N))
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl CacheKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
                let (head, n) = fixed::<{ size_of::<$t>() }>(bytes, stringify!($t))?;
                Ok((<$t>::from_be_bytes(head), &bytes[n..]))
            }
        }
    )*};
}

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl CacheKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit puts negative numbers before positive ones.
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
            fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
                let (head, n) = fixed::<{ size_of::<$t>() }>(bytes, stringify!($t))?;
                let value = (<$u>::from_be_bytes(head) ^ (1 << (<$u>::BITS - 1))) as $t;
                Ok((value, &bytes[n..]))
            }
        }
    )*};
}

macro_rules! float {
    ($($t:ty => $u:ty),*) => {$(
        impl CacheKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Negative numbers: invert every bit (larger magnitudes sort first); positive
                // numbers: set the sign bit (they sort after every negative one).
                // -0.0 is stored as 0.0: they are equal keys.
                let bits = if *self == 0.0 { 0 } else { self.to_bits() };
                let sign = 1 << (<$u>::BITS - 1);
                let ordered = if bits & sign != 0 { !bits } else { bits | sign };
                out.extend_from_slice(&ordered.to_be_bytes());
            }
            fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
                let (head, n) = fixed::<{ size_of::<$t>() }>(bytes, stringify!($t))?;
                let ordered = <$u>::from_be_bytes(head);
                let sign = 1 << (<$u>::BITS - 1);
                let bits = if ordered & sign != 0 { ordered & !sign } else { !ordered };
                Ok((<$t>::from_bits(bits), &bytes[n..]))
            }
        }
    )*};
}

unsigned!(u8, u16, u32, u64, u128, usize);
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128, isize => usize);
float!(f32 => u32, f64 => u64);

impl CacheKey for bool {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, KeyError> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(KeyError::new("bool", "not 0 or 1")),
        }
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        let (head, rest) = bytes
            .split_first()
            .ok_or_else(|| KeyError::new("bool", "too short"))?;
        Ok((*head != 0, rest))
    }
}

impl CacheKey for char {
    fn encode_key(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode_key(out);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, KeyError> {
        char::from_u32(u32::decode_key(bytes)?)
            .ok_or_else(|| KeyError::new("char", "not a scalar value"))
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        let (code, rest) = u32::decode_nested(bytes)?;
        let c = char::from_u32(code).ok_or_else(|| KeyError::new("char", "not a scalar value"))?;
        Ok((c, rest))
    }
}

/// Inside a tuple, bytes are escaped (`0x00` → `0x00 0xFF`) and end with `0x00 0x01`, which
/// keeps their order and tells where they end.
fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

fn decode_escaped<'a>(
    bytes: &'a [u8],
    kind: &'static str,
) -> Result<(Vec<u8>, &'a [u8]), KeyError> {
    let mut value = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (0, Some(0xFF)) => {
                value.push(0);
                i += 2;
            }
            (0, Some(1)) => return Ok((value, &bytes[i + 2..])),
            (0, _) => return Err(KeyError::new(kind, "bad escape")),
            (b, _) => {
                value.push(b);
                i += 1;
            }
        }
    }
    Err(KeyError::new(kind, "unterminated"))
}

impl CacheKey for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, KeyError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| KeyError::new("String", "not UTF-8"))
    }
    fn encode_nested(&self, out: &mut Vec<u8>) {
        encode_escaped(self.as_bytes(), out);
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        let (raw, rest) = decode_escaped(bytes, "String")?;
        let s = String::from_utf8(raw).map_err(|_| KeyError::new("String", "not UTF-8"))?;
        Ok((s, rest))
    }
}

impl CacheKey for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, KeyError> {
        Ok(bytes.to_vec())
    }
    fn encode_nested(&self, out: &mut Vec<u8>) {
        encode_escaped(self, out);
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        decode_escaped(bytes, "Vec<u8>")
    }
}

/// Timestamps: signed seconds, then nanoseconds (12 bytes), in time order, before 1970 too.
impl CacheKey for DateTime<Utc> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.timestamp().encode_key(out);
        self.timestamp_subsec_nanos().encode_key(out);
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        let (secs, rest) = i64::decode_nested(bytes)?;
        let (nanos, rest) = u32::decode_nested(rest)?;
        let t = DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| KeyError::new("DateTime", "out of range"))?;
        Ok((t, rest))
    }
}

impl CacheKey for NaiveDateTime {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.and_utc().encode_key(out);
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        DateTime::<Utc>::decode_nested(bytes).map(|(t, rest)| (t.naive_utc(), rest))
    }
}

impl<A: CacheKey, B: CacheKey> CacheKey for (A, B) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_nested(out);
        self.1.encode_nested(out);
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        let (a, rest) = A::decode_nested(bytes)?;
        let (b, rest) = B::decode_nested(rest)?;
        Ok(((a, b), rest))
    }
}

impl<A: CacheKey, B: CacheKey, C: CacheKey> CacheKey for (A, B, C) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_nested(out);
        self.1.encode_nested(out);
        self.2.encode_nested(out);
    }
    fn decode_nested(bytes: &[u8]) -> Result<(Self, &[u8]), KeyError> {
        let (a, rest) = A::decode_nested(bytes)?;
        let (b, rest) = B::decode_nested(rest)?;
        let (c, rest) = C::decode_nested(rest)?;
        Ok(((a, b, c), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_by_bytes<K: CacheKey + Clone>(keys: &[K]) -> Vec<K> {
        let mut encoded: Vec<Vec<u8>> = keys.iter().map(CacheKey::to_key_bytes).collect();
        encoded.sort();
        encoded.iter().map(|b| K::decode_key(b).unwrap()).collect()
    }

    #[test]
    fn integers_sort_numerically_negative_ones_too() {
        let keys = [5i64, -1, i64::MIN, 0, i64::MAX, -300, 42];
        let mut expected = keys.to_vec();
        expected.sort();
        assert_eq!(sorted_by_bytes(&keys), expected);
        let small = [3i8, -128, 127, -1, 0];
        let mut expected = small.to_vec();
        expected.sort();
        assert_eq!(sorted_by_bytes(&small), expected);
        assert_eq!(sorted_by_bytes(&[300u32, 2, 70_000]), [2, 300, 70_000]);
    }

    #[test]
    fn floats_sort_numerically() {
        let keys = [
            1.5f64,
            -0.25,
            f64::NEG_INFINITY,
            0.0,
            -1e300,
            3e-10,
            f64::INFINITY,
            -3e-10,
        ];
        let mut expected = keys.to_vec();
        expected.sort_by(f64::total_cmp);
        assert_eq!(sorted_by_bytes(&keys), expected);
        let f32s = [2.5f32, -7.0, 0.5];
        assert_eq!(sorted_by_bytes(&f32s), [-7.0, 0.5, 2.5]);
    }

    #[test]
    fn strings_sort_lexicographically() {
        let keys: Vec<String> = ["b", "a", "ab", "", "é", "Z"].map(String::from).to_vec();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(sorted_by_bytes(&keys), expected);
    }

    #[test]
    fn timestamps_sort_chronologically_before_1970_too() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let keys = [
            at("2025-01-01T10:00:00Z"),
            at("1969-12-31T23:59:59.5Z"),
            at("2025-01-01T09:59:59.999Z"),
            at("1900-01-01T00:00:00Z"),
        ];
        let mut expected = keys.to_vec();
        expected.sort();
        assert_eq!(sorted_by_bytes(&keys), expected);
    }

    #[test]
    fn tuples_sort_component_by_component() {
        let keys: Vec<(String, i32)> = vec![
            ("b".into(), -1),
            ("a\0b".into(), 5),
            ("a".into(), 10),
            ("a".into(), -10),
            ("ab".into(), 0),
        ];
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(sorted_by_bytes(&keys), expected);
        let bytes = ("x".to_string(), 1).to_key_bytes();
        let (a, rest) = <(String, i32)>::decode_nested(&bytes).unwrap();
        assert_eq!((a, rest.len()), (("x".to_string(), 1), 0));
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(i64::decode_key(&[1, 2]).is_err());
        assert!(String::decode_key(&[0xff]).is_err());
        assert!(<(String, u8)>::decode_key(b"abc").is_err());
        assert!(bool::decode_key(&[7]).is_err());
    }
}
