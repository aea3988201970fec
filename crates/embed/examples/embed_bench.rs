//! Measures the model: load time, sentences per second through an
//! EmbedService with N workers on texts of 20 to 200 words, and peak RSS.
//!
//!     cargo run --release -p strata-embed --example embed_bench -- \
//!         target/models/all-MiniLM-L6-v2 [workers] [texts]
//!
//! The texts are generated (a fixed seed, English words), submitted one text
//! per request as the server's writes would be, all at once up to the
//! queue's bound.

use std::sync::Arc;
use std::time::Instant;

use strata_embed::{EmbedConfig, EmbedService, MiniLm};

const WORDS: &str = "the of and to in is that for it as was with be by on not he this are or \
    his from at which but have an they you were their one all we can her has there been if more \
    when will would who so no data system server storage write read index search query replica \
    network latency memory disk cache value key record batch log snapshot leader follower vote \
    commit apply restart crash recovery durable consistent machine learning model vector text \
    language city river mountain history music film book garden weather market price company \
    government school student teacher doctor hospital travel train airport coffee kitchen recipe";

/// A deterministic text of `words` words (xorshift over the word list).
fn text(seed: &mut u64, words: usize) -> String {
    let list: Vec<&str> = WORDS.split_whitespace().collect();
    let mut out = Vec::with_capacity(words);
    for _ in 0..words {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.push(list[(*seed % list.len() as u64) as usize]);
    }
    out.join(" ") + "."
}

fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: embed_bench MODEL_DIR [workers] [texts]")?;
    let workers: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let count: usize = args.next().map_or(Ok(200), |s| s.parse())?;

    let started = Instant::now();
    let model = MiniLm::load(dir.as_ref())?;
    let load_ms = started.elapsed().as_millis();
    let mut seed = 0x5eed_u64;
    let texts: Vec<String> = (0..count)
        .map(|i| text(&mut seed, 20 + (i * 181) % 181))
        .collect();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let tokens: usize = texts
        .iter()
        .map(|t| model.token_count(t).unwrap_or(0))
        .sum();
    let config = EmbedConfig {
        workers,
        queue_texts_max: count.max(1),
        ..EmbedConfig::default()
    };
    let service = EmbedService::start(Arc::new(model), config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One untimed text first: candle's first call sets up its threads.
    runtime.block_on(service.embed_one("warm up".into()))?;
    let started = Instant::now();
    runtime.block_on(async {
        let pending: Vec<_> = texts
            .iter()
            .map(|t| service.submit(vec![t.clone()]))
            .collect::<Result<_, _>>()?;
        for p in pending {
            p.await?;
        }
        Ok::<_, strata_embed::EmbedError>(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let stats = service.stats();
    println!(
        "workers={workers} texts={count} words/text={:.0} tokens/text={:.0} load_ms={load_ms} \
         secs={secs:.2} sentences/s={:.1} batches={} peak_rss_mb={}",
        words as f64 / count as f64,
        tokens as f64 / count as f64,
        count as f64 / secs,
        stats.batches,
        peak_rss_mb()
    );
    Ok(())
}
