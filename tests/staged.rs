//! The staged schedule end to end: stage-1 runs are stored runs with stored weights, shared by
//! the variants that need the same one; stage 2 starts from exactly those weights; `xp export`
//! writes them out and `xp gc` keeps them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

fn experiment() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny_staged.yaml")
        .to_string_lossy()
        .into_owned()
}

/// (run id, experiment, variant) of every stored run, from SQL.
fn stored_runs(store: &Path) -> Vec<(String, String, String)> {
    let csv = xp_ok(
        store,
        &[
            "sql",
            "SELECT run_id, experiment, variant FROM runs ORDER BY experiment, variant",
            "--format",
            "csv",
        ],
    );
    csv.lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.splitn(3, ',').collect();
            let unquote = |s: &str| s.trim_matches('"').to_string();
            (unquote(cells[0]), unquote(cells[1]), unquote(cells[2]))
        })
        .collect()
}

/// The tensors of an exported run, read with the reference safetensors implementation.
fn exported(store: &Path, run: &str, dir: &Path) -> (BTreeMap<String, Vec<u8>>, serde_json::Value) {
    xp_ok(store, &["export", run, dir.to_str().unwrap()]);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            (name, view.data().to_vec())
        })
        .collect();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    (tensors, config)
}

fn with_prefix<'a>(
    tensors: &'a BTreeMap<String, Vec<u8>>,
    prefix: &str,
) -> BTreeMap<&'a str, &'a [u8]> {
    tensors
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect()
}

#[test]
fn a_shared_stage_one_trains_once_and_stage_two_starts_from_its_stored_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());

    // The plan: three stage-1 runs (keypoints and image shared by both variants), two grid runs.
    let dry = xp_ok(&store, &["run", &experiment(), "--dry-run"]);
    assert!(dry.contains("(2 runs, after 3 stage-1 runs"), "{dry}");
    for branch in ["keypoints", "image", "text"] {
        assert_eq!(
            dry.matches(&format!("stage1={branch}")).count(),
            1,
            "stage 1 of {branch} is planned once: {dry}"
        );
    }
    let out = xp_ok(&store, &["run", &experiment()]);
    assert!(out.contains("trained 5 runs"), "{out}");

    let runs = stored_runs(&store);
    assert_eq!(runs.len(), 5, "{runs:?}");
    let stage_one: BTreeMap<String, String> = runs
        .iter()
        .filter(|(_, e, _)| e == "tiny_staged/stage1")
        .map(|(id, _, v)| (v.trim_start_matches("stage1=").to_string(), id.clone()))
        .collect();
    assert_eq!(
        stage_one.keys().collect::<Vec<_>>(),
        ["image", "keypoints", "text"]
    );
    let fused = runs
        .iter()
        .find(|(_, e, v)| e == "tiny_staged" && v.contains("keypoints+image+text"))
        .unwrap();

    // Stage 2 kept its branches frozen: each branch of the fused model is its stage-1 run's
    // stored tensors, bit for bit (a fresh initialisation would differ in every tensor).
    let (fused_tensors, fused_config) = exported(&store, &fused.0, &tmp.path().join("fused"));
    for (branch, id) in &stage_one {
        assert_eq!(fused_config["stage_one"][branch.as_str()], id.as_str());
        let (alone, _) = exported(&store, id, &tmp.path().join(branch));
        let prefix = format!("{branch}.");
        let a = with_prefix(&alone, &prefix);
        assert!(!a.is_empty());
        assert_eq!(
            with_prefix(&fused_tensors, &prefix),
            a,
            "the {branch} branch of stage 2 is not its stage-1 weights"
        );
    }
    assert!(!with_prefix(&fused_tensors, "fusion.").is_empty());

    // Done is done: nothing trains again, and a stage-1 run a new variant shares is reused.
    let again = xp_ok(&store, &["run", &experiment()]);
    assert!(again.contains("trained 0 runs"), "{again}");
    let wider = tmp.path().join("wider.yaml");
    let text = std::fs::read_to_string(experiment()).unwrap().replace(
        "[[keypoints, image], [keypoints, image, text]]",
        "[[keypoints, image], [keypoints, text]]",
    );
    std::fs::write(&wider, text).unwrap();
    let more = xp_ok(&store, &["run", wider.to_str().unwrap()]);
    assert!(
        more.contains("trained 1 runs"),
        "only the new stage 2: {more}"
    );

    // gc keeps the weights of every run it keeps; export still reads them; the store verifies.
    xp_ok(&store, &["gc"]);
    xp_ok(&store, &["verify"]);
    exported(&store, &fused.0, &tmp.path().join("after-gc"));

    // A rerun of stage 2 from the stored stage-1 weights gives the same numbers and weights.
    let regen = xp_ok(&store, &["leaderboard", "tiny_staged", "--regenerate"]);
    assert!(regen.contains("every number is identical"), "{regen}");

    // Exporting into a folder that holds an export already is refused, and changes nothing.
    let before = std::fs::read(tmp.path().join("fused/model.safetensors")).unwrap();
    let refused = xp_out(
        &store,
        &[
            "export",
            &fused.0,
            tmp.path().join("fused").to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read(tmp.path().join("fused/model.safetensors")).unwrap(),
        before
    );
}
