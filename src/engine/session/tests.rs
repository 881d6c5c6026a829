use super::*;

#[test]
fn id_set_grows_past_small_and_keeps_dedup() {
    let mut ids = IdSet::Small(ThinVec::new());
    for i in 0..200u64 {
        assert!(ids.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
    assert!(matches!(ids, IdSet::Large(_)));
    for i in 0..200u64 {
        assert!(!ids.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
}

#[test]
fn progress_of_further_journeys_and_the_cart_share_the_lines() {
    let mut s = Session::new(0, 1_000, Channel::Direct, Device::Desktop, 0);
    s.add_to_cart(1, 5);
    s.set_progress(
        0,
        Progress {
            reached: 2,
            at_ms: 0,
        },
        false,
    );
    s.set_progress(
        2,
        Progress {
            reached: 3,
            at_ms: 7,
        },
        false,
    );
    s.add_to_cart(1, 4);
    s.set_progress(
        2,
        Progress {
            reached: 4,
            at_ms: 9,
        },
        false,
    );
    assert_eq!(
        s.progress(0, true),
        Progress {
            reached: 2,
            at_ms: 1_000
        }
    );
    assert_eq!(
        s.progress(1, true),
        Progress {
            reached: 0,
            at_ms: 1_000
        }
    );
    assert_eq!(
        s.progress(2, true),
        Progress {
            reached: 4,
            at_ms: 9
        }
    );
    assert_eq!(s.single_cart(), Some((1, 9)));
    assert_eq!(s.lines.len(), 2);
    s.set_progress(
        0,
        Progress {
            reached: 3,
            at_ms: 5,
        },
        true,
    );
    assert_eq!(
        s.progress(0, true),
        Progress {
            reached: 3,
            at_ms: 5
        }
    );
    // A restored session notes its cart from its progress: slot 2 passed its cart stage 3.
    let j = |cart_stage| crate::journey::Journey {
        name: String::new(),
        ordered: false,
        open_entry: false,
        stages: Vec::new(),
        cart_stage,
        purchase_stage: None,
        friction_kinds: 0,
    };
    s.note_cart(&[j(Some(3)), j(None), j(None)]);
    assert!(!s.cart_open());
    s.note_cart(&[j(None), j(None), j(Some(3))]);
    assert!(s.cart_open());
    s.set_ordered();
    assert!(!s.cart_open() && s.has_cart());
}

#[test]
fn session_stays_small() {
    assert!(
        std::mem::size_of::<Session>() <= 56,
        "{}",
        std::mem::size_of::<Session>()
    );
}
