//! End-to-end test of `musicdiff eval` on a tiny model trained here and a tiny reference set of
//! synthesised clips with stated tempo and key: every system and metric is reported, plots and
//! audio are written, a reference clip that was trained on is warned about loudly, a second
//! run resumes from the cache with the same numbers, and bad requests exit with code 2.

mod common;

use common::{musicdiff, reference_set, s, stderr, stdout, tiny_model};

#[test]
fn eval_reports_every_system_warns_about_training_clips_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    // data prepare hashed the four training clips, train kept them, export wrote them.
    let hashes = std::fs::read_to_string(model.join("training-clips.txt")).unwrap();
    assert_eq!(hashes.lines().count(), 4, "{hashes}");
    assert!(hashes.lines().all(|h| h.len() == 64));
    let reference = reference_set(dir.path(), &dir.path().join("data").join("a.wav"));
    let out = dir.path().join("report");
    let train = dir.path().join("data");
    let args = [
        "eval",
        "--model",
        s(&model),
        "--reference",
        s(&reference),
        "--train",
        s(&train),
        "--n",
        "5",
        "--seconds",
        "3",
        "--steps",
        "2",
        "--resamples",
        "20",
        "--out",
        s(&out),
    ];
    let o = musicdiff(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("WARNING: 1 of the 5 reference clips are among the model's"),
        "{}",
        stderr(&o)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let systems: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["system"].as_str().unwrap())
        .collect();
    assert_eq!(
        systems,
        [
            "reference",
            "oracle",
            "model",
            "model-fill",
            "model-continue",
            "model-unprompted",
            "dice-game",
            "markov-chain",
            "shaped-noise"
        ]
    );
    assert_eq!(report["overlap"], 1);
    let row = |name: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["system"] == name)
            .unwrap()
            .clone()
    };
    // Every system but the reference has set distances; only edits have seams.
    for name in &systems[1..] {
        let r = row(name);
        assert!(r["fad"]["value"].as_f64().unwrap() >= 0.0, "{name}");
        assert!(r["kid"]["value"].is_number(), "{name}");
        assert!(r["kl"]["value"].as_f64().unwrap() >= 0.0, "{name}");
        assert!(r["tempo_acc1"]["value"].is_number(), "{name}");
        assert_eq!(
            r["seam_statistics"].is_null(),
            !name.ends_with("fill") && !name.ends_with("continue"),
            "{name}"
        );
    }
    assert!(row("reference")["fad"].is_null());
    assert!(report["conversion_sc"]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(report["prompts_with_bpm"], 5);
    assert_eq!(report["prompts_with_key"], 4);
    // Files: the table, plots, audio of every system and clip.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| dice-game |") && md.contains("FAD ↓"), "{md}");
    assert!(md.contains("**Warning:**"), "{md}");
    for plot in ["fad", "kl", "tempo-acc1", "seam-statistics"] {
        assert!(
            out.join("plots").join(format!("{plot}.svg")).is_file(),
            "{plot}"
        );
    }
    for name in &systems {
        assert_eq!(
            std::fs::read_dir(out.join("audio").join(name))
                .unwrap()
                .count(),
            5,
            "{name}"
        );
    }
    assert!(stdout(&o).contains("markov-chain"), "{}", stdout(&o));

    // Resumed from the cache: the same numbers.
    let o = musicdiff(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(again["rows"], report["rows"]);

    // Other settings in the same report directory are refused.
    let mut other = args.to_vec();
    other[8] = "4";
    let o = musicdiff(&other);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("other settings"), "{}", stderr(&o));
}

#[test]
fn eval_refuses_a_missing_reference_and_an_unknown_task() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let o = musicdiff(&[
        "eval",
        "--reference",
        s(&dir.path().join("nope")),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    let o = musicdiff(&[
        "eval",
        "--reference",
        s(dir.path()),
        "--tasks",
        "paint",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown task 'paint'"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing written for a bad request");
}
