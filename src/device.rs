//! Where tensors live: the CPU backend (burn-flex, every core) or, in a build with the `cuda`
//! feature, an NVIDIA GPU. Commands that compute (`xp run`, `xp embed`) write their work once,
//! generic over burn's backends, as a [`BackendJob`], and [`on_device`] runs it on the backend
//! the user chose, turning the CUDA runtime's failures into one error a user can act on.

use anyhow::Result;
#[cfg(not(feature = "cuda"))]
use anyhow::bail;
use burn::tensor::backend::Backend;

/// Where a command computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// Work written once for every backend.
pub trait BackendJob {
    type Output;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Output>;
}

/// Runs `job` on `device`'s backend.
pub fn on_device<J: BackendJob>(device: Device, job: J) -> Result<J::Output> {
    match device {
        Device::Cpu => job.run::<crate::train::CpuBackend>(&Default::default()),
        Device::Cuda => on_cuda(job),
    }
}

#[cfg(feature = "cuda")]
fn on_cuda<J: BackendJob>(job: J) -> Result<J::Output> {
    use std::sync::{Arc, Mutex};
    // The CUDA runtime reports a missing GPU or driver by panicking, first in its worker
    // thread (with the driver's reason), then in ours. Keep the first message quietly and turn
    // it into an error the user can act on, instead of two panics and their backtraces.
    let first: Arc<Mutex<Option<String>>> = Default::default();
    let seen = Arc::clone(&first);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none() {
            *seen = Some(panic_text(info.payload()));
        }
    }));
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Before the backend first reads CubeCL's settings (see `kernel_cache`).
        crate::kernel_cache::configure();
        let device = burn::backend::cuda::CudaDevice::default();
        job.run::<burn::backend::Cuda>(&device)
    }));
    std::panic::set_hook(previous);
    match attempt {
        Ok(result) => result,
        Err(panic) => {
            let why = first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| panic_text(panic.as_ref()));
            anyhow::bail!(
                "the CUDA backend failed ({why}): is there an NVIDIA GPU with its driver, and \
                 CUDA_PATH pointing at a CUDA toolkit?"
            )
        }
    }
}

/// The message of a panic payload.
#[cfg(feature = "cuda")]
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into())
}

#[cfg(not(feature = "cuda"))]
fn on_cuda<J: BackendJob>(_: J) -> Result<J::Output> {
    bail!("this xp was built without CUDA: rebuild with `cargo build --release --features cuda`")
}
