//! Property tests of the key schema: every key formats and parses back, with
//! and without a namespace, and every invalid id is rejected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proptest::prelude::*;
use swarmbus_core::{
    Channel, FindingId, Key, KeySpace, Namespace, QueryId, ShardId, TierName, WorkerId,
};

/// Valid textual ids: printable, no forbidden characters, 1..=128 bytes.
fn valid_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.@#%&+=!~^$|<>,;'\"-]{1,64}".prop_map(|s| s)
}

/// Ids that must be rejected: a valid stem with one forbidden character in it.
fn invalid_id() -> impl Strategy<Value = String> {
    let bad = prop_oneof![
        Just(':'),
        Just('*'),
        Just('?'),
        Just('['),
        Just(']'),
        Just('{'),
        Just('}'),
        Just(' '),
        Just('\t'),
        Just('\n'),
        Just('\u{0}'),
        Just('\u{7f}'),
        Just('\u{2003}'),
    ];
    ("[a-z0-9]{0,20}", bad, "[a-z0-9]{0,20}").prop_map(|(a, c, b)| format!("{a}{c}{b}"))
}

fn any_key() -> impl Strategy<Value = Key> {
    let uuid = any::<u128>().prop_map(uuid::Uuid::from_u128);
    prop_oneof![
        uuid.clone()
            .prop_map(|u| Key::Finding(FindingId::from_uuid(u))),
        uuid.clone()
            .prop_map(|u| Key::QueryArchive(QueryId::from_uuid(u))),
        uuid.prop_map(|u| Key::ResponseArchive(QueryId::from_uuid(u))),
        Just(Key::ContextActive),
        valid_id().prop_map(|s| Key::WorkerStatus(WorkerId::new(s).unwrap())),
        valid_id().prop_map(|s| Key::WorkerTasks(WorkerId::new(s).unwrap())),
        (1u32..=9999).prop_map(|n| Key::ShardStatus(ShardId::new(n).unwrap())),
        (1u32..=9999).prop_map(|n| Key::ShardQuota(ShardId::new(n).unwrap())),
        Just(Key::HaltReason),
        valid_id().prop_map(|s| Key::Cost(TierName::new(s).unwrap())),
    ]
}

proptest! {
    #[test]
    fn every_key_round_trips(key in any_key(), ns in proptest::option::of(valid_id())) {
        let space = match &ns {
            Some(ns) => KeySpace::namespaced(&Namespace::new(ns.clone()).unwrap()),
            None => KeySpace::plain(),
        };
        let text = space.format(&key);
        prop_assert_eq!(space.parse(&text).unwrap(), key.clone());
        if let Some(ns) = ns {
            let prefix = format!("{{{ns}}}:");
            prop_assert!(text.starts_with(&prefix));
        } else {
            prop_assert_eq!(text, key.to_string());
        }
    }

    #[test]
    fn every_invalid_id_is_rejected_and_named(bad in invalid_id()) {
        for result in [
            WorkerId::new(bad.clone()).map(|_| ()),
            TierName::new(bad.clone()).map(|_| ()),
            Namespace::new(bad.clone()).map(|_| ()),
        ] {
            let err = result.expect_err("must be rejected");
            let is_invalid_id = matches!(err, swarmbus_core::Error::InvalidId { .. });
            prop_assert!(is_invalid_id, "{:?}", err);
        }
    }

    #[test]
    fn over_long_ids_are_rejected(len in 129usize..400) {
        prop_assert!(WorkerId::new("a".repeat(len)).is_err());
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let _ = KeySpace::plain().parse(&s);
        let _ = s.parse::<Channel>();
        let _ = ShardId::parse(&s);
        let _ = FindingId::parse(&s);
    }
}

#[test]
fn an_invalid_id_names_the_input() {
    let err = WorkerId::new("haiku 1").unwrap_err();
    assert!(err.to_string().contains("haiku 1"), "{err}");
    assert!(err.to_string().contains("worker id"), "{err}");
    // Any valid id names a finding; an invalid one is named in the error.
    assert!(KeySpace::plain().parse("finding:nope").is_ok());
    let err = KeySpace::plain().parse("finding:no pe").unwrap_err();
    assert!(err.to_string().contains("no pe"), "{err}");
    assert!(err.to_string().contains("finding id"), "{err}");
}

#[test]
fn channels_round_trip() {
    let ns = KeySpace::namespaced(&Namespace::new("a").unwrap());
    for c in Channel::ALL {
        assert_eq!(ns.parse_channel(&ns.channel(c)).unwrap(), c);
        assert_eq!(KeySpace::plain().channel(c), c.as_str());
    }
}
