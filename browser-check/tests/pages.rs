//! The harness must catch what it exists to catch: a script error, a broken SVG, a blank
//! page — and pass a good page.

use std::path::PathBuf;
use zcsafe_browser_check::{for_tests, BrowserError};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn catches_console_errors_parse_errors_and_blank_pages_and_passes_a_good_page() {
    let Some(c) = for_tests("the harness's own test pages", 4) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "good.svg",
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><rect width="200" height="100" fill="#fff"/><rect x="10" y="10" width="80" height="40" fill="#c00"/><text x="10" y="80">hello</text></svg>"##,
    );
    let page = c.check(&good, 400, 300, 0.01).expect("a good SVG passes");
    assert!(page.shows("hello"));

    let script = write(
        &dir,
        "script.html",
        "<html><body><h1>report</h1><script>undefinedFunction();</script></body></html>",
    );
    match c.check(&script, 400, 300, 0.001) {
        Err(BrowserError::Problems { problems, .. }) => {
            assert!(
                problems.iter().any(|p| p.contains("undefinedFunction")),
                "{problems:?}"
            )
        }
        other => panic!("a script error must fail: {other:?}"),
    }

    let broken = write(
        &dir,
        "broken.svg",
        r#"<svg xmlns="http://www.w3.org/2000/svg"><text>a < b</text></svg>"#,
    );
    match c.check(&broken, 400, 300, 0.0) {
        Err(BrowserError::Problems { problems, .. }) => {
            assert!(
                problems.iter().any(|p| p.contains("could not parse")),
                "{problems:?}"
            )
        }
        other => panic!("a broken SVG must fail: {other:?}"),
    }

    let blank = write(&dir, "blank.html", "<html><body></body></html>");
    match c.check(&blank, 400, 300, 0.001) {
        Err(BrowserError::Problems { problems, .. }) => {
            assert!(problems.iter().any(|p| p.contains("blank")), "{problems:?}")
        }
        other => panic!("a blank page must fail: {other:?}"),
    }
}
