//! The simulated machine's root filesystem, as the recipe stages it: every file
//! `recipe.toml`'s build script copies into `${COOKBOOK_STAGE}` (read from the
//! repository), every binary it installs (a name the simulated init maps to an
//! in-process program), plus files a test adds (base's own units, overrides).

use std::collections::BTreeMap;
use std::path::Path;

/// One installed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file's bytes.
    File(Vec<u8>),
    /// A built binary (`target/${TARGET}/release/<name>`).
    Program(String),
}

/// Where an installed file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A built binary (`target/${TARGET}/release/<name>`).
    Program(String),
    /// A file of the repository (`${COOKBOOK_SOURCE}/<path>`).
    Repository(String),
}

/// One `cp` of the recipe's build script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// Installed path (under the stage, starting with `/`).
    pub path: String,
    /// What is copied there.
    pub source: Source,
}

/// The installs of a `recipe.toml` (its text): the build script's
/// `cp -v "<src>" "${COOKBOOK_STAGE}<dst>"` lines, in order, with
/// `for bin in …; do …; done` expanded. A `cp` with other than two operands,
/// a destination outside the stage or a source that is neither a built
/// binary nor a repository file is an error.
pub fn recipe_installs(recipe: &str) -> Result<Vec<Install>, String> {
    let recipe: toml::Table = recipe.parse().map_err(|e| format!("recipe.toml: {e}"))?;
    let script = recipe
        .get("build")
        .and_then(|b| b.get("script"))
        .and_then(toml::Value::as_str)
        .ok_or("recipe.toml: no [build] script")?;
    let mut out = Vec::new();
    let mut loop_words: Vec<String> = Vec::new();
    for line in script.lines().map(str::trim) {
        if let Some(words) = line.strip_prefix("for bin in ") {
            loop_words = words.split_whitespace().map(str::to_string).collect();
            continue;
        }
        if line == "done" {
            loop_words.clear();
            continue;
        }
        let Some(rest) = line.strip_prefix("cp -v ") else {
            continue;
        };
        let operands: Vec<&str> = rest
            .split_whitespace()
            .map(|w| w.trim_matches('"'))
            .collect();
        let [src, dst] = operands[..] else {
            return Err(format!(
                "recipe.toml: cp with other than two operands: {line}"
            ));
        };
        let names = if loop_words.is_empty() {
            vec![String::new()]
        } else {
            loop_words.clone()
        };
        for name in names {
            let src = src.replace("${bin}", &name);
            let dst = dst.replace("${bin}", &name);
            let path = dst
                .strip_prefix("${COOKBOOK_STAGE}")
                .ok_or(format!("recipe.toml: {dst} is outside the stage"))?
                .to_string();
            let source = match src.strip_prefix("target/${TARGET}/release/") {
                Some(bin) => Source::Program(bin.to_string()),
                None => Source::Repository(
                    src.strip_prefix("${COOKBOOK_SOURCE}/")
                        .ok_or(format!("recipe.toml: {src} is not from the source"))?
                        .to_string(),
                ),
            };
            out.push(Install { path, source });
        }
    }
    Ok(out)
}

/// Installed paths → what is there.
#[derive(Clone, Debug, Default)]
pub struct Rootfs {
    entries: BTreeMap<String, Entry>,
}

impl Rootfs {
    /// What `recipe.toml` in `repo` installs (see [`recipe_installs`]).
    pub fn from_recipe(repo: &Path) -> Result<Rootfs, String> {
        let path = repo.join("recipe.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut fs = Rootfs::default();
        for install in recipe_installs(&text)? {
            let entry = match install.source {
                Source::Program(name) => Entry::Program(name),
                Source::Repository(rel) => {
                    Entry::File(std::fs::read(repo.join(&rel)).map_err(|e| format!("{rel}: {e}"))?)
                }
            };
            fs.entries.insert(install.path, entry);
        }
        Ok(fs)
    }

    /// Adds (or replaces) a file.
    pub fn add_file(&mut self, path: &str, contents: impl Into<Vec<u8>>) {
        self.entries
            .insert(path.to_string(), Entry::File(contents.into()));
    }

    /// Adds (or replaces) a program.
    pub fn add_program(&mut self, path: &str, name: &str) {
        self.entries
            .insert(path.to_string(), Entry::Program(name.to_string()));
    }

    /// What is at `path`.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The text of the file at `path`.
    pub fn text(&self, path: &str) -> Option<String> {
        match self.entries.get(path)? {
            Entry::File(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Entry::Program(_) => None,
        }
    }

    /// Names of the entries directly in `dir`, sorted by byte order.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.entries
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|name| !name.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// `config::config_for_dirs`: the files of `dirs` by name, a later directory's
    /// file replacing an earlier one of the same name, in byte order of name.
    pub fn config_for_dirs(&self, dirs: &[&str]) -> Vec<String> {
        let mut by_name = BTreeMap::new();
        for dir in dirs {
            for name in self.list(dir) {
                by_name.insert(
                    name.clone(),
                    format!("{}/{name}", dir.trim_end_matches('/')),
                );
            }
        }
        by_name.into_values().collect()
    }
}
