//! The runtime in real programs: C programs built here with the C compiler, run with and
//! without the runtime preloaded, their reports read back as typed events.
//!
//! No root needed: everything runs over loopback inside the programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use zcsafe_sanitizer_events::{
    read_log, Event, PrematureWrite, Summary, Writer, ABORT_ENV, REPORT_ENV,
};

/// The cdylib cargo built for these tests (target/debug/libzcsafe_sanitizer.so).
fn runtime() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libzcsafe_sanitizer.so");
    assert!(
        p.is_file(),
        "{} missing: cargo builds it with the tests",
        p.display()
    );
    p
}

/// Builds a C program once per test binary; the C compiler is required (.ci/run installs
/// gcc), so a failure is a failure, not a skip.
fn build(src: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = if src.contains('/') {
        dir.join(src)
    } else {
        dir.join("tests/programs").join(src)
    };
    let out = std::env::temp_dir().join(format!(
        "zcsafe-san-{}-{}",
        src.file_stem().unwrap().to_string_lossy(),
        std::process::id()
    ));
    // Tests run in parallel and build the same programs: one build at a time, or a second
    // `cc` replaces the file a first test is running (its maps then say "(deleted)").
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let st = Command::new(&cc)
            .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cc}: {e} (install gcc)"));
        assert!(st.success(), "{cc} failed on {}", src.display());
    }
    out
}

struct Run {
    out: Output,
    events: Vec<Event<'static>>,
}

impl Run {
    fn writes(&self) -> Vec<&PrematureWrite<'static>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::PrematureWrite(p) => Some(p),
                _ => None,
            })
            .collect()
    }
    /// The summary of the process that tracked submissions (the forked receiver tracks none).
    fn summary(&self) -> Summary {
        let all: Vec<Summary> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Summary(s) => Some(*s),
                _ => None,
            })
            .collect();
        assert!(!all.is_empty(), "no summary: {:?}", self.events);
        all.into_iter().max_by_key(|s| s.tracked).unwrap()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
}

fn run(program: &Path, args: &[&str], sanitized: bool, abort: bool) -> Run {
    let report = std::env::temp_dir().join(format!(
        "zcsafe-san-report-{}-{:?}.jsonl",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&report);
    let mut c = Command::new(program);
    c.args(args);
    if sanitized {
        std::fs::File::create(&report).unwrap();
        c.env("LD_PRELOAD", runtime()).env(REPORT_ENV, &report);
        if abort {
            c.env(ABORT_ENV, "1");
        }
    }
    let out = c.output().unwrap();
    let events = if sanitized {
        let e = read_log(&report).unwrap();
        std::fs::remove_file(&report).unwrap();
        e
    } else {
        Vec::new()
    };
    Run { out, events }
}

#[test]
fn a_correct_sender_runs_to_its_end_with_the_same_output_and_no_report() {
    let p = build("../examples/sanitize/zc_pages.c");
    let plain = run(&p, &["--mode", "wait"], false, false);
    assert!(plain.out.status.success(), "{plain:?}", plain = plain.out);
    for i in 0..3 {
        let s = run(&p, &["--mode", "wait"], true, false);
        assert!(s.out.status.success(), "run {i}: {:?}", s.out);
        assert_eq!(
            s.stdout(),
            plain.stdout(),
            "run {i}: output differs under the sanitizer"
        );
        assert!(s.stdout().contains("0 wrong"), "{}", s.stdout());
        assert_eq!(s.writes(), Vec::<&PrematureWrite<'_>>::new(), "run {i}");
        let sum = s.summary();
        assert_eq!(sum.tracked, 64, "{sum:?}");
        assert_eq!(sum.released + sum.released_by_close, 64, "{sum:?}");
        assert!(sum.released >= 60, "released by notifications: {sum:?}");
        // the pages were shared: writes beside held bytes happened and proceeded, and
        // every iteration's read(2) wrote into a page that was protected
        assert!(sum.other_writes > 0 && sum.syscall_lifts >= 64, "{sum:?}");
        assert_eq!(sum.protect_failures, 0);
    }
}

#[test]
fn a_sender_that_reuses_before_the_notification_is_flagged_on_every_run() {
    let p = build("../examples/sanitize/zc_pages.c");
    for i in 0..3 {
        let s = run(&p, &["--mode", "early"], true, false);
        assert!(s.out.status.success(), "run {i}: {:?}", s.out);
        let w = s.writes();
        // every refill from the fifth on undoes the send four iterations before
        let ids: Vec<u32> = w.iter().map(|p| p.submission.zc_id).collect();
        assert_eq!(ids, (0..60).collect::<Vec<u32>>(), "run {i}");
        for p in &w {
            assert_eq!(p.addr, p.range_start, "the refill starts at the buffer");
            assert_eq!(p.range_len, 48 << 10);
            assert_eq!(
                p.notified_through, None,
                "the program never read its error queue"
            );
            let Writer::Instruction { module, .. } = &p.writer else {
                panic!("a store of the program: {p:?}");
            };
            assert_eq!(module.as_deref(), Some(p_path(&s)));
        }
        assert!(s.summary().premature_writes >= 60);
    }
}

/// The program file the runtime saw (its Start event).
fn p_path(r: &Run) -> &str {
    r.events
        .iter()
        .find_map(|e| match e {
            Event::Start(s) => Some(s.exe.as_ref()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn abort_stops_the_program_at_its_first_premature_write() {
    use std::os::unix::process::ExitStatusExt;
    let p = build("../examples/sanitize/zc_pages.c");
    let s = run(&p, &["--mode", "early"], true, true);
    assert_eq!(s.out.status.signal(), Some(libc::SIGSEGV), "{:?}", s.out);
    let w = s.writes();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].abort && w[0].submission.zc_id == 0);
    assert!(
        !s.stdout().contains("iterations"),
        "it stopped before the end"
    );
}

#[test]
fn the_programs_own_signal_handlers_keep_working() {
    let p = build("handlers.c");
    let plain = run(&p, &[], false, false);
    assert!(plain.out.status.success(), "{:?}", plain.out);
    let s = run(&p, &[], true, false);
    assert!(s.out.status.success(), "{:?}", s.out);
    assert_eq!(s.stdout(), plain.stdout());
    assert!(
        s.stdout().contains("handler: yes")
            && s.stdout().contains(
                "SIGSEGV handler ran 1 time(s), own SIGTRAP handler 1 time(s), heap[2000] = y"
            )
            && s.stdout().contains("as sent"),
        "{}",
        s.stdout()
    );
    let sum = s.summary();
    assert_eq!(sum.tracked, 1);
    assert!(
        sum.other_writes >= 1,
        "the write beside the held bytes faulted and proceeded: {sum:?}"
    );
    assert!(s.writes().is_empty());
}

#[test]
fn a_read_into_held_bytes_succeeds_and_is_reported_as_the_kernels_write() {
    let p = build("read_into.c");
    let s = run(&p, &[], true, false);
    assert!(
        s.out.status.success(),
        "the program saw an error: {:?}",
        s.out
    );
    assert_eq!(s.stdout(), "read returned 11: overwritten\n");
    let w = s.writes();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        w[0].writer,
        Writer::Syscall {
            call: "read".into()
        }
    );
    assert_eq!(w[0].addr - w[0].range_start, 1000);
    assert_eq!((w[0].range_len, w[0].submission.zc_id), (4096, 0));
}
