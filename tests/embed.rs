//! xp's DINOv2 and BERT against Hugging Face transformers: tiny models with every weight random,
//! saved in the hub's layout, and transformers' outputs on them
//! (`tests/fixtures/embed/make_fixtures.py` wrote both; it is run by hand, not here).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::SafeTensors;
use xp::embed::bert::Bert;
use xp::embed::dinov2::Dinov2;

type B = xp::train::CpuBackend;

/// The largest difference allowed between xp and transformers.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed")
}

struct Cases(Vec<u8>);

impl Cases {
    fn load() -> Cases {
        Cases(std::fs::read(fixtures().join("cases.safetensors")).unwrap())
    }
    fn view(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.0).unwrap()
    }
    fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let st = self.view();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("no {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (v, t.shape().to_vec())
    }
    fn i64(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let st = self.view();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("no {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::I64);
        let v = t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (v, t.shape().to_vec())
    }
}

fn max_diff<const D: usize>(ours: Tensor<B, D>, theirs: &[f32], shape: &[usize]) -> f32 {
    assert_eq!(ours.dims().to_vec(), shape, "shape");
    let ours = ours.into_data().to_vec::<f32>().unwrap();
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn dinov2_matches_transformers_at_the_trained_and_at_other_grids() {
    let device = Default::default();
    let model = Dinov2::<B>::load(&fixtures().join("dinov2-tiny"), &device).unwrap();
    let cases = Cases::load();
    // same: the trained 4 x 4 grid; up: 5 x 6 (resampled up, not square); down: 3 x 3;
    // odd: 18 x 13 pixels, whose last partial patches the convolution drops.
    for case in ["same", "up", "down", "odd"] {
        let (pixels, shape) = cases.f32(&format!("dinov2.pixels_{case}"));
        let shape: [usize; 4] = shape.try_into().unwrap();
        let out = model.forward(Tensor::from_data(TensorData::new(pixels, shape), &device));
        let (hidden, hidden_shape) = cases.f32(&format!("dinov2.hidden_{case}"));
        let (pooled, pooled_shape) = cases.f32(&format!("dinov2.pooled_{case}"));
        let dh = max_diff(out.last_hidden.clone(), &hidden, &hidden_shape);
        let dp = max_diff(out.cls(), &pooled, &pooled_shape);
        assert!(
            dh < TOLERANCE && dp < TOLERANCE,
            "{case}: hidden {dh}, pooled {dp}"
        );
    }
}

#[test]
fn dinov2_with_registers_matches_transformers_and_its_patch_mean_leaves_the_registers_out() {
    let device = Default::default();
    let model = Dinov2::<B>::load(&fixtures().join("dinov2-tiny-registers"), &device).unwrap();
    let cases = Cases::load();
    // Grids resampled up and down go through the antialiased bicubic of this variant.
    for case in ["same", "up", "down", "odd"] {
        let (pixels, shape) = cases.f32(&format!("dinov2.pixels_{case}"));
        let shape: [usize; 4] = shape.try_into().unwrap();
        let out = model.forward(Tensor::from_data(TensorData::new(pixels, shape), &device));
        let (hidden, hidden_shape) = cases.f32(&format!("registers.hidden_{case}"));
        let (pooled, pooled_shape) = cases.f32(&format!("registers.pooled_{case}"));
        let dh = max_diff(out.last_hidden.clone(), &hidden, &hidden_shape);
        let dp = max_diff(out.cls(), &pooled, &pooled_shape);
        assert!(
            dh < TOLERANCE && dp < TOLERANCE,
            "{case}: hidden {dh}, pooled {dp}"
        );
        // The patch mean is over transformers' tokens after CLS and the 3 registers.
        let [b, s, h] = [hidden_shape[0], hidden_shape[1], hidden_shape[2]];
        let mut mean = vec![0f32; b * h];
        for i in 0..b {
            for t in 4..s {
                for k in 0..h {
                    mean[i * h + k] += hidden[(i * s + t) * h + k] / (s - 4) as f32;
                }
            }
        }
        let dm = max_diff(out.patch_mean(), &mean, &[b, h]);
        assert!(dm < TOLERANCE, "{case}: patch mean {dm}");
    }
}

/// The tiny BERT and RoBERTa folders, by their prefix in the cases file.
const TEXT_MODELS: [(&str, &str); 2] = [("bert", "bert-tiny"), ("roberta", "roberta-tiny")];

#[test]
fn bert_and_roberta_match_transformers_on_a_padded_batch() {
    let device = Default::default();
    let cases = Cases::load();
    for (case, folder) in TEXT_MODELS {
        let model = Bert::<B>::load(&fixtures().join(folder), &device).unwrap();
        assert_eq!(model.architecture, case);
        let (ids, shape) = cases.i64(&format!("{case}.batch_ids"));
        let (mask, _) = cases.i64(&format!("{case}.mask"));
        let shape: [usize; 2] = shape.try_into().unwrap();
        assert!(mask.contains(&0), "the batch must have padding");
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &device);
        let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, shape), &device);
        let out = model.forward(ids, mask);
        let (hidden, hidden_shape) = cases.f32(&format!("{case}.hidden"));
        let (pooled, pooled_shape) = cases.f32(&format!("{case}.pooled"));
        let dh = max_diff(out.last_hidden, &hidden, &hidden_shape);
        let dp = max_diff(out.pooled.unwrap(), &pooled, &pooled_shape);
        assert!(
            dh < TOLERANCE && dp < TOLERANCE,
            "{case}: hidden {dh}, pooled {dp}"
        );
    }
}

#[test]
fn a_folder_without_weights_or_of_another_architecture_is_a_clear_error() {
    let device = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(
        fixtures().join("dinov2-tiny/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let err = Dinov2::<B>::load(dir, &device).err().unwrap().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("facebook/dinov2"),
        "{err}"
    );
    // BERT's weights under DINOv2's config: the first tensor looked up is named.
    std::fs::copy(
        fixtures().join("bert-tiny/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let err = format!("{:#}", Dinov2::<B>::load(dir, &device).err().unwrap());
    assert!(
        err.contains("has no tensor `embeddings.patch_embeddings"),
        "{err}"
    );
    // A config that says another architecture.
    let err = format!("{:#}", Bert::<B>::load(dir, &device).err().unwrap());
    assert!(err.contains("model_type is `dinov2`"), "{err}");
    // Weights whose shapes do not match the config.
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("dinov2-tiny/config.json")).unwrap())
            .unwrap();
    config["hidden_size"] = 32.into();
    config["num_attention_heads"] = 4.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixtures().join("dinov2-tiny/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let err = format!("{:#}", Dinov2::<B>::load(dir, &device).err().unwrap());
    assert!(
        err.contains("has shape") && err.contains("config.json says"),
        "{err}"
    );
}

#[test]
fn the_image_processor_and_model_match_transformers_from_raw_pixels() {
    use xp::embed::preprocess::ImageProcessor;
    let device = Default::default();
    let dir = fixtures().join("dinov2-tiny");
    let processor = ImageProcessor::load(&dir).unwrap();
    let model = Dinov2::<B>::load(&dir, &device).unwrap();
    let cases = Cases::load();
    let st = cases.view();
    let image = st.tensor("dinov2.image").unwrap();
    assert_eq!(image.dtype(), safetensors::Dtype::U8);
    let [h, w, _] = image.shape().try_into().unwrap();
    // 23 x 31 -> shortest edge 18 (18 x 24, PIL bicubic) -> centre crop 16 x 16.
    let (pixels, ph, pw) = processor.apply(image.data(), h, w).unwrap();
    let (processed, shape) = cases.f32("dinov2.processed");
    assert_eq!([1, 3, ph, pw].to_vec(), shape);
    let worst = pixels
        .iter()
        .zip(&processed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    // One 8-bit level is 1 / 255 / 0.225 = 0.017 after normalising: any rounding slip shows.
    assert!(worst < 1e-5, "preprocessing differs by {worst}");
    let out = model.forward(Tensor::from_data(
        TensorData::new(pixels, [1, 3, ph, pw]),
        &device,
    ));
    let (pooled, pooled_shape) = cases.f32("dinov2.image_pooled");
    let d = max_diff(out.cls(), &pooled, &pooled_shape);
    assert!(d < TOLERANCE, "pooled {d}");
}

#[test]
fn a_text_longer_than_the_model_is_read_in_overlapping_windows_as_transformers_gives_them() {
    use xp::embed::bert::TextPooling;
    let device = Default::default();
    let cases = Cases::load();
    for (case, folder) in TEXT_MODELS {
        let model = Bert::<B>::load(&fixtures().join(folder), &device).unwrap();
        let (ids, _) = cases.i64(&format!("{case}.ids_2"));
        assert!(
            ids.len() > model.max_positions,
            "{case}: the text must need windows"
        );
        let (windows, _) = cases.i64(&format!("{case}.windows"));
        assert_eq!(
            xp::embed::bert::window_starts(ids.len() - 2, model.max_positions - 2).len() as i64,
            windows[0],
            "{case}"
        );
        for (pooling, name) in [
            (TextPooling::Cls, "window_cls"),
            (TextPooling::Mean, "window_mean"),
        ] {
            let ours = model.embed_text(&ids, pooling);
            let (theirs, _) = cases.f32(&format!("{case}.{name}"));
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < TOLERANCE, "{case} {pooling:?}: {worst}");
        }
    }
}

#[test]
fn the_giant_models_swiglu_feed_forward_matches_transformers() {
    let device = Default::default();
    let model = Dinov2::<B>::load(&fixtures().join("dinov2-tiny-swiglu"), &device).unwrap();
    let cases = Cases::load();
    let (pixels, shape) = cases.f32("dinov2.pixels_up");
    let shape: [usize; 4] = shape.try_into().unwrap();
    let out = model.forward(Tensor::from_data(TensorData::new(pixels, shape), &device));
    let (hidden, hidden_shape) = cases.f32("swiglu.hidden_up");
    let d = max_diff(out.last_hidden, &hidden, &hidden_shape);
    assert!(d < TOLERANCE, "hidden {d}");
}

#[test]
fn the_tokenizer_gives_transformers_ids() {
    use xp::embed::bert::Tokenizer;
    let texts: Vec<String> =
        serde_json::from_slice(&std::fs::read(fixtures().join("texts.json")).unwrap()).unwrap();
    let cases = Cases::load();
    // WordPiece (BERT) and byte-level BPE (RoBERTa).
    for (case, folder) in TEXT_MODELS {
        let tokenizer = Tokenizer::load(&fixtures().join(folder)).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let (ids, _) = cases.i64(&format!("{case}.ids_{i}"));
            assert_eq!(tokenizer.ids(text).unwrap(), ids, "{case} text {i}");
        }
    }
}

/// For a user who has the real models: `make_fixtures.py OUT --dinov2 DIR --bert DIR` writes
/// transformers' outputs of the full-size models to `OUT/cases.safetensors`; then
/// `XP_EMBED_FULL=OUT XP_EMBED_DINOV2=DIR XP_EMBED_BERT=DIR cargo test --release --test embed
/// -- --ignored` compares xp's on the same inputs (no weights can be downloaded where CI runs).
#[test]
#[ignore = "needs full-size model folders: set XP_EMBED_FULL, XP_EMBED_DINOV2 and XP_EMBED_BERT"]
fn full_size_models_match_transformers() {
    let var = |name: &str| {
        PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set")))
    };
    let device = Default::default();
    let cases = Cases(std::fs::read(var("XP_EMBED_FULL").join("cases.safetensors")).unwrap());

    let dinov2 = Dinov2::<B>::load(&var("XP_EMBED_DINOV2"), &device).unwrap();
    let (pixels, shape) = cases.f32("full_dinov2.pixels");
    let shape: [usize; 4] = shape.try_into().unwrap();
    let out = dinov2.forward(Tensor::from_data(TensorData::new(pixels, shape), &device));
    let (pooled, pooled_shape) = cases.f32("full_dinov2.pooled");
    let d = max_diff(out.cls(), &pooled, &pooled_shape);
    println!("DINOv2 pooled: max |xp - transformers| = {d:e}");
    assert!(d < TOLERANCE, "DINOv2 pooled {d}");

    let bert = Bert::<B>::load(&var("XP_EMBED_BERT"), &device).unwrap();
    let (ids, shape) = cases.i64("full_bert.ids");
    let (mask, _) = cases.i64("full_bert.mask");
    let shape: [usize; 2] = shape.try_into().unwrap();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &device);
    let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, shape), &device);
    let (hidden, hidden_shape) = cases.f32("full_bert.hidden");
    let d = max_diff(bert.forward(ids, mask).last_hidden, &hidden, &hidden_shape);
    println!("BERT last hidden: max |xp - transformers| = {d:e}");
    assert!(d < TOLERANCE, "BERT hidden {d}");
}
