//! Run with: cargo run --example cache
//!
//! The seed's `Cache` example: a persistent key-value store, iterated in key order. Prints:
//! ```text
//! phone 📞
//! prize 🏆
//! ```

use slipstream_cache::Cache;

fn main() -> anyhow::Result<()> {
    let path = std::env::temp_dir().join("slipstream-example-cache");
    let cache: Cache<String, String> = Cache::open(&path)?;

    cache.put("prize", "🏆")?;
    cache.put("phone", "📞")?;

    for item in cache.items() {
        let (key, value) = item?;
        println!("{key} {value}");
    }
    Ok(())
}
