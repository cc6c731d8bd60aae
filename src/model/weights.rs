//! A model's parameters as plain named tensors: what the store keeps of a trained run, what
//! stage 2 starts from, and what `xp export` writes.
//!
//! A tensor is named by its path in the module tree, the field names joined by dots
//! (`keypoints.head.weight`, `image.encoder.layers.0.attention.query.weight`; an enum adds
//! its variant, e.g. `keypoints.backbone.Mlp.…`). The names follow the Rust structs, so a
//! renamed field is a load error that names the tensor, never a silent mismatch.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// One parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// Row-major float32 values.
    pub values: Vec<f32>,
}

/// A model's parameters, in the order the module visits them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    pub tensors: Vec<NamedTensor>,
}

impl Weights {
    /// Every float parameter of `module`.
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Weights {
        let mut reader = Reader {
            path: Vec::new(),
            tensors: Vec::new(),
        };
        module.visit(&mut reader);
        Weights {
            tensors: reader.tensors,
        }
    }

    /// The parameters' content address: blake3 over every tensor's name, shape and
    /// little-endian bytes, in order. Equal weights have equal hashes on every machine.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for t in &self.tensors {
            h.update(&(t.name.len() as u64).to_le_bytes());
            h.update(t.name.as_bytes());
            h.update(&(t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                h.update(&(*d as u64).to_le_bytes());
            }
            for v in &t.values {
                h.update(&v.to_le_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }

    pub fn params(&self) -> usize {
        self.tensors.iter().map(|t| t.values.len()).sum()
    }

    /// `module` with every float parameter replaced by the tensor of the same name. Every
    /// parameter must have one, of the same shape, and every tensor must be used: a model
    /// that does not match its weights is an error naming the tensor.
    pub fn load_into<B: Backend, M: Module<B>>(&self, module: M) -> Result<M> {
        let by_name: BTreeMap<&str, &NamedTensor> =
            self.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut writer = Writer {
            path: Vec::new(),
            by_name,
            used: 0,
            problems: Vec::new(),
        };
        let loaded = module.map(&mut writer);
        if let Some(first) = writer.problems.first() {
            bail!(
                "the weights do not fit the model: {first}{}",
                match writer.problems.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                }
            );
        }
        if writer.used != self.tensors.len() {
            let names: Vec<String> = Weights::of::<B, M>(&loaded)
                .tensors
                .into_iter()
                .map(|t| t.name)
                .collect();
            let extra: Vec<&str> = self
                .tensors
                .iter()
                .map(|t| t.name.as_str())
                .filter(|n| !names.iter().any(|m| m == n))
                .collect();
            bail!(
                "the weights hold tensors the model does not have: {}",
                extra.join(", ")
            );
        }
        Ok(loaded)
    }
}

fn joined(path: &[String]) -> String {
    path.join(".")
}

struct Reader {
    path: Vec<String>,
    tensors: Vec<NamedTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Reader {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("a float tensor converts to f32");
        self.tensors.push(NamedTensor {
            name: joined(&self.path),
            shape,
            values,
        });
    }
}

struct Writer<'a> {
    path: Vec<String>,
    by_name: BTreeMap<&'a str, &'a NamedTensor>,
    used: usize,
    problems: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Writer<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = joined(&self.path);
        let Some(stored) = self.by_name.get(name.as_str()) else {
            self.problems
                .push(format!("the model's tensor `{name}` is not in the weights"));
            return param;
        };
        param.map(|tensor| {
            let shape = tensor.dims().to_vec();
            if stored.shape != shape {
                self.problems.push(format!(
                    "tensor `{name}` has shape {:?} in the weights but {shape:?} in the model",
                    stored.shape
                ));
                return tensor;
            }
            self.used += 1;
            let grad = tensor.is_require_grad();
            let data = TensorData::new(stored.values.clone(), shape);
            Tensor::from_data(data, &tensor.device()).set_require_grad(grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{TestBackend as B, fused_batch, small_classifier, to_inner};
    use crate::model::{Backbone, Classifier};
    use burn::module::AutodiffModule;

    fn model(seed: u64) -> Classifier<B> {
        let dev = Default::default();
        <B as Backend>::seed(&dev, seed);
        small_classifier(Some(Backbone::Mlp), true, true).init::<B>(&dev)
    }

    #[test]
    fn names_follow_the_module_tree_and_cover_every_parameter() {
        let m = model(1);
        let w = Weights::of::<B, _>(&m);
        assert_eq!(w.params(), m.num_params());
        let names: Vec<&str> = w.tensors.iter().map(|t| t.name.as_str()).collect();
        // Paths are the struct fields: each branch under its own name, the fusion head last.
        assert!(names.iter().any(|n| n.starts_with("keypoints.")));
        assert!(names.iter().any(|n| n.starts_with("image.")));
        assert!(names.iter().any(|n| n.starts_with("text.")));
        assert!(names.iter().any(|n| n.starts_with("fusion.")));
        let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "tensor names are unique");
    }

    #[test]
    fn loaded_weights_reproduce_the_model_they_came_from() {
        let dev = Default::default();
        let trained = model(1);
        let fresh = model(2);
        let batch = fused_batch::<B>(&[40, 64], 64, 3, &[[1.0; 3], [1.0, 0.0, 1.0]], &dev);
        let logits = |m: &Classifier<B>| {
            m.valid()
                .forward(&to_inner(&batch))
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        assert_ne!(logits(&trained), logits(&fresh));
        let w = Weights::of::<B, _>(&trained);
        let loaded = w.load_into::<B, _>(fresh).unwrap();
        assert_eq!(logits(&loaded), logits(&trained));
        assert_eq!(Weights::of::<B, _>(&loaded).hash(), w.hash());
        // Loaded parameters still train.
        let grads = loaded.forward(&batch).sum().backward();
        let head = loaded.fusion.as_ref().unwrap();
        assert!(head.out.weight.grad(&grads).is_some());
    }

    #[test]
    fn weights_of_another_model_are_refused_with_the_tensor_named() {
        let dev = Default::default();
        let w = Weights::of::<B, _>(&model(1));
        // Another shape: a keypoint-only model lacks the image tensors, so loading them fails.
        let kp_only = small_classifier(Some(Backbone::Mlp), false, false).init::<B>(&dev);
        let err = w.load_into::<B, _>(kp_only).unwrap_err().to_string();
        assert!(err.contains("does not have"), "{err}");
        assert!(err.contains("image."), "{err}");
        // A missing tensor.
        let mut short = w.clone();
        let gone = short.tensors.remove(0).name;
        let err = short.load_into::<B, _>(model(3)).unwrap_err().to_string();
        assert!(
            err.contains(&gone) && err.contains("not in the weights"),
            "{err}"
        );
        // A wrong shape.
        let mut wrong = w.clone();
        wrong.tensors[0].shape.push(1);
        let err = wrong.load_into::<B, _>(model(3)).unwrap_err().to_string();
        assert!(err.contains("has shape"), "{err}");
    }

    #[test]
    fn the_hash_sees_every_value_and_name() {
        let w = Weights::of::<B, _>(&model(1));
        let mut v = w.clone();
        v.tensors[3].values[0] = f32::from_bits(v.tensors[3].values[0].to_bits() ^ 1);
        assert_ne!(w.hash(), v.hash());
        let mut n = w.clone();
        n.tensors[0].name.push('x');
        assert_ne!(w.hash(), n.hash());
    }
}
