//! The experiment report, rewritten after every finished arm: `report.md` (the training table,
//! then one table per evaluation set with the arms as rows, values with their 95% bootstrap
//! intervals, the best value of each column in bold), `report.json` (every arm's settings,
//! curves and full evaluation reports) and `loss.svg` (the arms' training and held-out loss
//! curves overlaid). Numbers only: what they mean is for the experiment's write-up.

use std::fmt::Write as _;

use musicdiff_common::atomic::write_bytes;
use musicdiff_eval::report::{Row, cell};
use musicdiff_eval::stats::Estimate;
use serde::Serialize;

use crate::error::Result;
use crate::runner::{ArmResult, Options};

/// A metric column of an evaluation table: its header, which way is better, where it is read.
struct Column {
    header: &'static str,
    system: &'static str,
    lower_is_better: bool,
    get: fn(&Row) -> Option<Estimate>,
}

/// The columns shown for each task: the suite's headline metrics of that task.
fn columns(task: musicdiff_eval::EvalTask) -> Vec<Column> {
    use musicdiff_eval::EvalTask::*;
    match task {
        Generate => vec![
            Column {
                header: "gen FAD",
                system: "model",
                lower_is_better: true,
                get: |r| r.fad,
            },
            Column {
                header: "gen KL",
                system: "model",
                lower_is_better: true,
                get: |r| r.kl,
            },
            Column {
                header: "tag AUC",
                system: "model",
                lower_is_better: false,
                get: |r| r.tag_adherence,
            },
            Column {
                header: "tempo Acc1",
                system: "model",
                lower_is_better: false,
                get: |r| r.tempo_acc1,
            },
            Column {
                header: "key (MIREX)",
                system: "model",
                lower_is_better: false,
                get: |r| r.key_mirex,
            },
        ],
        Fill => vec![
            Column {
                header: "fill FAD",
                system: "model-fill",
                lower_is_better: true,
                get: |r| r.fad,
            },
            Column {
                header: "fill seam",
                system: "model-fill",
                lower_is_better: true,
                get: |r| r.seam_statistics,
            },
        ],
        Continue => vec![
            Column {
                header: "cont. FAD",
                system: "model-continue",
                lower_is_better: true,
                get: |r| r.fad,
            },
            Column {
                header: "cont. seam",
                system: "model-continue",
                lower_is_better: true,
                get: |r| r.seam_statistics,
            },
        ],
    }
}

/// The oracle's FAD: the ceiling the conversion sets (differs between arms only when their
/// conversions do).
const ORACLE: Column = Column {
    header: "oracle FAD",
    system: "oracle",
    lower_is_better: true,
    get: |r| r.fad,
};

/// A table row's cells: the value compared for "best" (none: not compared) and its text.
type Cells = Vec<(Option<f64>, String)>;

/// Markdown table rows with the best value of every column in bold.
fn table(out: &mut String, header: &[String], rows: &[(String, Cells)], lower: &[Option<bool>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for (name, cells) in rows {
        let mut line = format!("| {name} |");
        for (c, (value, text)) in cells.iter().enumerate() {
            let best = match (value, lower[c]) {
                (Some(v), Some(lower_is_better)) if rows.len() > 1 => rows.iter().all(|(_, o)| {
                    o[c].0
                        .is_none_or(|w| if lower_is_better { *v <= w } else { *v >= w })
                }),
                _ => false,
            };
            if best {
                let _ = write!(line, " **{text}** |");
            } else {
                let _ = write!(line, " {text} |");
            }
        }
        let _ = writeln!(out, "{line}");
    }
}

fn minutes(s: f64) -> String {
    format!("{:.1}", s / 60.0)
}

/// The report as markdown.
pub fn markdown(opts: &Options, results: &[ArmResult]) -> String {
    let cfg = &opts.config;
    let mut md = String::new();
    let _ = writeln!(md, "# Experiment `{}`\n", opts.name);
    if !cfg.description.is_empty() {
        let _ = writeln!(md, "{}\n", cfg.description);
    }
    let _ = writeln!(
        md,
        "- base config: `{}`; data: `{}`{}\n- budget per arm: {}\n- arms finished: {} of {}\n",
        cfg.base.display(),
        cfg.data.display(),
        cfg.init_from
            .as_ref()
            .map(|p| format!("; fine-tuned from `{}`", p.display()))
            .unwrap_or_default(),
        cfg.budget.describe(),
        results.len(),
        opts.arms.len()
    );
    let _ = writeln!(md, "## Arms\n");
    for a in &opts.arms {
        let set = toml::to_string(&a.arm.set).unwrap_or_default();
        let set = set.trim().replace('\n', "; ");
        let _ = writeln!(
            md,
            "- `{}`: {}{}{}",
            a.arm.name,
            if a.arm.description.is_empty() {
                "(no description)"
            } else {
                &a.arm.description
            },
            if set.is_empty() {
                " (the base config)".to_string()
            } else {
                format!(" (`{set}`)")
            },
            a.arm
                .data
                .as_ref()
                .map(|d| format!(", data `{}`", d.display()))
                .unwrap_or_default()
        );
    }

    let _ = writeln!(md, "\n## Training\n");
    let header: Vec<String> = [
        "arm",
        "parameters",
        "steps",
        "train min",
        "s/step",
        "held-out full",
        "held-out spans",
        "held-out prefix",
        "cond. gain",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            let h = r.heldout.map(|(_, l)| l);
            let val = |v: Option<f64>| (v, v.map_or("–".into(), |v| format!("{v:.4}")));
            let gain = match (h, r.heldout_uncond) {
                (Some(h), Some(u)) => Some(u / h[0].max(1e-12)),
                _ => None,
            };
            (
                format!("`{}`", r.name),
                vec![
                    (None, format!("{:.2} M", r.parameters as f64 / 1e6)),
                    (None, r.steps.to_string()),
                    (None, minutes(r.train_seconds)),
                    (
                        None,
                        format!("{:.2}", r.train_seconds / r.steps.max(1) as f64),
                    ),
                    val(h.map(|h| h[0])),
                    val(h.map(|h| h[1])),
                    val(h.map(|h| h[2])),
                    (gain, gain.map_or("–".into(), |g| format!("{g:.3}"))),
                ],
            )
        })
        .collect();
    let lower = [
        None,
        None,
        None,
        None,
        Some(true),
        Some(true),
        Some(true),
        Some(false),
    ];
    table(&mut md, &header, &rows, &lower);
    for r in results {
        if let Some(from) = &r.reused_from {
            let _ = writeln!(
                md,
                "\n`{}` was not trained again: the same training finished in `{}` (copied).",
                r.name,
                from.display()
            );
        }
    }
    let _ = writeln!(
        md,
        "\nHeld-out loss: the trainer's last evaluation (same windows, noise and masks for every \
         arm with the same data and seed); comparable across arms with the same objective and \
         data only. Conditioning gain: the full task's loss without the prompt over with it. \
         Curves: `loss.svg`.\n"
    );
    let _ = writeln!(md, "![loss curves](loss.svg)\n");

    for set in &cfg.eval {
        let _ = writeln!(
            md,
            "## Evaluation `{}`\n\n{} clips of `{}`, {}, seed {}, tasks {}; values with 95% bootstrap \
             intervals, best in bold.\n",
            set.name,
            set.n,
            set.reference.display(),
            set.seconds
                .map_or("the model's window".into(), |s| format!("{s} s")),
            set.seed,
            set.tasks
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut cols: Vec<Column> = set.tasks.iter().flat_map(|&t| columns(t)).collect();
        cols.push(ORACLE);
        let mut header = vec!["arm".to_string()];
        header.extend(cols.iter().map(|c| c.header.to_string()));
        let rows: Vec<_> = results
            .iter()
            .filter_map(|r| {
                let report = r.reports.get(&set.name)?;
                let cells = cols
                    .iter()
                    .map(|c| {
                        let e = report.row(c.system).and_then(c.get);
                        (e.map(|e| e.value), cell(e))
                    })
                    .collect();
                Some((format!("`{}`", r.name), cells))
            })
            .collect();
        let lower: Vec<Option<bool>> = cols.iter().map(|c| Some(c.lower_is_better)).collect();
        table(&mut md, &header, &rows, &lower);
        let conv: Vec<String> = results
            .iter()
            .filter_map(|r| {
                let rep = r.reports.get(&set.name)?;
                Some(format!("`{}`: {}", r.name, rep.settings.conversion))
            })
            .collect();
        let _ = writeln!(md, "\nConversion: {}.\n", conv.join("; "));
    }
    md
}

/// One panel of the loss plot: a polyline per arm on a log-scaled loss axis.
fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    series: &[(String, Vec<(u64, f64)>)],
    palette: &[&str],
    empty: &str,
) {
    let (w, h, top, left) = (420.0, 260.0, 40.0, 50.0);
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let max_step = pts.clone().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let (lo, hi) = pts
        .filter(|p| p.1 > 0.0 && p.1.is_finite())
        .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.1), h.max(p.1)));
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="14" font-weight="bold">{title}</text>"#,
        x0 + left
    );
    if lo > hi {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{empty}</text>"#,
            x0 + left,
            top + 20.0
        );
        return;
    }
    let (llo, lhi) = (lo.ln(), hi.ln().max(lo.ln() + 1e-6));
    let x = |s: u64| x0 + left + s as f64 / max_step * w;
    let y = |v: f64| top + (lhi - v.max(lo).ln()) / (lhi - llo) * h;
    let _ = writeln!(
        svg,
        r##"<rect x="{}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##,
        x0 + left
    );
    for (v, anchor_y) in [(hi, top + 4.0), (lo, top + h)] {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            x0 + left - 4.0,
            anchor_y + 4.0,
            format_args!("{v:.3}")
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{} steps</text>"#,
        x0 + left + w,
        top + h + 16.0,
        max_step as u64
    );
    for (i, (_, p)) in series.iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        let d: Vec<String> = p
            .iter()
            .filter(|q| q.1 > 0.0 && q.1.is_finite())
            .map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
            d.join(" "),
            palette[i % palette.len()]
        );
    }
}

/// Exponential smoothing of a noisy training curve (0.9 per logged point).
fn smooth(p: &[(u64, f64)]) -> Vec<(u64, f64)> {
    let mut acc = None::<f64>;
    p.iter()
        .map(|&(s, v)| {
            let a = acc.map_or(v, |a| 0.9 * a + 0.1 * v);
            acc = Some(a);
            (s, a)
        })
        .collect()
}

/// The arms' loss curves overlaid: smoothed training loss, and the held-out loss of the full
/// (generation) task.
pub fn loss_svg(results: &[ArmResult]) -> String {
    let palette = [
        "#3b6fb6", "#d98b3a", "#6aa84f", "#b05fa0", "#c9c13d", "#222222", "#e06666", "#76a5af",
    ];
    let legend_h = 18.0 * results.len() as f64;
    let (width, height) = (960.0, 330.0 + legend_h);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let train: Vec<_> = results
        .iter()
        .map(|r| (r.name.clone(), smooth(&r.train_curve)))
        .collect();
    let held: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.eval_curve.iter().map(|&(s, l)| (s, l[0])).collect(),
            )
        })
        .collect();
    panel(
        &mut svg,
        0.0,
        "training loss (smoothed)",
        &train,
        &palette,
        "no training losses logged yet",
    );
    panel(
        &mut svg,
        480.0,
        "held-out loss, generation task",
        &held,
        &palette,
        "no held-out losses (no test windows, or none logged yet)",
    );
    for (i, r) in results.iter().enumerate() {
        let y = 330.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="50" y="{}" width="24" height="4" fill="{}"/><text x="82" y="{}">{}</text>"#,
            y - 4.0,
            palette[i % palette.len()],
            y + 1.0,
            r.name
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[derive(Serialize)]
struct Json<'a> {
    name: &'a str,
    description: &'a str,
    budget: &'a crate::config::Budget,
    arms_total: usize,
    arms: &'a [ArmResult],
}

/// Writes `report.md`, `report.json` and `loss.svg` into the experiment directory.
pub fn write(opts: &Options, results: &[ArmResult]) -> Result<()> {
    let json = serde_json::to_vec_pretty(&Json {
        name: &opts.name,
        description: &opts.config.description,
        budget: &opts.config.budget,
        arms_total: opts.arms.len(),
        arms: results,
    })
    .expect("the report serialises");
    write_bytes(&opts.out.join("report.json"), &json)?;
    write_bytes(&opts.out.join("loss.svg"), loss_svg(results).as_bytes())?;
    write_bytes(
        &opts.out.join("report.md"),
        markdown(opts, results).as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_value_of_a_column_is_bold_and_missing_values_are_skipped() {
        let mut md = String::new();
        let rows = vec![
            (
                "a".to_string(),
                vec![(Some(2.0), "2".to_string()), (Some(0.5), "0.5".into())],
            ),
            (
                "b".to_string(),
                vec![(Some(1.0), "1".to_string()), (None, "–".into())],
            ),
        ];
        table(
            &mut md,
            &["arm".into(), "FAD".into(), "AUC".into()],
            &rows,
            &[Some(true), Some(false)],
        );
        assert!(md.contains("| a | 2 | **0.5** |"), "{md}");
        assert!(md.contains("| b | **1** | – |"), "{md}");
    }

    #[test]
    fn smoothing_starts_at_the_first_value_and_follows_slowly() {
        let s = smooth(&[(1, 1.0), (2, 2.0), (3, 2.0)]);
        assert_eq!(s[0], (1, 1.0));
        assert!((s[1].1 - 1.1).abs() < 1e-12);
        assert!(s[2].1 > s[1].1 && s[2].1 < 2.0);
    }
}
