//! Where a program on the allow-list lives, and what else it needs to run.
//!
//! A program is looked up on the worker's `PATH`. When it lives under
//! `$HOME` (the command's own `PATH` has no `$HOME` entries), the command
//! gets read and execute rights on exactly the folders its toolchain needs,
//! never the rest of `$HOME`:
//!
//! | toolchain | found in | granted | never |
//! |---|---|---|---|
//! | rustup (`cargo`, `rustc`, …) | `$CARGO_HOME/bin` | `$CARGO_HOME/bin`, `$RUSTUP_HOME/toolchains` (read, execute); `$RUSTUP_HOME/settings.toml`, `$CARGO_HOME/registry`, `$CARGO_HOME/git` (read) | `$CARGO_HOME/credentials.toml`, `$CARGO_HOME/config.toml`, the rest of `$HOME` |
//! | pyenv (`python3`, `pytest` shims) | `$PYENV_ROOT/shims` | `$PYENV_ROOT/{bin,libexec,shims,versions,plugins}` (read, execute); `$PYENV_ROOT/version` (read) | the rest of `$HOME` |
//! | anything else under `$HOME` | its folder | that folder (read, execute) | `$HOME` itself: a program directly in it is refused |
//!
//! Builds run offline: cargo gets `CARGO_NET_OFFLINE=true` and its target
//! folder in the command's private `/tmp`; crates come from the registry
//! cache already in `$CARGO_HOME/registry` or from a vendored folder the
//! workspace names in its own `.cargo/config.toml`.

use std::path::{Path, PathBuf};

use super::SYSTEM_READ_EXEC;

/// What a program needs beyond the system folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grants {
    /// The program, an absolute path.
    pub program: PathBuf,
    /// Folders to read and execute.
    pub read_exec: Vec<PathBuf>,
    /// Files and folders to read.
    pub read: Vec<PathBuf>,
    /// Environment variables the toolchain needs.
    pub env: Vec<(String, String)>,
    /// Folders put first on the command's `PATH`.
    pub path: Vec<PathBuf>,
}

/// Finds `name` on the worker's `PATH` (the first executable file) and
/// what it needs, or says why it cannot run confined.
pub fn resolve(name: &str) -> Result<Grants, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("{name} is not on PATH"))?;
    grants_for(&found, home().as_deref())
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h.as_os_str().len() > 1)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn env_dir(var: &str, home: &Path, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(default))
}

fn in_system(p: &Path) -> bool {
    SYSTEM_READ_EXEC.iter().any(|s| p.starts_with(s))
}

/// The grants of the program at `found` (`home`: the user's home folder).
pub fn grants_for(found: &Path, home: Option<&Path>) -> Result<Grants, String> {
    let real = std::fs::canonicalize(found).unwrap_or_else(|_| found.to_path_buf());
    let mut g = Grants {
        program: found.to_path_buf(),
        ..Grants::default()
    };
    let under_home = |p: &Path| home.is_some_and(|h| p.starts_with(h));
    if !under_home(found) && !under_home(&real) {
        for p in [found, real.as_path()] {
            if !in_system(p)
                && let Some(dir) = p.parent()
            {
                push(&mut g.read_exec, dir);
            }
        }
        return Ok(g);
    }
    let Some(home) = home else {
        return Ok(g);
    };
    let cargo_home = env_dir("CARGO_HOME", home, ".cargo");
    let rustup_home = env_dir("RUSTUP_HOME", home, ".rustup");
    let pyenv_root = env_dir("PYENV_ROOT", home, ".pyenv");
    if found.starts_with(cargo_home.join("bin")) || real.starts_with(&rustup_home) {
        push(&mut g.read_exec, &cargo_home.join("bin"));
        push(&mut g.read_exec, &rustup_home.join("toolchains"));
        for p in [
            rustup_home.join("settings.toml"),
            cargo_home.join("registry"),
            cargo_home.join("git"),
        ] {
            if p.exists() {
                push(&mut g.read, &p);
            }
        }
        g.env.extend(
            [
                ("CARGO_HOME", cargo_home.display().to_string()),
                ("RUSTUP_HOME", rustup_home.display().to_string()),
                ("CARGO_NET_OFFLINE", "true".to_owned()),
                ("CARGO_TARGET_DIR", "/tmp/cargo-target".to_owned()),
                ("CARGO_TERM_COLOR", "never".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        g.path.push(cargo_home.join("bin"));
        return Ok(g);
    }
    if found.starts_with(&pyenv_root) || real.starts_with(&pyenv_root) {
        for sub in ["bin", "libexec", "shims", "versions", "plugins"] {
            let p = pyenv_root.join(sub);
            if p.exists() {
                push(&mut g.read_exec, &p);
            }
        }
        let version = pyenv_root.join("version");
        if version.exists() {
            push(&mut g.read, &version);
        }
        g.env
            .push(("PYENV_ROOT".to_owned(), pyenv_root.display().to_string()));
        g.env
            .push(("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()));
        g.path.push(pyenv_root.join("shims"));
        g.path.push(pyenv_root.join("bin"));
        return Ok(g);
    }
    for p in [found, real.as_path()] {
        let Some(dir) = p.parent() else { continue };
        if dir == home {
            return Err(format!(
                "{} lives directly in the home folder; granting its folder would expose all of $HOME",
                p.display()
            ));
        }
        if !in_system(dir) {
            push(&mut g.read_exec, dir);
        }
    }
    if let Some(dir) = found.parent() {
        g.path.push(dir.to_path_buf());
    }
    Ok(g)
}

fn push(list: &mut Vec<PathBuf>, p: &Path) {
    if !list.iter().any(|q| q == p) {
        list.push(p.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustup_gets_its_folders_and_never_its_credentials() {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join(".cargo/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(home.path().join(".cargo/registry")).unwrap();
        std::fs::write(home.path().join(".cargo/credentials.toml"), "token").unwrap();
        std::fs::write(bin.join("cargo"), "").unwrap();
        // CARGO_HOME and RUSTUP_HOME from the environment would win; the
        // test runs only where they are not set to somewhere else.
        if std::env::var_os("CARGO_HOME").is_some() || std::env::var_os("RUSTUP_HOME").is_some() {
            return;
        }
        let g = grants_for(&bin.join("cargo"), Some(home.path())).unwrap();
        let all: Vec<&PathBuf> = g.read_exec.iter().chain(&g.read).collect();
        assert!(all.contains(&&bin));
        assert!(all.contains(&&home.path().join(".rustup/toolchains")));
        for p in &all {
            assert!(
                *p != home.path() && *p != &home.path().join(".cargo"),
                "{p:?} exposes credentials"
            );
        }
        assert!(
            g.env
                .iter()
                .any(|(k, v)| k == "CARGO_NET_OFFLINE" && v == "true")
        );
    }

    #[test]
    fn a_program_directly_in_home_is_refused_and_system_ones_need_nothing() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("tool"), "").unwrap();
        assert!(grants_for(&home.path().join("tool"), Some(home.path())).is_err());
        let g = grants_for(Path::new("/usr/bin/sort"), Some(home.path())).unwrap();
        assert!(g.read_exec.is_empty() && g.read.is_empty());
    }
}
