//! What a person looks at is tested by looking at it.
//!
//! Figures (SVG timelines) and reports (the VM matrix HTML) are only right if a browser
//! shows them: an unescaped `<` in a label breaks the whole SVG, a missing script fails
//! quietly. This crate opens a local file in headless Chromium — a fresh profile, no
//! network, no GPU — and collects three things:
//!
//! - the DOM after load (`--dump-dom`): an XML parse error shows up as `<parsererror>`;
//! - every console message (`--enable-logging=stderr`): uncaught exceptions, failed
//!   loads, `console.error`. The pages zcsafe makes log nothing, so any message counts;
//! - a screenshot (`--screenshot`), decoded to count "ink": pixels that differ from the
//!   background. A blank page has none.
//!
//! Tests call [`for_tests`]: with no Chromium on the machine it prints the reason and the
//! number of pages it skipped, unless `ZCSAFE_REQUIRE_BROWSER=1` (CI), where a missing
//! browser fails the test.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The environment variable that turns a missing browser into a failure.
pub const REQUIRE_ENV: &str = "ZCSAFE_REQUIRE_BROWSER";
/// The environment variable that names the browser executable.
pub const EXE_ENV: &str = "ZCSAFE_CHROMIUM";

/// A browser that could not show a page.
#[derive(Debug, Error)]
pub enum BrowserError {
    #[error("no Chromium found (looked for ${EXE_ENV}, chromium, chromium-browser, google-chrome); install the Debian package `chromium`")]
    NotFound,
    #[error("{path}: no such file")]
    NoFile { path: PathBuf },
    #[error("running {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("chromium took longer than {0:?} on {1}")]
    Timeout(Duration, PathBuf),
    #[error("chromium wrote no screenshot for {path}; stderr tail: {stderr}")]
    NoScreenshot { path: PathBuf, stderr: String },
    #[error("the screenshot of {path} is not a PNG: {why}")]
    BadPng { path: PathBuf, why: String },
    #[error("{path} does not look right:\n  - {}", problems.join("\n  - "))]
    Problems {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// A headless Chromium.
#[derive(Clone, Debug)]
pub struct Chromium {
    exe: PathBuf,
    timeout: Duration,
}

/// What the browser showed.
#[derive(Clone, Debug)]
pub struct Page {
    pub path: PathBuf,
    /// The DOM after load, serialised.
    pub dom: String,
    /// Console messages, one per line as Chromium logged them.
    pub console: Vec<String>,
    /// The screenshot.
    pub png: Vec<u8>,
    /// Share of screenshot pixels that differ from the background (most common colour).
    pub ink: f64,
}

impl Page {
    /// Everything wrong with the page: console messages, a parse error, no ink.
    pub fn problems(&self, min_ink: f64) -> Vec<String> {
        let mut p: Vec<String> = self
            .console
            .iter()
            .map(|c| format!("console: {c}"))
            .collect();
        if self.dom.contains("<parsererror") {
            let detail = self
                .dom
                .split("<parsererror")
                .nth(1)
                .and_then(|s| s.split("error on").nth(1))
                .and_then(|s| s.split('<').next())
                .unwrap_or("");
            p.push(format!("the browser could not parse it: error on{detail}"));
        }
        if self.ink < min_ink {
            p.push(format!(
                "the page is (nearly) blank: {:.3} % of pixels differ from the background, need {:.3} %",
                self.ink * 100.0,
                min_ink * 100.0
            ));
        }
        p
    }

    /// Whether the DOM contains `text` (escaped as it appears in markup).
    pub fn shows(&self, text: &str) -> bool {
        self.dom.contains(text)
    }
}

impl Chromium {
    /// The browser named by `$ZCSAFE_CHROMIUM`, or the first of `chromium`,
    /// `chromium-browser`, `google-chrome` on `PATH`.
    pub fn find() -> Result<Chromium, BrowserError> {
        let candidates: Vec<PathBuf> = match std::env::var_os(EXE_ENV) {
            Some(p) => vec![PathBuf::from(p)],
            None => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                std::env::split_paths(&path)
                    .flat_map(|d| {
                        ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n))
                    })
                    .collect()
            }
        };
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .map(|exe| Chromium {
                exe,
                timeout: Duration::from_secs(90),
            })
            .ok_or(BrowserError::NotFound)
    }

    fn base(&self, profile: &Path) -> Command {
        let mut c = Command::new(&self.exe);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command, path: &Path) -> Result<(String, String), BrowserError> {
        let out_dir = tempfile::tempdir().map_err(|source| BrowserError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let (o, e) = (out_dir.path().join("out"), out_dir.path().join("err"));
        let file = |p: &Path| {
            std::fs::File::create(p).map_err(|source| BrowserError::Spawn {
                exe: self.exe.clone(),
                source,
            })
        };
        c.stdout(file(&o)?).stderr(file(&e)?);
        let mut child = c.spawn().map_err(|source| BrowserError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(BrowserError::Timeout(self.timeout, path.into()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(source) => {
                    return Err(BrowserError::Spawn {
                        exe: self.exe.clone(),
                        source,
                    })
                }
            }
        }
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        Ok((read(&o), read(&e)))
    }

    /// Opens `path` (a local file) in a `width` × `height` window and reports what it shows.
    pub fn open(&self, path: &Path, width: u32, height: u32) -> Result<Page, BrowserError> {
        let path = path
            .canonicalize()
            .map_err(|_| BrowserError::NoFile { path: path.into() })?;
        let url = format!("file://{}", path.display());
        let profile = tempfile::tempdir().map_err(|source| BrowserError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let mut c = self.base(profile.path());
        c.args(["--enable-logging=stderr", "--v=0", "--dump-dom", &url]);
        let (dom, log) = self.run(c, &path)?;
        let console = log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(|l| l.split("] ").nth(1).unwrap_or(l).to_string())
            .collect();

        let shot_dir = tempfile::tempdir().map_err(|source| BrowserError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let shot = shot_dir.path().join("shot.png");
        let profile = tempfile::tempdir().map_err(|source| BrowserError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let mut c = self.base(profile.path());
        c.arg(format!("--screenshot={}", shot.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(&url);
        let (_, err) = self.run(c, &path)?;
        let png = std::fs::read(&shot).map_err(|_| BrowserError::NoScreenshot {
            path: path.clone(),
            stderr: err.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
        })?;
        let ink = ink(&png).map_err(|why| BrowserError::BadPng {
            path: path.clone(),
            why,
        })?;
        Ok(Page {
            path,
            dom,
            console,
            png,
            ink,
        })
    }

    /// [`open`](Chromium::open), failing with every problem the page has.
    pub fn check(
        &self,
        path: &Path,
        width: u32,
        height: u32,
        min_ink: f64,
    ) -> Result<Page, BrowserError> {
        let page = self.open(path, width, height)?;
        let problems = page.problems(min_ink);
        if problems.is_empty() {
            Ok(page)
        } else {
            Err(BrowserError::Problems {
                path: page.path,
                problems,
            })
        }
    }
}

/// Share of pixels that differ from the most common colour.
pub fn ink(png_bytes: &[u8]) -> Result<f64, String> {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let bpp = info.color_type.samples() * usize::from(info.bit_depth as u8).div_ceil(8);
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(bpp).collect();
    if px.is_empty() {
        return Ok(0.0);
    }
    let mut counts = std::collections::HashMap::new();
    for p in &px {
        *counts.entry(*p).or_insert(0usize) += 1;
    }
    let background = counts.values().max().copied().unwrap_or(0);
    Ok((px.len() - background) as f64 / px.len() as f64)
}

/// The browser for a test, or `None` after printing why the test skips `pages` checks.
/// With `ZCSAFE_REQUIRE_BROWSER=1` a missing browser panics instead.
pub fn for_tests(what: &str, pages: usize) -> Option<Chromium> {
    match Chromium::find() {
        Ok(c) => Some(c),
        Err(e) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
            panic!("{REQUIRE_ENV}=1 but {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {pages} browser check(s) of {what}: {e} (set {REQUIRE_ENV}=1 to fail instead)");
            None
        }
    }
}
