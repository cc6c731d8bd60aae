//! Which stored runs of an experiment are current: made by this code, with the configuration
//! the experiment has now. Reports group runs by what they computed (the resolved
//! configuration without the seed, and the code), never by the variant's name, so changing a
//! setting in the YAML can never mix old and new numbers in one row.

use std::collections::{BTreeMap, BTreeSet};

use super::results::RunRow;

/// A run as a report shows it.
#[derive(Debug, Clone)]
pub struct ShownRun<'a> {
    pub run: &'a RunRow,
    /// Runs with the same key are seeds of one configuration.
    pub group: String,
    /// The row's name: the variant, plus what sets it apart when it is not current.
    pub label: String,
    pub current: bool,
}

/// What a report shows of an experiment's runs.
#[derive(Debug, Default)]
pub struct Selection<'a> {
    pub shown: Vec<ShownRun<'a>>,
    /// Runs left out: older configurations or other code.
    pub hidden: usize,
    /// Of those, runs made by other code.
    pub hidden_other_code: usize,
}

/// The resolved configuration of a run without its seed and what follows from the seed (the
/// stage-1 runs of a staged run), device included (it changes the numbers), as canonical JSON.
pub fn config_key(run: &RunRow) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&run.config).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("seed");
        // A staged run's stage-1 ids follow from its config and seed: each seed has its own.
        map.remove("stage_one");
    }
    let mut text = value.to_string();
    // The data snapshot is part of what a run computed from.
    text.push_str(&run.data_snapshot);
    text
}

fn short_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..8].to_string()
}

/// Picks the runs to show. `planned`: the run ids the experiment file resolves to now, when the
/// caller has it; without it, the current configuration of each variant is the one whose
/// newest run started last, among the runs this code made. `all`: show every configuration,
/// each in a row of its own.
pub fn select<'a>(
    runs: &[&'a RunRow],
    planned: Option<&BTreeSet<String>>,
    code: &str,
    all: bool,
) -> Selection<'a> {
    let keys: Vec<String> = runs.iter().map(|r| config_key(r)).collect();
    // Per variant, (start time, config key) of the newest run this code made.
    let mut newest_config: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (r, key) in runs.iter().zip(&keys).filter(|(r, _)| r.code == code) {
        let entry = newest_config.entry(r.variant.as_str()).or_insert(("", ""));
        if r.started.as_str() >= entry.0 {
            *entry = (r.started.as_str(), key.as_str());
        }
    }
    let mut selection = Selection::default();
    for (&run, key) in runs.iter().zip(&keys) {
        let current = match planned {
            Some(ids) => ids.contains(&run.run_id),
            None => {
                run.code == code
                    && newest_config
                        .get(run.variant.as_str())
                        .is_some_and(|(_, k)| k == key)
            }
        };
        let device = if run.device == "cpu" {
            String::new()
        } else {
            format!(" [{}]", run.device)
        };
        let mut label = format!("{}{device}", run.variant);
        if run.code != code {
            label.push_str(&format!(
                " [other code {}]",
                &run.code[..8.min(run.code.len())]
            ));
        }
        if !current {
            label.push_str(&format!(" [config {}]", short_hash(key)));
        }
        if current || all {
            selection.shown.push(ShownRun {
                run,
                group: format!("{key}\n{}", run.code),
                label,
                current,
            });
        } else {
            selection.hidden += 1;
            selection.hidden_other_code += usize::from(run.code != code);
        }
    }
    selection
}

/// The one-line note about hidden runs, or None when nothing is hidden.
pub fn hidden_note(selection: &Selection) -> Option<String> {
    if selection.hidden == 0 {
        return None;
    }
    let why = match selection.hidden_other_code {
        0 => "an older configuration".to_string(),
        n if n == selection.hidden => "other code (another build of xp)".to_string(),
        n => format!("an older configuration or other code ({n} by other code)"),
    };
    Some(format!(
        "{} runs from {why} are hidden; `--all` shows them",
        selection.hidden
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, variant: &str, seed: u64, epochs: u32, code: &str, started: &str) -> RunRow {
        RunRow {
            run_id: id.into(),
            experiment: "e".into(),
            variant: variant.into(),
            seed,
            config: format!(r#"{{"seed":{seed},"device":"cpu","config":{{"epochs":{epochs}}}}}"#),
            data_snapshot: "d".into(),
            started: started.into(),
            train_seconds: 1.0,
            epochs_run: 1,
            best_epoch: 1,
            params: 1,
            train_videos: 1,
            pseudo_videos: 0,
            missing_videos: 0,
            threshold: 0.5,
            device: "cpu".into(),
            xp_version: "0.1.0".into(),
            code: code.into(),
        }
    }

    #[test]
    fn an_edited_setting_or_other_code_is_never_mixed_in() {
        let rows = [
            run("a0", "mlp", 0, 12, "new", "2026-01-01"),
            run("a1", "mlp", 1, 12, "new", "2026-01-01"),
            // The YAML's epochs changed: same variant name, new configuration.
            run("b0", "mlp", 0, 20, "new", "2026-02-01"),
            run("b1", "mlp", 1, 20, "new", "2026-02-01"),
            // Made by other code, newest of all.
            run("c0", "mlp", 0, 20, "old", "2026-03-01"),
        ];
        let refs: Vec<&RunRow> = rows.iter().collect();
        let s = select(&refs, None, "new", false);
        let ids: Vec<&str> = s.shown.iter().map(|r| r.run.run_id.as_str()).collect();
        assert_eq!(ids, ["b0", "b1"]);
        assert_eq!((s.hidden, s.hidden_other_code), (3, 1));
        assert_eq!(s.shown[0].group, s.shown[1].group);
        let note = hidden_note(&s).unwrap();
        assert!(note.contains("3 runs") && note.contains("--all"), "{note}");

        // --all: three groups, each labelled apart.
        let s = select(&refs, None, "new", true);
        let groups: BTreeSet<&str> = s.shown.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(groups.len(), 3);
        let labels: BTreeSet<&str> = s.shown.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert!(labels.iter().any(|l| l.contains("other code old")));

        // With the experiment's planned ids, exactly those are current.
        let planned: BTreeSet<String> = ["a0".to_string(), "a1".to_string()].into();
        let s = select(&refs, Some(&planned), "new", false);
        let ids: Vec<&str> = s.shown.iter().map(|r| r.run.run_id.as_str()).collect();
        assert_eq!(ids, ["a0", "a1"]);
    }

    #[test]
    fn the_seeds_of_a_staged_run_group_together_whatever_their_stage_one() {
        let staged = |id: &str, seed: u64| {
            let mut r = run(id, "fused", seed, 12, "new", "2026-01-01");
            r.config = format!(
                r#"{{"seed":{seed},"device":"cpu","config":{{"epochs":12}},"stage_one":{{"image":"s{seed}"}}}}"#
            );
            r
        };
        let rows = [staged("a0", 0), staged("a1", 1)];
        assert_eq!(config_key(&rows[0]), config_key(&rows[1]));
        let refs: Vec<&RunRow> = rows.iter().collect();
        let s = select(&refs, None, "new", false);
        assert_eq!(s.shown.len(), 2);
        assert_eq!(s.shown[0].group, s.shown[1].group);
    }
}
