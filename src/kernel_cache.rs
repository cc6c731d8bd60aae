//! Where the CUDA backend keeps its compiled kernels and autotune results between runs.
//!
//! burn-cuda compiles each kernel the first time it runs and times candidate kernels for each
//! new shape (autotuning): a minute or more before a run's first steps. CubeCL can keep both
//! on disk, but by default it compiles every kernel anew in each process, and keeps its
//! autotune results in the `target/` folder of the nearest Cargo project above the working
//! folder (else the user's cache folder), so they move with where `xp` is started. `xp` points
//! both caches at one folder of its own:
//!
//! - `XP_KERNEL_CACHE=DIR`, if set (`off`: no caches on disk);
//! - else `$XDG_CACHE_HOME/xp/kernels`, else `$HOME/.cache/xp/kernels`.
//!
//! A CubeCL settings file (`cubecl.toml`, or a `burn.toml` with a `[cubecl]` section) in the
//! working folder or above it takes precedence: then CubeCL's own settings are used as they
//! are. The caches never change results: a cached kernel is the same compiled code, and an
//! autotune result only picks among kernels that compute the same values.

use std::path::{Path, PathBuf};

/// The files CubeCL reads its settings from (cubecl-runtime's `RuntimeConfig` file names).
const SETTINGS_FILES: [&str; 4] = ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"];

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
        SETTINGS_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// Points CubeCL's kernel and autotune caches at [`cache_dir`], once per process, before the
/// CUDA backend starts; returns the folder in use (`None`: CubeCL's own settings, or none on
/// disk). A folder that cannot be created leaves the caches off, with a warning: a cache is
/// never worth failing a run for.
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
            let dir = cache_dir(|name| std::env::var(name).ok())?;
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!(
                    "warning: no kernel cache ({}: {e}); CUDA kernels will be compiled anew",
                    dir.display()
                );
                return None;
            }
            let mut config = CubeClRuntimeConfig::default();
            config.compilation.cache = Some(CacheConfig::File(dir.clone()));
            config.autotune.cache = CacheConfig::File(dir.clone());
            // Settings are fixed on first use; `OnceLock` makes this the only call.
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
        let deep = root.path().join("a").join("b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(settings_file(&deep), None);
        std::fs::write(root.path().join("a").join("burn.toml"), "[cubecl]\n").unwrap();
        assert_eq!(
            settings_file(&deep),
            Some(root.path().join("a").join("burn.toml"))
        );
        // A folder named like the file is not a settings file.
        std::fs::create_dir(deep.join("cubecl.toml")).unwrap();
        assert_eq!(
            settings_file(&deep),
            Some(root.path().join("a").join("burn.toml"))
        );
    }
}
