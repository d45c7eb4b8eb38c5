//! How long MTT musicnn (Pons & Serra 2019) takes to analyse a batch of clips on this machine:
//! the evaluation suite's budget check (docs/musicnn-port.md §8). Analyses N clips of S seconds
//! (the golden fixture clip, looped and shifted so that no two clips are equal) at 16 kHz with
//! musicnn's default non-overlapping patches, and prints the time per clip.
//!
//!     cargo run --release --example musicnn_speed -- [N=128] [SECONDS=6]

use std::time::Instant;

use musicdiff_dsp::audio;
use musicdiff_judge::{Musicnn, PATCH_FRAMES, SAMPLE_RATE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(128), |a| a.parse())?;
    let seconds: f64 = args.next().map_or(Ok(6.0), |a| a.parse())?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let decoded = audio::decode_file(&root.join("tests/fixtures/musicnn/clip_16k.wav"))?;
    let source = &decoded.channels[0];
    let len = (seconds * SAMPLE_RATE as f64) as usize;
    let clips: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            (0..len)
                .map(|j| source[(j + i * 997) % source.len()])
                .collect()
        })
        .collect();

    let start = Instant::now();
    let musicnn = Musicnn::load(&Musicnn::locate(None)?)?;
    let load = start.elapsed();
    let start = Instant::now();
    let mut patches = 0;
    for clip in &clips {
        patches += musicnn
            .analyse(clip, SAMPLE_RATE, PATCH_FRAMES)?
            .patches
            .len();
    }
    let total = start.elapsed().as_secs_f64();
    println!(
        "loaded in {:.2} s; {n} clips of {seconds} s ({patches} patches) in {total:.1} s: \
         {:.0} ms per clip, {:.0} ms per patch",
        load.as_secs_f64(),
        1000.0 * total / n as f64,
        1000.0 * total / patches as f64
    );
    Ok(())
}
