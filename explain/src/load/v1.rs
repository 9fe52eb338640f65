//! Reading version 1 of the trace format (zcsafe before typed steps).
//!
//! Version 1 kept each step as an actor and two strings, and the metadata as names. The
//! names convert exactly; the steps keep their words as [`Event::Legacy`], with the one
//! piece of meaning version 1 spelled in them — the `WRONG` / `WHILE HELD` marks, and a
//! kernel receiver's corrupt-word count — read here, once, so nothing downstream ever
//! parses step text. Re-running the command that wrote the file gives a typed trace.

use serde::Deserialize;
use zcsafe_policy::{
    Actor, Backend, Event, Flag, Geometry, Holder, HostTransport, Page, PageHolders, Step, Trace,
    TraceProfile, TraceTransport, TransportClass, Verdict, TRACE_FORMAT_VERSION,
};

/// A version-1 trace, as it was written.
#[derive(Deserialize)]
pub(super) struct TraceV1 {
    #[serde(default)]
    policy: String,
    transport: String,
    backend: String,
    profile: String,
    geometry: Geometry,
    steps: Vec<StepV1>,
    verdict: Verdict,
    summary: String,
}

#[derive(Deserialize)]
struct StepV1 {
    actor: Actor,
    action: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    holders: Vec<PageHoldersV1>,
}

#[derive(Deserialize)]
struct PageHoldersV1 {
    page: String,
    content: Option<u64>,
    holders: Vec<Holder>,
}

impl TraceV1 {
    /// The same run in the current format; `Err` names the field that does not convert.
    pub(super) fn upgrade(self) -> Result<Trace, String> {
        let transport = match self.transport.parse::<TransportClass>() {
            Ok(class) => TraceTransport::Class(class),
            // Version 1 kept no loss or rate parameter: they read as 0.
            Err(_) => TraceTransport::Host(
                HostTransport::parse(&self.transport, 0, 0)
                    .map_err(|e| format!("transport: {e}"))?,
            ),
        };
        let backend: Backend = self.backend.parse().map_err(|e| format!("backend: {e}"))?;
        let profile = match self.profile.strip_prefix("probed:") {
            Some(release) => TraceProfile::Probed(release.to_string()),
            None => TraceProfile::Named(self.profile),
        };
        let steps = self
            .steps
            .into_iter()
            .map(StepV1::upgrade)
            .collect::<Result<_, _>>()?;
        Ok(Trace {
            format: TRACE_FORMAT_VERSION,
            policy: self.policy,
            transport,
            device: Default::default(),
            backend,
            profile,
            geometry: self.geometry,
            steps,
            verdict: self.verdict,
            summary: self.summary,
            scenario: None,
        })
    }
}

impl StepV1 {
    fn upgrade(self) -> Result<Step, String> {
        let flag = flag(self.actor, &self.action, &self.note);
        let holders = self
            .holders
            .into_iter()
            .map(|h| {
                Ok(PageHolders {
                    page: page(&h.page).ok_or_else(|| format!("page name {:?}", h.page))?,
                    content: h.content,
                    holders: h.holders,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Step {
            holders,
            ..Step::new(Event::Legacy {
                actor: self.actor,
                action: self.action,
                note: self.note,
                flag,
            })
        })
    }
}

/// The marks version 1 wrote in words: the model and simulator said `WRONG` and
/// `WHILE HELD`; the kernel's receiver reported a count of corrupt words.
fn flag(actor: Actor, action: &str, note: &str) -> Option<Flag> {
    let kernel_corrupt = actor == Actor::Receiver
        && action.contains(" corrupt word")
        && !action.contains("; 0 corrupt word");
    if note.contains("WRONG") || action.contains("WRONG") || kernel_corrupt {
        Some(Flag::WrongBytes)
    } else if note.contains("WHILE HELD") {
        Some(Flag::ReuseWhileHeld)
    } else {
        None
    }
}

/// `buf[3]` or `file1[0]`.
fn page(name: &str) -> Option<Page> {
    let (head, index) = name.strip_suffix(']')?.split_once('[')?;
    let index: u16 = index.parse().ok()?;
    match head {
        "buf" => Some(Page::Buf(index)),
        _ => Some(Page::File(head.strip_prefix("file")?.parse().ok()?, index)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_and_marks_convert() {
        assert_eq!(page("buf[3]"), Some(Page::Buf(3)));
        assert_eq!(page("file1[0]"), Some(Page::File(1, 0)));
        assert_eq!(page("copy"), None);
        assert_eq!(
            flag(Actor::App, "fill buf[0..1)", "REUSE WHILE HELD: buf[0]"),
            Some(Flag::ReuseWhileHeld)
        );
        assert_eq!(
            flag(Actor::Receiver, "read 4 bytes at 0: 3 corrupt words", ""),
            Some(Flag::WrongBytes)
        );
        assert_eq!(
            flag(
                Actor::Receiver,
                "Eof after 4 bytes in 1 reads; 0 corrupt words",
                ""
            ),
            None
        );
    }
}
