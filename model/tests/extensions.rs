//! The model's opt-in extensions for the shipped-bug reproducers: a pipe read by a local
//! process, and an io_uring SEND_ZC that fails and still posts its notification. Off in
//! the standard scenario, so no catalogue verdict depends on them.

use zcsafe_model::kernel::{Event, Kernel, Perform};
use zcsafe_model::Scenario;
use zcsafe_policy::{Op, Outcome, Profile, Region, TransportClass};

fn scenario() -> Scenario {
    Scenario::standard(TransportClass::Local, Profile::classic())
}

fn done(p: Perform) -> Outcome {
    match p {
        Perform::Done(o) => o,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn a_pipe_reader_sees_the_page_as_it_is_when_it_reads() {
    let mut s = scenario();
    assert!(
        !s.config.pipe_reader && s.config.uring_failures == 0,
        "off by default"
    );
    let mut k = Kernel::new(&s);
    let page = Region::new(0, 1);
    done(k.perform(
        &s,
        &Op::Fill {
            buf: page,
            stream: 0,
        },
    ));
    done(k.perform(
        &s,
        &Op::Vmsplice {
            buf: page,
            gift: false,
        },
    ));
    assert!(
        !k.enabled(&s).contains(&Event::PipeRead),
        "no reader unless asked"
    );
    s.config.pipe_reader = true;
    assert!(k.enabled(&s).contains(&Event::PipeRead));
    // Rewrite the page while the pipe still references it: the reader gets the new bytes.
    done(k.perform(
        &s,
        &Op::Fill {
            buf: page,
            stream: 3,
        },
    ));
    let c = k.fire(&s, Event::PipeRead).expect("corrupt");
    assert_eq!((c.offset, c.meant_for), (0, Some(3)));
    assert!(k.pipe.bufs.is_empty());
}

#[test]
fn a_failed_send_zc_posts_f_more_and_later_its_notif() {
    let mut s = scenario();
    s.config.uring_failures = 1;
    let mut k = Kernel::new(&s);
    let page = Region::new(0, 1);
    done(k.perform(
        &s,
        &Op::UringSendZc {
            buf: page,
            user_data: 7,
            opcode: Default::default(),
            link_timeout: None,
        },
    ));
    assert!(k.enabled(&s).contains(&Event::UringFail(0)));
    assert_eq!(k.fire(&s, Event::UringFail(0)), None);
    assert!(
        !k.enabled(&s).contains(&Event::UringFail(0)),
        "budget spent"
    );
    match done(k.perform(&s, &Op::UringWaitCqe)) {
        Outcome::Cqe(c) => assert!(c.res < 0 && c.more && !c.notif && c.user_data == 7),
        o => panic!("{o}"),
    }
    assert_eq!(
        k.perform(&s, &Op::UringWaitCqe),
        Perform::Blocked,
        "the NOTIF comes later"
    );
    k.fire(&s, Event::UringNotifFlush);
    match done(k.perform(&s, &Op::UringWaitCqe)) {
        Outcome::Cqe(c) => assert!(c.notif && c.user_data == 7),
        o => panic!("{o}"),
    }
}
