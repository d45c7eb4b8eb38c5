//! End-to-end test of `musicdiff experiment` on the tiny config: two arms (the base and one
//! with other masks) trained 20 steps each, exported and evaluated; the runner killed in the
//! middle resumes without redoing the finished arm; the report has both arms; a changed arm
//! and a bad config are refused with exit code 2.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{musicdiff, reference_set, s, stderr, stdout, tiny_config, tiny_shards};

fn write_config(dir: &Path, shards: &Path, reference: &Path, extra_arm_set: &str) -> String {
    let path = dir.join("tiny-masks.toml");
    std::fs::write(
        &path,
        format!(
            r#"description = "test: the tiny config with two mask mixes"
base = "{base}"
data = "{data}"

[budget]
steps = 20

[[eval]]
name = "main"
reference = "{reference}"
n = 4
seconds = 3.0
steps = 2
tasks = ["generate", "continue"]
conversion = "griffin-lim"

[[arm]]
name = "mix"
description = "the base config's mix"

[[arm]]
name = "full-only"
description = "generation only"
set.masks = {{ full = 1.0, spans = 0.0, prefix = 0.0 }}
{extra_arm_set}
"#,
            base = s(&tiny_config()),
            data = s(shards),
            reference = s(reference),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn experiment_runs_two_arms_resumes_after_a_kill_and_reports_both() {
    let dir = tempfile::tempdir().unwrap();
    let shards = tiny_shards(dir.path());
    let reference = reference_set(dir.path(), &dir.path().join("data").join("a.wav"));
    let config = write_config(dir.path(), &shards, &reference, "");
    let out = dir.path().join("exp");
    let args = [
        "experiment",
        config.as_str(),
        "--out",
        s(&out),
        "--resamples",
        "20",
    ];

    // 1. Started, then killed (SIGKILL: no chance to tidy up) once the first arm has finished
    //    and the second has begun.
    let mut child = Command::new(env!("CARGO_BIN_EXE_musicdiff"))
        .env("MUSICDIFF_VOCODER", "griffin-lim")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = out.join("arms/mix/result.json");
    let second_run = out.join("arms/full-only/run");
    let started = Instant::now();
    while !(first.exists() && second_run.exists()) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the runner ended before it was killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the first arm took too long"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("arms/full-only/result.json").exists());
    let first_bytes = std::fs::read(&first).unwrap();

    // 2. The same command again: the first arm is kept as it was, the second finishes.
    let o = musicdiff(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("arm 1/2 `mix`: finished earlier, kept"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("2 arm(s) finished"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&first).unwrap(), first_bytes);

    // 3. The report: both arms trained to the budget, held-out losses, evaluation rows.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let arms = report["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    for (arm, name) in arms.iter().zip(["mix", "full-only"]) {
        assert_eq!(arm["name"], name);
        assert_eq!(arm["steps"], 20, "{name}");
        // The tiny data holds no test windows: the trainer skips held-out loss, and so does the
        // report (a dash, not a number).
        assert!(arm["heldout"].is_null(), "{name}");
        assert!(arm["train_curve"].as_array().unwrap().len() >= 20, "{name}");
        let rows = arm["reports"]["main"]["rows"].as_array().unwrap();
        let systems: Vec<&str> = rows.iter().map(|r| r["system"].as_str().unwrap()).collect();
        assert_eq!(
            systems,
            ["reference", "oracle", "model", "model-continue"],
            "{name}"
        );
    }
    assert_eq!(arms[1]["settings"]["train"]["masks"]["full"], 1.0);
    assert_eq!(arms[0]["settings"]["train"]["masks"]["full"], 0.5);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for want in [
        "| `mix` |",
        "| `full-only` |",
        "gen FAD",
        "cont. seam",
        "arms finished: 2 of 2",
    ] {
        assert!(md.contains(want), "{want}: {md}");
    }
    let svg = std::fs::read_to_string(out.join("loss.svg")).unwrap();
    // Both arms' training curves; the held-out panel says it has no points.
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    assert!(svg.contains("no held-out losses"), "{svg}");
    assert!(out.join("arms/full-only/model/model.json").exists());
    assert!(!out.join("arms/full-only/model.partial").exists());

    // 4. Run again: nothing to do, both kept.
    let o = musicdiff(&["-q", "experiment", config.as_str(), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));

    // 5. The config changes an arm that already finished: refused, naming the arm.
    let changed = write_config(dir.path(), &shards, &reference, "set.run.seed = 3");
    let o = musicdiff(&["-q", "experiment", changed.as_str(), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("arm `full-only` was run with other settings"),
        "{}",
        stderr(&o)
    );

    // 6. Another experiment beside it with an arm that trains the same thing as `mix`: its
    //    run and model are copied, not trained again, and only the evaluation runs.
    let again = dir.path().join("again.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let cut = text.find("[[arm]]").unwrap();
    std::fs::write(
        &again,
        format!(
            "{}[[arm]]\nname = \"same-as-mix\"\ndescription = \"the base again\"\n",
            &text[..cut]
        ),
    )
    .unwrap();
    let out2 = dir.path().join("exp2");
    let o = musicdiff(&[
        "experiment",
        s(&again),
        "--out",
        s(&out2),
        "--resamples",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the same training finished in"),
        "{}",
        stderr(&o)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("arms/same-as-mix/result.json")).unwrap())
            .unwrap();
    assert!(
        r["reused_from"].as_str().unwrap().ends_with("exp/arms/mix"),
        "{}",
        r["reused_from"]
    );
    assert_eq!(r["steps"], 20);
    assert_eq!(r["train_curve"], arms[0]["train_curve"]);
    let md = std::fs::read_to_string(out2.join("report.md")).unwrap();
    assert!(md.contains("was not trained again"), "{md}");
}

#[test]
fn bad_experiment_configs_exit_2_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let base = tiny_config();
    for (text, want) in [
        (
            format!(
                "base = \"{}\"\ndata = \"x\"\n[budget]\nsteps = 5\n[[arm]]\nname = \"a\"\nset.masks.fulll = 1.0\n",
                s(&base)
            ),
            "fulll",
        ),
        (
            format!(
                "base = \"{}\"\ndata = \"x\"\n[budget]\nsteps = 5\n",
                s(&base)
            ),
            "no [[arm]]",
        ),
        (
            "base = \"/nonexistent/base.toml\"\ndata = \"x\"\n[budget]\nsteps = 5\n[[arm]]\nname = \"a\"\n"
                .to_string(),
            "/nonexistent/base.toml",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let o = musicdiff(&["experiment", s(&path), "--out", s(&dir.path().join("o"))]);
        assert_eq!(o.status.code(), Some(2), "{want}: {}", stderr(&o));
        assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
        assert!(!dir.path().join("o").exists(), "no output for a bad config");
    }
    let ok = format!(
        "base = \"{}\"\ndata = \"x\"\n[budget]\nsteps = 5\n[[arm]]\nname = \"a\"\n",
        s(&base)
    );
    std::fs::write(&path, ok).unwrap();
    let o = musicdiff(&["experiment", s(&path), "--only", "b"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no arm `b`"), "{}", stderr(&o));
}
