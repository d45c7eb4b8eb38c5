//! The evaluation report: `report.json` (everything, for programs), `report.md` (one table with
//! the baselines as rows, then the tag chart, conversion, held-out loss and warnings) and SVG
//! plots (a bar per system with its 95% interval for each metric, and per-tag adherence), all
//! written atomically into the report directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use musicdiff_common::atomic::write_bytes;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::stats::Estimate;
use crate::suite::Settings;

/// One system's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub system: String,
    pub description: String,
    pub clips: usize,
    pub fad: Option<Estimate>,
    pub kid: Option<Estimate>,
    pub kl: Option<Estimate>,
    pub tag_adherence: Option<Estimate>,
    pub tempo_acc1: Option<Estimate>,
    pub tempo_acc2: Option<Estimate>,
    pub key_mirex: Option<Estimate>,
    pub seam_statistics: Option<Estimate>,
    pub seam_embedding: Option<Estimate>,
}

/// Adherence to one tag: how many prompts name it, and each system's ROC AUC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRow {
    pub tag: String,
    pub prompts: usize,
    pub auc: BTreeMap<String, f64>,
}

/// Everything an evaluation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub settings: Settings,
    pub model_dir: String,
    pub reference_dir: String,
    /// (id, caption) of every reference clip, in order.
    pub clips: Vec<(String, String)>,
    pub prompts_with_bpm: usize,
    pub prompts_with_key: usize,
    pub rows: Vec<Row>,
    pub tags: Vec<TagRow>,
    pub conversion_sc: Option<Estimate>,
    pub conversion_lsd: Option<Estimate>,
    pub heldout_loss: BTreeMap<String, f64>,
    pub heldout_step: Option<u64>,
    /// Reference clips found among the training clips (`None`: not checkable).
    pub overlap: Option<usize>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub wall_seconds: f64,
}

impl Report {
    pub fn row(&self, system: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.system == system)
    }
}

/// A metric column: its name, which way is better, and how to read it from a row.
struct Column {
    name: &'static str,
    file: &'static str,
    lower_is_better: bool,
    get: fn(&Row) -> Option<Estimate>,
}

const COLUMNS: [Column; 9] = [
    Column {
        name: "FAD",
        file: "fad",
        lower_is_better: true,
        get: |r| r.fad,
    },
    Column {
        name: "KID",
        file: "kid",
        lower_is_better: true,
        get: |r| r.kid,
    },
    Column {
        name: "KL",
        file: "kl",
        lower_is_better: true,
        get: |r| r.kl,
    },
    Column {
        name: "tag AUC",
        file: "tag-adherence",
        lower_is_better: false,
        get: |r| r.tag_adherence,
    },
    Column {
        name: "tempo Acc1",
        file: "tempo-acc1",
        lower_is_better: false,
        get: |r| r.tempo_acc1,
    },
    Column {
        name: "tempo Acc2",
        file: "tempo-acc2",
        lower_is_better: false,
        get: |r| r.tempo_acc2,
    },
    Column {
        name: "key (MIREX)",
        file: "key",
        lower_is_better: false,
        get: |r| r.key_mirex,
    },
    Column {
        name: "seam stats",
        file: "seam-statistics",
        lower_is_better: true,
        get: |r| r.seam_statistics,
    },
    Column {
        name: "seam emb.",
        file: "seam-embedding",
        lower_is_better: true,
        get: |r| r.seam_embedding,
    },
];

/// `value [low, high]` with precision suited to the magnitude.
pub fn cell(e: Option<Estimate>) -> String {
    match e {
        None => "–".into(),
        Some(e) => {
            let digits = if e.value.abs() >= 100.0 {
                1
            } else if e.value.abs() >= 1.0 {
                2
            } else {
                3
            };
            if e.low == e.high {
                format!("{:.*}", digits, e.value)
            } else {
                format!(
                    "{:.*} [{:.*}, {:.*}]",
                    digits, e.value, digits, e.low, digits, e.high
                )
            }
        }
    }
}

/// The report as markdown.
pub fn markdown(r: &Report) -> String {
    let s = &r.settings;
    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation of `{}`\n", s.model_id);
    let _ = writeln!(
        md,
        "Model `{}` (weights sha256 `{}`), reference `{}`: {} clips of {:.1} s, seed {}, {} steps of {}, guidance {}, conversion by {}. {} prompts state a tempo and {} a key. Wall time {:.1} min.\n",
        r.model_dir,
        &s.model_sha256[..s.model_sha256.len().min(12)],
        r.reference_dir,
        r.clips.len(),
        s.seconds,
        s.seed,
        s.steps,
        s.sampler,
        s.cfg,
        s.conversion,
        r.prompts_with_bpm,
        r.prompts_with_key,
        r.wall_seconds / 60.0
    );
    if !r.warnings.is_empty() {
        for w in &r.warnings {
            let _ = writeln!(md, "> **Warning:** {w}\n");
        }
    }
    let _ = writeln!(
        md,
        "Values are means (FAD, KID: set distances) with 95% bootstrap intervals over clips. ↓ lower is better, ↑ higher is better; seams are ratios to the same distance in untouched audio (1 = as smooth as the original). Definitions: `docs/evaluation.md`.\n"
    );
    let _ = write!(md, "| system |");
    for c in &COLUMNS {
        let _ = write!(
            md,
            " {} {} |",
            c.name,
            if c.lower_is_better { "↓" } else { "↑" }
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "|---|{}", "---|".repeat(COLUMNS.len()));
    for row in &r.rows {
        let _ = write!(md, "| {} |", row.system);
        for c in &COLUMNS {
            let _ = write!(md, " {} |", cell((c.get)(row)));
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "\nSystems:\n");
    for row in &r.rows {
        let _ = writeln!(md, "- `{}`: {}", row.system, row.description);
    }
    let _ = writeln!(
        md,
        "\n## Conversion (mel -> waveform on the reference clips)\n\nSpectral convergence {} and log-spectral distance {} dB ({}; what the conversion costs before any model).\n",
        cell(r.conversion_sc),
        cell(r.conversion_lsd),
        s.conversion
    );
    if !r.heldout_loss.is_empty() {
        let _ = writeln!(md, "## Held-out diffusion loss (from training)\n");
        let step = r
            .heldout_step
            .map(|s| format!(" at step {s}"))
            .unwrap_or_default();
        let _ = writeln!(md, "| task | loss{step} |\n|---|---|");
        for (task, loss) in &r.heldout_loss {
            let _ = writeln!(md, "| {task} | {loss:.4} |");
        }
        let _ = writeln!(md);
    }
    if !r.tags.is_empty() {
        let systems: Vec<&str> = r.rows.iter().map(|r| r.system.as_str()).collect();
        let _ = writeln!(md, "## Tag adherence (ROC AUC per tag; 0.5 is chance)\n");
        let _ = write!(md, "| tag | prompts |");
        for s in &systems {
            let _ = write!(md, " {s} |");
        }
        let _ = writeln!(md, "\n|---|---|{}", "---|".repeat(systems.len()));
        for t in &r.tags {
            let _ = write!(md, "| {} | {} |", t.tag, t.prompts);
            for s in &systems {
                let _ = write!(
                    md,
                    " {} |",
                    t.auc.get(*s).map_or("–".into(), |a| format!("{a:.2}"))
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## Plots\n");
    for c in &COLUMNS {
        if r.rows.iter().any(|row| (c.get)(row).is_some()) {
            let _ = writeln!(md, "- [{}](plots/{}.svg)", c.name, c.file);
        }
    }
    if !r.tags.is_empty() {
        let _ = writeln!(md, "- [tag adherence per tag](plots/tags.svg)");
    }
    let _ = writeln!(
        md,
        "\nAudio: `audio/SYSTEM/ID.wav`; per-clip analyses: `cache/SYSTEM/ID.json`."
    );
    if !r.notes.is_empty() {
        let _ = writeln!(md, "\nNotes:\n");
        for n in &r.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// A compact table for the terminal: every system with its values (no intervals).
pub fn summary(r: &Report) -> String {
    let mut out = format!("{:<18}", "system");
    for c in &COLUMNS {
        let _ = write!(out, " {:>11}", c.name);
    }
    out.push('\n');
    for row in &r.rows {
        let _ = write!(out, "{:<18}", row.system);
        for c in &COLUMNS {
            let v =
                (c.get)(row).map_or("–".to_string(), |e| cell(Some(Estimate::exact(e.value))));
            let _ = write!(out, " {v:>11}");
        }
        out.push('\n');
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out.trim_end().to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Horizontal bars, one per system, with the interval as a whisker.
pub fn bar_chart(title: &str, bars: &[(String, Estimate)], lower_is_better: bool) -> String {
    let (label_w, plot_w, row_h, top) = (150.0, 420.0, 24.0, 40.0);
    let width = label_w + plot_w + 90.0;
    let height = top + row_h * bars.len() as f64 + 30.0;
    let lo = bars
        .iter()
        .map(|(_, e)| e.low.min(e.value))
        .fold(0.0f64, f64::min);
    let hi = bars
        .iter()
        .map(|(_, e)| e.high.max(e.value))
        .fold(f64::MIN_POSITIVE, f64::max);
    let x = |v: f64| label_w + (v - lo) / (hi - lo) * plot_w;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{} ({} is better)</text>"#,
        escape(title),
        if lower_is_better { "lower" } else { "higher" }
    );
    for (i, (name, e)) in bars.iter().enumerate() {
        let y = top + row_h * i as f64;
        let colour = if name.starts_with("model") {
            "#3b6fb6"
        } else {
            "#9a9a9a"
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 15.0,
            escape(name)
        );
        let (x0, x1) = (x(0.0f64.max(lo)), x(e.value));
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{colour}"/>"#,
            x0.min(x1),
            y + 4.0,
            (x1 - x0).abs().max(1.0),
            row_h - 8.0
        );
        if e.low != e.high {
            let (a, b, m) = (x(e.low), x(e.high), y + row_h / 2.0);
            let _ = writeln!(
                svg,
                r#"<path d="M{a} {m}H{b}M{a} {}V{}M{b} {}V{}" stroke="black" fill="none"/>"#,
                m - 5.0,
                m + 5.0,
                m - 5.0,
                m + 5.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            x(e.high.max(e.value)) + 6.0,
            y + 15.0,
            escape(&cell(Some(Estimate::exact(e.value))))
        );
    }
    let axis_y = top + row_h * bars.len() as f64 + 4.0;
    let _ = writeln!(
        svg,
        r#"<path d="M{} {axis_y}H{}" stroke="black"/><text x="{}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
        label_w,
        label_w + plot_w,
        label_w,
        axis_y + 16.0,
        escape(&format!("{lo:.3}")),
        label_w + plot_w,
        axis_y + 16.0,
        escape(&format!("{hi:.3}"))
    );
    svg.push_str("</svg>\n");
    svg
}

/// Per-tag AUC of every system: one group of bars per tag, a dashed line at chance.
pub fn tag_chart(r: &Report) -> String {
    let systems: Vec<&str> = r.rows.iter().map(|r| r.system.as_str()).collect();
    let palette = [
        "#222222", "#9a9a9a", "#3b6fb6", "#6fa0dc", "#a6c8ef", "#d98b3a", "#6aa84f", "#b05fa0",
        "#c9c13d",
    ];
    let (left, top, bar_w, gap, plot_h) = (50.0, 50.0, 7.0, 14.0, 260.0);
    let group_w = bar_w * systems.len() as f64 + gap;
    // Wide enough for the title even with few tags.
    let width = (left + group_w * r.tags.len() as f64 + 170.0).max(640.0);
    let height = top + plot_h + 90.0;
    let y = |auc: f64| top + (1.0 - auc) * plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">Tag adherence: ROC AUC per MTT tag (0.5 = chance)</text>"#
    );
    for v in [0.0, 0.5, 1.0] {
        let dash = if v == 0.5 {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<path d="M{left} {}H{}" stroke="black"{dash}/><text x="{}" y="{}" text-anchor="end">{v}</text>"#,
            y(v),
            width - 170.0,
            left - 4.0,
            y(v) + 4.0
        );
    }
    for (g, t) in r.tags.iter().enumerate() {
        let gx = left + gap / 2.0 + group_w * g as f64;
        for (k, s) in systems.iter().enumerate() {
            if let Some(&auc) = t.auc.get(*s) {
                let top_y = y(auc.max(0.0));
                let _ = writeln!(
                    svg,
                    r#"<rect x="{}" y="{top_y}" width="{bar_w}" height="{}" fill="{}"/>"#,
                    gx + bar_w * k as f64,
                    (y(0.0) - top_y).max(0.5),
                    palette[k % palette.len()]
                );
            }
        }
        let cx = gx + bar_w * systems.len() as f64 / 2.0;
        let _ = writeln!(
            svg,
            r#"<text transform="translate({cx},{}) rotate(-45)" text-anchor="end">{} ({})</text>"#,
            y(0.0) + 12.0,
            escape(&t.tag),
            t.prompts
        );
    }
    for (k, s) in systems.iter().enumerate() {
        let ly = top + 14.0 * k as f64;
        let lx = width - 160.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            ly,
            palette[k % palette.len()],
            lx + 14.0,
            ly + 9.0,
            escape(s)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(write_bytes(path, text.as_bytes())?)
}

/// Writes `report.json`, `report.md` and `plots/*.svg` into `dir`.
pub fn write(dir: &Path, r: &Report) -> Result<()> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| EvalError::io(&plots, e))?;
    for c in &COLUMNS {
        let bars: Vec<(String, Estimate)> = r
            .rows
            .iter()
            .filter_map(|row| Some((row.system.clone(), (c.get)(row)?)))
            .collect();
        if !bars.is_empty() {
            write_text(
                &plots.join(format!("{}.svg", c.file)),
                &bar_chart(c.name, &bars, c.lower_is_better),
            )?;
        }
    }
    if !r.tags.is_empty() {
        write_text(&plots.join("tags.svg"), &tag_chart(r))?;
    }
    let json = serde_json::to_string_pretty(r).expect("reports serialise");
    write_text(&dir.join("report.json"), &json)?;
    write_text(&dir.join("report.md"), &markdown(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_intervals_with_magnitude_precision() {
        assert_eq!(cell(None), "–");
        assert_eq!(cell(Some(Estimate::exact(0.5))), "0.500");
        assert_eq!(
            cell(Some(Estimate {
                value: 12.345,
                low: 10.0,
                high: 15.5
            })),
            "12.35 [10.00, 15.50]"
        );
    }

    #[test]
    fn bar_chart_draws_one_bar_and_whisker_per_system() {
        let svg = bar_chart(
            "FAD",
            &[
                (
                    "oracle".into(),
                    Estimate {
                        value: 1.0,
                        low: 0.5,
                        high: 1.5,
                    },
                ),
                (
                    "model".into(),
                    Estimate {
                        value: 5.0,
                        low: 4.0,
                        high: 6.0,
                    },
                ),
            ],
            true,
        );
        assert_eq!(svg.matches("<rect").count(), 3); // background + 2 bars
        assert_eq!(svg.matches("<path d=\"M").count(), 3); // 2 whiskers + axis
        assert!(svg.contains("lower is better"));
    }
}
