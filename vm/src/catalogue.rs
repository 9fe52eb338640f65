//! The kernel catalogue (`vm/kernels.toml`): which Debian kernels a matrix can boot.

use crate::error::{Result, VmError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The catalogue shipped with zcsafe, compiled in so the binary works from any directory.
pub const BUILTIN: &str = include_str!("../kernels.toml");

/// Default Debian mirror; `ZCSAFE_DEBIAN_MIRROR` overrides the file's `mirror`.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(default = "default_mirror")]
    pub mirror: String,
    /// apt's `Acquire::Check-Valid-Until` (expiry of the signed Release file).
    #[serde(default = "yes")]
    pub check_valid_until: bool,
    #[serde(rename = "kernel", default)]
    pub kernels: Vec<KernelEntry>,
}

fn yes() -> bool {
    true
}

fn default_mirror() -> String {
    DEFAULT_MIRROR.to_string()
}

/// One bootable kernel: a meta package in one suite (or pinned packages).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KernelEntry {
    /// Short unique name used on the command line and in reports (`5.10`, `6.1-rt`).
    pub name: String,
    /// Debian suite (`bullseye`, `bookworm`, `trixie`, `sid`).
    pub suite: String,
    /// Upstream series, for version-prefix selection (`5.10`; `7` for sid).
    pub series: String,
    /// Meta package resolved to the concrete image packages of the day.
    #[serde(default)]
    pub meta: Option<String>,
    /// Exact packages instead of `meta`.
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub rt: bool,
    /// Part of `--kernels all`.
    #[serde(default)]
    pub default: bool,
}

impl Catalogue {
    pub fn parse(text: &str, origin: &str) -> Result<Catalogue> {
        let cat: Catalogue = toml::from_str(text).map_err(|e| VmError::Catalogue {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        cat.validate(origin)?;
        Ok(cat)
    }

    pub fn builtin() -> Catalogue {
        Catalogue::parse(BUILTIN, "vm/kernels.toml").expect("the built-in catalogue is valid")
    }

    pub fn load(path: &Path) -> Result<Catalogue> {
        let text = std::fs::read_to_string(path).map_err(|e| VmError::Catalogue {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Catalogue::parse(&text, &path.display().to_string())
    }

    /// The mirror to use: `ZCSAFE_DEBIAN_MIRROR`, else the file's.
    pub fn effective_mirror(&self) -> String {
        std::env::var("ZCSAFE_DEBIAN_MIRROR")
            .ok()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.mirror.clone())
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |message: String| VmError::Catalogue {
            path: origin.to_string(),
            message,
        };
        let mut seen = std::collections::BTreeSet::new();
        for k in &self.kernels {
            if k.name.is_empty()
                || !k
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c))
            {
                return Err(bad(format!(
                    "kernel name `{}` must be non-empty [A-Za-z0-9.-_+]",
                    k.name
                )));
            }
            if !seen.insert(k.name.as_str()) {
                return Err(bad(format!("kernel `{}` is listed twice", k.name)));
            }
            if k.meta.is_none() == k.packages.is_empty() {
                return Err(bad(format!(
                    "kernel `{}` needs exactly one of `meta` or `packages`",
                    k.name
                )));
            }
            if k.suite.is_empty()
                || !k
                    .suite
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(bad(format!(
                    "kernel `{}` has an invalid suite `{}`",
                    k.name, k.suite
                )));
            }
            let names = k.meta.iter().chain(&k.packages);
            for p in names {
                if p.is_empty()
                    || !p
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
                {
                    return Err(bad(format!(
                        "kernel `{}`: `{p}` is not a Debian package name",
                        k.name
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&KernelEntry> {
        self.kernels.iter().find(|k| k.name == name)
    }

    /// Resolves a `--kernels` list: `all` (defaults), `all-rt`, `all-generic`, `everything`,
    /// catalogue names, suites, or version prefixes (`5.10`, `7.2`). `host` is handled by
    /// the caller and skipped here. Order follows the catalogue; duplicates collapse.
    pub fn select(&self, list: &str) -> Result<Vec<&KernelEntry>> {
        let mut chosen = vec![false; self.kernels.len()];
        for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if token == "host" {
                continue;
            }
            let hits: Vec<usize> = match token {
                "all" => self.indices(|k| k.default),
                "all-rt" => self.indices(|k| k.rt),
                "all-generic" => self.indices(|k| k.name.ends_with("-generic")),
                "everything" => self.indices(|_| true),
                _ => {
                    let by_name = self.indices(|k| k.name == token);
                    if !by_name.is_empty() {
                        by_name
                    } else {
                        // A bare version or suite means the non-rt kernel(s) of that series.
                        let want_rt = token.ends_with("-rt");
                        let t = token.trim_end_matches("-rt");
                        self.indices(|k| {
                            k.rt == want_rt
                                && (k.default || want_rt)
                                && (k.suite == t || version_matches(&k.series, t))
                        })
                    }
                }
            };
            if hits.is_empty() {
                let names: Vec<&str> = self.kernels.iter().map(|k| k.name.as_str()).collect();
                return Err(VmError::UnknownKernel(token.to_string(), names.join(", ")));
            }
            for i in hits {
                chosen[i] = true;
            }
        }
        Ok(self
            .kernels
            .iter()
            .zip(chosen)
            .filter_map(|(k, c)| c.then_some(k))
            .collect())
    }

    fn indices(&self, f: impl Fn(&KernelEntry) -> bool) -> Vec<usize> {
        (0..self.kernels.len())
            .filter(|&i| f(&self.kernels[i]))
            .collect()
    }
}

/// `5.1` must not match series `5.10`; `7.2` matches series `7`; `6` matches `6.1` and `6.12`.
fn version_matches(series: &str, token: &str) -> bool {
    let s: Vec<&str> = series.split('.').collect();
    let t: Vec<&str> = token.split('.').collect();
    if t.iter().any(|p| p.parse::<u32>().is_err()) {
        return false;
    }
    s.iter().zip(&t).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_has_the_four_suites() {
        let c = Catalogue::builtin();
        for suite in ["bullseye", "bookworm", "trixie", "sid"] {
            assert!(
                c.kernels.iter().any(|k| k.suite == suite && k.default),
                "{suite}"
            );
            assert!(
                c.kernels.iter().any(|k| k.suite == suite && k.rt),
                "{suite} rt"
            );
        }
    }

    #[test]
    fn selection_by_name_prefix_suite_and_all() {
        let c = Catalogue::builtin();
        let names = |l: &str| -> Vec<String> {
            c.select(l)
                .unwrap()
                .iter()
                .map(|k| k.name.clone())
                .collect()
        };
        assert_eq!(names("all"), ["5.10", "6.1", "6.12", "sid"]);
        assert_eq!(names("5.10,7.2"), ["5.10", "sid"]);
        assert_eq!(names("6"), ["6.1", "6.12"]);
        assert_eq!(names("6.1"), ["6.1"]);
        assert_eq!(names("bookworm"), ["6.1"]);
        assert_eq!(names("6.1-rt"), ["6.1-rt"]);
        assert_eq!(names("7-rt"), ["sid-rt"]);
        assert_eq!(names("all-rt").len(), 4);
        assert_eq!(names("all-generic").len(), 4);
        assert_eq!(names("host"), Vec::<String>::new());
        assert!(matches!(c.select("4.19"), Err(VmError::UnknownKernel(..))));
        assert!(matches!(c.select("5.1"), Err(VmError::UnknownKernel(..))));
    }

    #[test]
    fn bad_catalogues_are_rejected_with_a_reason() {
        let err = |t: &str| Catalogue::parse(t, "t.toml").unwrap_err().to_string();
        assert!(err("[[kernel]]\nname='a'\nsuite='sid'\nseries='7'\n").contains("exactly one"));
        assert!(
            err("[[kernel]]\nname='a'\nsuite='sid'\nseries='7'\nmeta='x y'\n")
                .contains("package name")
        );
        let dup = "[[kernel]]\nname='a'\nsuite='sid'\nseries='7'\nmeta='x'\n";
        assert!(err(&format!("{dup}{dup}")).contains("twice"));
        assert!(err("[[kernel]]\nnme='a'\n").contains("t.toml"));
        assert!(err("mirror = 3").contains("t.toml"));
    }
}
