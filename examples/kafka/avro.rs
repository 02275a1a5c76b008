//! Run with: cargo run --example avro
//!
//! A custom codec: Avro with a schema (the `apache-avro` crate), as the seed's `AvroCodec`.
//! Any type that implements `Codec` (`slipstream::Codec` with the `kafka` feature) can encode a
//! topic's keys or values. Uses the embedded broker unless `SLIPSTREAM_BOOTSTRAP_SERVERS` is
//! set. Prints:
//! ```text
//! Emoji { name: "trophy", emoji: "🏆" }
//! Emoji { name: "fish", emoji: "🐟" }
//! ```

use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use slipstream::BoxError;
use slipstream_kafka::{Codec, Conf, Topic, Utf8};

/// Serializes and deserializes Avro records with a schema.
struct AvroCodec<T> {
    schema: Schema,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> AvroCodec<T> {
    fn new(schema: &str) -> Result<Self, BoxError> {
        Ok(AvroCodec {
            schema: Schema::parse_str(schema)?,
            _type: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for AvroCodec<T> {
    fn encode(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        let value = apache_avro::to_value(value)?.resolve(&self.schema)?;
        let writer = GenericDatumWriter::builder(&self.schema).build()?;
        Ok(writer.write_value_to_vec(value)?)
    }

    fn decode(&self, mut bytes: &[u8]) -> Result<T, BoxError> {
        let reader = GenericDatumReader::builder(&self.schema).build()?;
        Ok(reader.read_deser(&mut bytes)?)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Emoji {
    name: String,
    emoji: String,
}

const SCHEMA: &str = r#"{
    "type": "record",
    "name": "Emoji",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "emoji", "type": "string"}
    ]
}"#;

static EMOJI: LazyLock<Topic<String, Emoji>> = LazyLock::new(|| {
    let avro = AvroCodec::new(SCHEMA).expect("a valid schema");
    Topic::with_codecs("emoji-avro", Arc::new(Utf8), Arc::new(avro))
        .conf([("auto_offset_reset", "earliest"), ("group_id", "demo")])
        .stop_at_end(true)
});

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Conf::set([("bootstrap_servers", "embedded")]);
    EMOJI.create(1).await?;

    for (name, emoji) in [("trophy", "🏆"), ("fish", "🐟")] {
        let record = Emoji {
            name: name.into(),
            emoji: emoji.into(),
        };
        EMOJI.send(name, record).await?;
    }

    let mut messages = EMOJI.stream()?;
    while let Some(msg) = messages.next().await {
        println!("{:?}", msg.value);
    }
    Ok(())
}
