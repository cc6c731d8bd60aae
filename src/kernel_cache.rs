//! Where the CUDA backend keeps its compiled kernels and autotune results between runs.
//!
//! burn-cuda compiles each kernel the first time it runs and times candidate kernels for each
//! new shape (autotuning), which makes a run's first steps slow (the first CUDA run of the GPU
//! check in BENCHMARKS.md took 36 s, the next ones 10-24 s). CubeCL can keep both on disk, but
//! by default it compiles every kernel anew in each process, and keeps its autotune results in
//! the `target/` folder of the nearest Cargo project above the working folder (else the user's
//! cache folder), so they move with where `xp` is started. `xp` points both caches at one
//! folder of its own, with a subfolder per GPU model and driver (compiled kernels are not
//! portable between them, and CubeCL's compiled-kernel cache is not keyed by either):
//!
//! - `XP_KERNEL_CACHE=DIR`, if set (`off`: no caches on disk);
//! - else `$XDG_CACHE_HOME/xp/kernels`, else `$HOME/.cache/xp/kernels`.
//!
//! CubeCL's own settings take precedence: a `cubecl.toml`, or a `burn.toml` with a `[cubecl]`
//! section, in the working folder or above it. Its environment variables
//! (`CUBECL_AUTOTUNE_LEVEL`, `CUBECL_DEBUG_LOG`, ...) apply either way.
//!
//! A cached kernel is the same compiled code, but a stored autotune result is the choice of an
//! earlier timing, and CubeCL's candidate kernels (tiled, tensor-core, ...) do not round alike:
//! with a cache, a run on CUDA uses the kernels an earlier run chose, so its last digits can
//! differ from those of a run that tuned afresh. CUDA runs are not bit-reproducible anyway (the
//! device is part of a run's id; the CPU backend is the reproducible one); `XP_KERNEL_CACHE=off`
//! tunes every process afresh.

use std::path::{Path, PathBuf};

/// The files CubeCL reads its settings from (cubecl-runtime's `RuntimeConfig`): its own, or a
/// section of burn's.
const OWN_FILES: [&str; 2] = ["cubecl.toml", "CubeCL.toml"];
const SECTION_FILES: [&str; 2] = ["burn.toml", "Burn.toml"];

/// The cache folder, from the environment as the module docs say; `None` for `off` or when
/// no home folder is known.
pub fn cache_dir(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("XP_KERNEL_CACHE") {
        return (dir != "off").then(|| PathBuf::from(dir));
    }
    let base = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("xp").join("kernels"))
}

/// A CubeCL settings file in `start` or a folder above it, which CubeCL would read itself.
pub fn settings_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let own = OWN_FILES.iter().map(|name| dir.join(name));
        let section = SECTION_FILES
            .iter()
            .map(|name| dir.join(name))
            .filter(|path| has_cubecl_section(path));
        own.filter(|path| path.is_file()).chain(section).next()
    })
}

/// Whether a `burn.toml` has a `[cubecl]` table (or one below it, `[cubecl.autotune]`).
fn has_cubecl_section(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines().any(|line| {
            let line = line.trim();
            line == "[cubecl]" || line.starts_with("[cubecl.")
        })
    })
}

/// The subfolder for this machine's GPUs and driver: their names as the NVIDIA driver lists
/// them (`/proc/driver/nvidia`), hashed; `unknown` where it lists nothing.
pub fn gpu_key(driver: &Path) -> String {
    let mut facts = Vec::new();
    if let Ok(version) = std::fs::read_to_string(driver.join("version")) {
        facts.extend(version.lines().next().map(str::to_string));
    }
    if let Ok(gpus) = std::fs::read_dir(driver.join("gpus")) {
        let mut models: Vec<String> = gpus
            .flatten()
            .filter_map(|gpu| std::fs::read_to_string(gpu.path().join("information")).ok())
            .filter_map(|info| {
                info.lines()
                    .find(|l| l.starts_with("Model:"))
                    .map(|l| l.trim().to_string())
            })
            .collect();
        models.sort();
        facts.extend(models);
    }
    if facts.is_empty() {
        return "unknown".into();
    }
    blake3::hash(facts.join("\n").as_bytes()).to_hex()[..16].to_string()
}

/// Points CubeCL's kernel and autotune caches at [`cache_dir`] / [`gpu_key`], once per process,
/// before the CUDA backend starts; returns the folder in use (`None`: CubeCL's own settings, or
/// none on disk). A folder that cannot be created leaves the caches off, with a warning.
#[cfg(feature = "cuda")]
pub fn configure() -> Option<PathBuf> {
    use std::sync::OnceLock;
    static CHOSEN: OnceLock<Option<PathBuf>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            use burn::cubecl::config::cache::CacheConfig;
            use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
            let here = std::env::current_dir().ok()?;
            if settings_file(&here).is_some() {
                return None;
            }
            let dir = cache_dir(|name| std::env::var(name).ok())?
                .join(gpu_key(Path::new("/proc/driver/nvidia")));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!(
                    "warning: no kernel cache ({}: {e}); CUDA kernels will be compiled anew",
                    dir.display()
                );
                return None;
            }
            // CubeCL applies its environment variables when it loads its settings, not to
            // settings given to it: apply them here.
            let mut config = CubeClRuntimeConfig::default().override_from_env();
            config.compilation.cache = Some(CacheConfig::File(dir.clone()));
            config.autotune.cache = CacheConfig::File(dir.clone());
            // Settings are fixed on first use; `OnceLock` makes this the only call, and it comes
            // before the backend's first read (`device::on_cuda`).
            CubeClRuntimeConfig::set(config);
            Some(dir)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_cache_folder_follows_the_environment() {
        let both = [("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")];
        assert_eq!(cache_dir(env(&both)), Some(PathBuf::from("/c/xp/kernels")));
        assert_eq!(
            cache_dir(env(&[("HOME", "/home/u")])),
            Some(PathBuf::from("/home/u/.cache/xp/kernels"))
        );
        let chosen = [("XP_KERNEL_CACHE", "/k"), ("HOME", "/home/u")];
        assert_eq!(cache_dir(env(&chosen)), Some(PathBuf::from("/k")));
        assert_eq!(cache_dir(env(&[("XP_KERNEL_CACHE", "off")])), None);
        // Empty values count as unset.
        let empty = [
            ("XP_KERNEL_CACHE", ""),
            ("XDG_CACHE_HOME", ""),
            ("HOME", "/h"),
        ];
        assert_eq!(
            cache_dir(env(&empty)),
            Some(PathBuf::from("/h/.cache/xp/kernels"))
        );
        assert_eq!(cache_dir(env(&[])), None);
    }

    #[test]
    fn a_cubecl_settings_file_above_the_working_folder_is_found() {
        let root = tempfile::tempdir().unwrap();
        let (a, deep) = (root.path().join("a"), root.path().join("a").join("b"));
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(settings_file(&deep), None);
        // A burn.toml without a [cubecl] section is not CubeCL's.
        std::fs::write(a.join("burn.toml"), "[fusion]\nx = 1\n").unwrap();
        assert_eq!(settings_file(&deep), None);
        std::fs::write(a.join("burn.toml"), "[cubecl.autotune]\nlevel = \"full\"\n").unwrap();
        assert_eq!(settings_file(&deep), Some(a.join("burn.toml")));
        // A folder named like the file is not a settings file; a nearer cubecl.toml wins.
        std::fs::create_dir(deep.join("cubecl.toml")).unwrap();
        assert_eq!(settings_file(&deep), Some(a.join("burn.toml")));
        std::fs::write(deep.join("CubeCL.toml"), "").unwrap();
        assert_eq!(settings_file(&deep), Some(deep.join("CubeCL.toml")));
    }

    #[test]
    fn the_cache_is_split_by_gpu_model_and_driver() {
        let driver = tempfile::tempdir().unwrap();
        assert_eq!(gpu_key(driver.path()), "unknown");
        let gpu = |name: &str, model: &str| {
            let dir = driver.path().join("gpus").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("information"),
                format!("Model: \t {model}\nIRQ: 1\n"),
            )
            .unwrap();
        };
        std::fs::write(driver.path().join("version"), "NVRM version: 580.1\nGCC\n").unwrap();
        gpu("0000:01:00.0", "NVIDIA H200");
        let h200 = gpu_key(driver.path());
        assert_eq!(h200.len(), 16);
        std::fs::write(driver.path().join("version"), "NVRM version: 580.2\nGCC\n").unwrap();
        let newer_driver = gpu_key(driver.path());
        assert_ne!(h200, newer_driver);
        gpu("0000:02:00.0", "NVIDIA H100");
        assert_ne!(gpu_key(driver.path()), newer_driver);
    }
}
