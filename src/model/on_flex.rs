//! Run-time dispatch to xp's own CPU kernels.
//!
//! The model code is generic over `B: Backend`; a few operations have kernels of xp's own for
//! burn's CPU backend (burn-flex), where burn's composite operations copy or allocate more than
//! they need. [`classify`] tells, at run time, which backend a tensor is on: plain burn-flex
//! (inference), `Autodiff<burn-flex>` (training: the kernel comes with its own backward pass),
//! or any other (CUDA), which keeps burn's operations.

use std::any::Any;

use burn::backend::Autodiff;
use burn::backend::flex::{Flex, FlexTensor};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::FloatTensor;

/// A tensor of a generic backend, sorted by the backend it is on.
pub(crate) enum OnFlex<B: Backend, const D: usize> {
    /// burn-flex, not tracked.
    Plain(Tensor<Flex, D>),
    /// burn-flex under autodiff (the trainer's backend).
    Tracked(Tensor<Autodiff<Flex>, D>),
    /// Any other backend.
    Other(Tensor<B, D>),
}

/// Which backend `x` is on (see [`OnFlex`]).
pub(crate) fn classify<B: Backend, const D: usize>(x: Tensor<B, D>) -> OnFlex<B, D> {
    let x: Box<dyn Any> = Box::new(x);
    let x = match x.downcast::<Tensor<Flex, D>>() {
        Ok(x) => return OnFlex::Plain(*x),
        Err(x) => x,
    };
    let x = match x.downcast::<Tensor<Autodiff<Flex>, D>>() {
        Ok(x) => return OnFlex::Tracked(*x),
        Err(x) => x,
    };
    OnFlex::Other(
        *x.downcast::<Tensor<B, D>>()
            .expect("the argument's own type"),
    )
}

/// `value` as `T`, which it is: for a result computed on the backend [`classify`] found, handed
/// back as the caller's generic type.
fn same_type<T: 'static>(value: impl Any) -> T {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<T>()
        .expect("the caller's type")
}

/// The float primitive inside `x`, which xp's kernels work on.
pub(crate) fn primitive<Bk: Backend, const D: usize>(x: Tensor<Bk, D>) -> FloatTensor<Bk> {
    x.into_primitive().tensor()
}

/// A kernel's result on backend `Bk` (the one [`classify`] found) as a tensor of the caller's
/// backend `B`, which is `Bk`.
pub(crate) fn to_caller<B: Backend, Bk: Backend, const D: usize>(
    out: FloatTensor<Bk>,
) -> Tensor<B, D> {
    same_type(Tensor::<Bk, D>::from_primitive(TensorPrimitive::Float(out)))
}

/// Whether `x` is a result no other tensor shares, laid out contiguously from the start of its
/// buffer: a kernel may then write its output into it in place.
pub(crate) fn is_fresh(x: &FlexTensor) -> bool {
    x.is_unique() && x.is_contiguous() && x.layout().start_offset() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_tensors_by_backend() {
        let device = Default::default();
        let plain = Tensor::<Flex, 1>::zeros([2], &device);
        assert!(matches!(classify(plain.clone()), OnFlex::Plain(_)));
        let tracked = Tensor::<Autodiff<Flex>, 1>::zeros([2], &device);
        assert!(matches!(classify(tracked), OnFlex::Tracked(_)));
        let back: Tensor<Flex, 1> = to_caller::<Flex, Flex, 1>(primitive(plain));
        assert_eq!(back.dims(), [2]);
    }
}
