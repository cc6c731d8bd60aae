//! Embedding models xp knows the vector size of, so a file of the wrong size is caught at
//! ingest. Any other model needs `--dim`.

/// (name, dimension). Names as the model cards spell them, lower case.
pub const KNOWN: &[(&str, usize)] = &[
    ("dinov2-small", 384),
    ("dinov2-base", 768),
    ("dinov2-large", 1024),
    ("dinov2-giant", 1536),
    ("clip-vit-b-32", 512),
    ("clip-vit-l-14", 768),
    ("bert-base-uncased", 768),
    ("bert-base-cased", 768),
    ("bert-large-uncased", 1024),
    ("roberta-base", 768),
    ("all-minilm-l6-v2", 384),
];

/// The declared size of a known model.
pub fn known_dim(model: &str) -> Option<usize> {
    KNOWN
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(model))
        .map(|(_, d)| *d)
}

/// The size vectors of `model` must have: the known size, or `--dim`, which must agree with it.
pub fn expected_dim(model: &str, given: Option<usize>) -> Result<usize, String> {
    match (known_dim(model), given) {
        (Some(k), Some(g)) if k != g => Err(format!(
            "--dim {g} contradicts model {model}, whose vectors have {k} values"
        )),
        (Some(k), _) => Ok(k),
        (None, Some(g)) if g > 0 => Ok(g),
        (None, _) => Err(format!(
            "xp does not know the vector size of model `{model}`: pass --dim N (known models: {})",
            KNOWN
                .iter()
                .map(|(n, d)| format!("{n} {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A model name is used in part keys and SQL: keep it to a safe alphabet.
pub fn check_name(model: &str) -> Result<(), String> {
    let ok = !model.is_empty()
        && model.len() <= 64
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "model name `{model}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_are_checked_against_known_models() {
        assert_eq!(expected_dim("dinov2-base", None), Ok(768));
        assert_eq!(expected_dim("DINOv2-Base", Some(768)), Ok(768));
        assert!(expected_dim("dinov2-base", Some(384)).is_err());
        assert_eq!(expected_dim("my-model", Some(16)), Ok(16));
        assert!(
            expected_dim("my-model", None)
                .unwrap_err()
                .contains("--dim")
        );
        assert!(check_name("dinov2-base").is_ok());
        assert!(check_name("a/b").is_err());
    }
}
