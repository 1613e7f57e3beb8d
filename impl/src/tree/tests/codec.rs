//! The node codec: every node that fits round-trips; `decode` accepts exactly what `encode`
//! writes and turns anything else (garbage, truncation, flipped bits, hand-made bad payloads)
//! into `Error::Corrupt`, never a panic.

use quickcheck::quickcheck;

use super::super::node::{Body, Child, Item, Items, Node};
use super::super::{NodePtr, NodeRef, KEY_MAX, VALUE_MAX};
use crate::error::Error;
use crate::format::header::{self, BlockKind, Header, BLOCK_SIZE};
use crate::types::{BlockNo, Generation, LayerId};

const AT: BlockNo = BlockNo(77);

/// A pointer to a child on disk at `block`, written in generation 1.
fn disk(block: u64) -> NodeRef {
    NodeRef::Disk(NodePtr { block: BlockNo(block), generation: Generation(1) })
}

/// A leaf from arbitrary entries: clipped to the limits, sorted, deduplicated, cut to fit.
fn leaf(owner: u64, entries: Vec<(Vec<u8>, Vec<u8>)>, stretch: u16) -> Node {
    let mut items: Vec<Item> = entries
        .into_iter()
        .map(|(mut key, mut value)| {
            // Stretch some entries towards the limits, which quickcheck rarely reaches.
            key.resize((key.len() * usize::from(stretch % 40)).min(KEY_MAX), 0xA5);
            value.resize((value.len() * usize::from(stretch % 90)).min(VALUE_MAX), 0x5A);
            Item { key, value }
        })
        .collect();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    items.dedup_by(|a, b| a.key == b.key);
    let mut node = Node::new(LayerId(owner), Body::Leaf(Items::new()));
    for item in items {
        if let Body::Leaf(items) = &mut node.body {
            items.push(&item.key, &item.value, ());
        }
        if !node.fits() {
            if let Body::Leaf(items) = &mut node.body {
                items.pop();
            }
            break;
        }
    }
    node
}

/// An internal node from arbitrary separators and children.
fn internal(owner: u64, level: u8, entries: Vec<(Vec<u8>, u64)>) -> Node {
    let mut children: Vec<Child> = entries
        .into_iter()
        .filter(|(_, block)| *block != AT.0)
        .map(|(mut key, block)| {
            key.truncate(KEY_MAX);
            Child { key, node: disk(block) }
        })
        .collect();
    children.sort_by(|a, b| a.key.cmp(&b.key));
    children.dedup_by(|a, b| a.key == b.key);
    match children.first_mut() {
        Some(first) => first.key.clear(),
        None => children.push(Child { key: Vec::new(), node: disk(5) }),
    }
    children.dedup_by(|a, b| a.key == b.key);
    let children = children.into_iter().collect();
    let mut node = Node::new(LayerId(owner), Body::Internal { level, children });
    while !node.fits() {
        if let Body::Internal { children, .. } = &mut node.body {
            children.pop();
        }
    }
    node
}

/// Whether two nodes hold the same owner, level and entries (children compared by block).
fn same(a: &Node, b: &Node) -> bool {
    let block = |r: &NodeRef| match r {
        NodeRef::Disk(b) => Some(*b),
        NodeRef::Mem(_) => None,
    };
    a.owner() == b.owner()
        && a.level() == b.level()
        && a.items().eq(b.items())
        && a.children().map(|(k, c)| (k, block(c))).eq(b.children().map(|(k, c)| (k, block(c))))
}

fn round_trips(node: &Node) -> bool {
    let bytes = node.encode(AT, Generation(9)).unwrap();
    match Node::decode(&bytes, AT) {
        Ok(back) => same(node, &back) && back.encode(AT, Generation(9)).unwrap() == bytes,
        Err(e) => panic!("decode of an encoded node failed: {e}"),
    }
}

/// A block sealed with a valid header around `payload` (so only the payload checks can fail).
fn sealed(kind: BlockKind, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let n = payload.len().min(header::PAYLOAD_SIZE);
    header::payload_mut(&mut buf)[..n].copy_from_slice(&payload[..n]);
    let h = Header { kind, block: AT, generation: Generation(1), owner: LayerId(3) };
    header::seal(&mut buf, &h);
    buf
}

fn is_corrupt(bytes: &[u8]) -> bool {
    matches!(Node::decode(bytes, AT), Err(Error::Corrupt { .. }))
}

quickcheck! {
    fn leaves_round_trip(owner: u64, entries: Vec<(Vec<u8>, Vec<u8>)>, stretch: u16) -> bool {
        round_trips(&leaf(owner, entries, stretch))
    }

    fn internal_nodes_round_trip(owner: u64, level: u8, entries: Vec<(Vec<u8>, u64)>) -> bool {
        round_trips(&internal(owner, 1 + level % 15, entries))
    }

    /// Decode accepts only canonical encodings: whatever it accepts re-encodes to the same bytes.
    fn any_sealed_payload_is_refused_or_canonical(leaf_kind: bool, payload: Vec<u8>) -> bool {
        let kind = if leaf_kind { BlockKind::TreeLeaf } else { BlockKind::TreeInternal };
        let bytes = sealed(kind, &payload);
        match Node::decode(&bytes, AT) {
            Ok(node) => node.encode(AT, Generation(1)).unwrap() == bytes,
            Err(Error::Corrupt { .. }) => true,
            Err(_) => false,
        }
    }

    /// A flipped bit anywhere in a real node block is caught (by the checksum or a field check).
    fn flipped_bits_are_refused(entries: Vec<(Vec<u8>, Vec<u8>)>, byte: u16, bit: u8) -> bool {
        let mut bytes = leaf(4, entries, 7).encode(AT, Generation(2)).unwrap();
        bytes[usize::from(byte) % BLOCK_SIZE] ^= 1 << (bit % 8);
        is_corrupt(&bytes)
    }

    fn garbage_is_refused(bytes: Vec<u8>) -> bool {
        is_corrupt(&bytes)
    }

    fn truncated_blocks_are_refused(entries: Vec<(Vec<u8>, Vec<u8>)>, cut: u16) -> bool {
        let bytes = leaf(4, entries, 3).encode(AT, Generation(2)).unwrap();
        is_corrupt(&bytes[..usize::from(cut) % BLOCK_SIZE])
    }
}

#[test]
fn full_nodes_of_largest_entries_round_trip() {
    let items: Vec<Item> =
        (0u8..2).map(|i| Item { key: vec![i; KEY_MAX], value: vec![i; VALUE_MAX] }).collect();
    let node = Node::new(LayerId(1), Body::Leaf(items.into_iter().collect()));
    assert!(node.fits());
    assert!(round_trips(&node));
    let children: Vec<Child> = (0u16..13)
        .map(|i| {
            let mut key = i.to_be_bytes().to_vec();
            key.resize(if i == 0 { 0 } else { KEY_MAX }, 0);
            Child { key, node: disk(100 + u64::from(i)) }
        })
        .collect();
    let children = children.into_iter().collect();
    let node = Node::new(LayerId(1), Body::Internal { level: 15, children });
    assert!(node.fits());
    assert!(round_trips(&node));
}

#[test]
fn an_empty_leaf_round_trips() {
    assert!(round_trips(&Node::empty_leaf(LayerId(0))));
}

#[test]
fn encoding_a_node_with_a_child_in_memory_is_refused() {
    let child = NodeRef::Mem(std::sync::Arc::new(Node::empty_leaf(LayerId(1))));
    let children = [Child { key: Vec::new(), node: child }].into_iter().collect();
    let node = Node::new(LayerId(1), Body::Internal { level: 1, children });
    assert!(matches!(node.encode(AT, Generation(1)), Err(Error::InvalidArgument(_))));
}

/// Hand-made payloads, each breaking one rule of the layout.
#[test]
fn each_layout_rule_is_enforced() {
    use BlockKind::{TreeInternal as I, TreeLeaf as L};
    let leaf_entry = |k: &[u8], v: &[u8]| {
        let mut e = (k.len() as u16).to_le_bytes().to_vec();
        e.extend((v.len() as u16).to_le_bytes());
        e.extend(k);
        e.extend(v);
        e
    };
    let child_entry = |k: &[u8], b: u64| {
        let mut e = (k.len() as u16).to_le_bytes().to_vec();
        e.extend(b.to_le_bytes());
        e.extend(1u64.to_le_bytes());
        e.extend(k);
        e
    };
    let node = |level: u8, reserved: u8, count: u16, entries: &[Vec<u8>]| {
        let mut p = vec![level, reserved];
        p.extend(count.to_le_bytes());
        entries.iter().for_each(|e| p.extend(e));
        p
    };
    let good_leaf = node(0, 0, 2, &[leaf_entry(b"a", b"1"), leaf_entry(b"b", b"2")]);
    let good_internal = node(1, 0, 2, &[child_entry(b"", 5), child_entry(b"m", 6)]);
    assert!(Node::decode(&sealed(L, &good_leaf), AT).is_ok());
    assert!(Node::decode(&sealed(I, &good_internal), AT).is_ok());

    let bad: Vec<(&str, BlockKind, Vec<u8>)> = vec![
        (
            "leaf kind with level 1",
            L,
            node(1, 0, 2, &[leaf_entry(b"a", b""), leaf_entry(b"b", b"")]),
        ),
        ("internal kind with level 0", I, node(0, 0, 1, &[child_entry(b"", 5)])),
        ("level past DEPTH_MAX", I, node(16, 0, 1, &[child_entry(b"", 5)])),
        ("reserved byte set", L, node(0, 1, 0, &[])),
        (
            "count past the entries",
            L,
            node(0, 0, 3, &[leaf_entry(b"a", b"1"), leaf_entry(b"b", b"2")]),
        ),
        (
            "count below the entries",
            L,
            node(0, 0, 1, &[leaf_entry(b"a", b"1"), leaf_entry(b"b", b"2")]),
        ),
        ("keys out of order", L, node(0, 0, 2, &[leaf_entry(b"b", b"1"), leaf_entry(b"a", b"2")])),
        ("duplicate keys", L, node(0, 0, 2, &[leaf_entry(b"a", b"1"), leaf_entry(b"a", b"2")])),
        ("key too long", L, node(0, 0, 1, &[leaf_entry(&[1; KEY_MAX + 1], b"")])),
        ("value too long", L, node(0, 0, 1, &[leaf_entry(b"k", &[1; VALUE_MAX + 1])])),
        ("internal without children", I, node(1, 0, 0, &[])),
        ("child is the node itself", I, node(1, 0, 1, &[child_entry(b"", AT.0)])),
        (
            "separators out of order",
            I,
            node(1, 0, 3, &[child_entry(b"", 4), child_entry(b"z", 5), child_entry(b"m", 6)]),
        ),
        (
            "first separator not empty",
            I,
            node(1, 0, 2, &[child_entry(b"a", 5), child_entry(b"m", 6)]),
        ),
        ("separator too long", I, node(1, 0, 1, &[child_entry(&[1; KEY_MAX + 1], 5)])),
    ];
    for (what, kind, payload) in bad {
        assert!(is_corrupt(&sealed(kind, &payload)), "accepted: {what}");
    }
    let mut trailing = sealed(L, &good_leaf);
    trailing[BLOCK_SIZE - 1] = 1;
    let h = header::verify_any(&sealed(L, &good_leaf), AT).unwrap();
    header::seal(&mut trailing, &h);
    assert!(is_corrupt(&trailing), "accepted: nonzero bytes after the entries");
    assert!(is_corrupt(&sealed(BlockKind::FreeMap, &good_leaf)), "accepted: a free-map block");
    let elsewhere = sealed(L, &good_leaf);
    assert!(is_corrupt_at(&elsewhere, BlockNo(78)), "accepted: a misdirected block");
}

fn is_corrupt_at(bytes: &[u8], at: BlockNo) -> bool {
    matches!(Node::decode(bytes, at), Err(Error::Corrupt { .. }))
}
