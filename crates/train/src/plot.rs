//! The loss-curve picture refreshed with each checkpoint: training loss (faint: every logged
//! value; dark blue: smoothed) and held-out loss per task (orange: full generation, green:
//! filling, purple: continuation) on a log-scaled loss axis against steps. Axis ticks carry
//! their values in a small built-in digit font, so the picture needs no font files.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::Result;

const W: u32 = 900;
const H: u32 = 420;
const LEFT: u32 = 60;
const RIGHT: u32 = 20;
const TOP: u32 = 20;
const BOTTOM: u32 = 40;

/// 3x5 glyphs for tick labels, one row per string, `#` = ink.
fn glyph(c: char) -> Option<[&'static str; 5]> {
    Some(match c {
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["###", "..#", "###", "#..", "###"],
        '3' => ["###", "..#", "###", "..#", "###"],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "###", "..#", "###"],
        '6' => ["###", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", "..#", "..#", "..#"],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "###"],
        '.' => ["...", "...", "...", "...", ".#."],
        'e' => ["...", "###", "#.#", "##.", "###"],
        '-' => ["...", "...", "###", "...", "..."],
        'k' => ["#..", "#.#", "##.", "#.#", "#.#"],
        _ => return None,
    })
}

fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, color: Rgb<u8>) {
    const SCALE: i64 = 2;
    for (i, c) in s.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        for (r, row) in rows.iter().enumerate() {
            for (col, px) in row.chars().enumerate() {
                if px != '#' {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        put(
                            img,
                            x + (i as i64 * 4 + col as i64) * SCALE + dx,
                            y + r as i64 * SCALE + dy,
                            color,
                        );
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, color);
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=n {
        let f = i as f64 / n as f64;
        put(
            img,
            (x0 + (x1 - x0) * f).round() as i64,
            (y0 + (y1 - y0) * f).round() as i64,
            color,
        );
    }
}

fn step_label(s: f64) -> String {
    if s >= 1000.0 {
        format!("{}k", (s / 1000.0 * 10.0).round() / 10.0)
    } else {
        format!("{}", s.round())
    }
}

/// Held-out loss at a step: full generation, filling, continuation.
pub type EvalPoint = (u64, [f64; 3]);

/// Draws the curves and writes the PNG atomically. `train` is `(step, loss)`; `eval` is
/// `(step, [full, spans, prefix])`.
pub fn write(path: &Path, train: &[(u64, f64)], eval: &[EvalPoint]) -> Result<()> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let all: Vec<f64> = train
        .iter()
        .map(|p| p.1)
        .chain(eval.iter().flat_map(|e| e.1))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let max_step = train
        .iter()
        .map(|p| p.0)
        .chain(eval.iter().map(|e| e.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (lo, hi) = if all.is_empty() {
        (-2.0, 0.0)
    } else {
        let lo = all.iter().cloned().fold(f64::MAX, f64::min).log10().floor();
        let hi = all.iter().cloned().fold(f64::MIN, f64::max).log10().ceil();
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let px = |s: f64| LEFT as f64 + s / max_step * pw;
    let py = |v: f64| TOP as f64 + (hi - v.log10()) / (hi - lo) * ph;
    let grid = Rgb([225, 225, 225]);
    let ink = Rgb([60, 60, 60]);
    // Decade grid lines and labels on the loss axis.
    let mut decade = lo;
    while decade <= hi {
        let y = py(10f64.powf(decade));
        line(&mut img, (LEFT as f64, y), ((W - RIGHT) as f64, y), grid);
        text(&mut img, 4, y as i64 - 5, &format!("1e{decade}"), ink);
        decade += 1.0;
    }
    // Five step ticks.
    for i in 0..=4 {
        let s = max_step * i as f64 / 4.0;
        let x = px(s);
        line(&mut img, (x, TOP as f64), (x, (H - BOTTOM) as f64), grid);
        text(
            &mut img,
            x as i64 - 8,
            (H - BOTTOM + 8) as i64,
            &step_label(s),
            ink,
        );
    }
    line(
        &mut img,
        (LEFT as f64, (H - BOTTOM) as f64),
        ((W - RIGHT) as f64, (H - BOTTOM) as f64),
        ink,
    );
    line(
        &mut img,
        (LEFT as f64, TOP as f64),
        (LEFT as f64, (H - BOTTOM) as f64),
        ink,
    );
    let ok = |v: f64| v.is_finite() && v > 0.0;
    // Raw training loss, then its exponential smoothing.
    let faint = Rgb([170, 190, 225]);
    for w in train.windows(2) {
        if ok(w[0].1) && ok(w[1].1) {
            line(
                &mut img,
                (px(w[0].0 as f64), py(w[0].1)),
                (px(w[1].0 as f64), py(w[1].1)),
                faint,
            );
        }
    }
    let mut smooth: Option<f64> = None;
    let mut prev: Option<(f64, f64)> = None;
    for &(s, v) in train.iter().filter(|p| ok(p.1)) {
        let sm = smooth.map_or(v.ln(), |m| 0.9 * m + 0.1 * v.ln());
        smooth = Some(sm);
        let pt = (px(s as f64), py(sm.exp()));
        if let Some(p) = prev {
            line(&mut img, p, pt, Rgb([30, 70, 160]));
        }
        prev = Some(pt);
    }
    // Held-out loss per task.
    let colors = [Rgb([230, 120, 20]), Rgb([40, 150, 60]), Rgb([140, 60, 170])];
    for (k, color) in colors.iter().enumerate() {
        for w in eval.windows(2) {
            if ok(w[0].1[k]) && ok(w[1].1[k]) {
                line(
                    &mut img,
                    (px(w[0].0 as f64), py(w[0].1[k])),
                    (px(w[1].0 as f64), py(w[1].1[k])),
                    *color,
                );
            }
        }
        for e in eval.iter().filter(|e| ok(e.1[k])) {
            let (x, y) = (px(e.0 as f64) as i64, py(e.1[k]) as i64);
            for dx in -2..=2 {
                for dy in -2..=2 {
                    put(&mut img, x + dx, y + dy, *color);
                }
            }
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| crate::error::TrainError::Checkpoint {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    crate::checkpoint::write_file(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_is_drawn_where_the_values_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let train: Vec<(u64, f64)> = (1..=100).map(|s| (s, 1.0 / s as f64)).collect();
        write(
            &path,
            &train,
            &[(50, [0.05, 0.04, 0.03]), (100, [0.02, 0.02, 0.01])],
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (W, H));
        // Loss 1 at step 1 (top left of the plot area: decade 1e0 is the top) is drawn in the
        // raw colour; the lower right holds the eval markers.
        let blue_or_faint = |p: &Rgb<u8>| p.0 == [170, 190, 225] || p.0 == [30, 70, 160];
        let top_left =
            (LEFT..LEFT + 20).any(|x| (TOP..TOP + 10).any(|y| blue_or_faint(img.get_pixel(x, y))));
        assert!(top_left);
        assert!(img.pixels().any(|p| p.0 == [230, 120, 20]));
        assert!(img.pixels().any(|p| p.0 == [140, 60, 170]));
    }
}
