//! The `records` target: every on-disk decoder on arbitrary bytes, and the round trip wherever
//! a decode succeeds.
//!
//! Input: one selector byte, then the bytes to decode. For the block decoders (header,
//! superblock, free-map block, tree node) the bytes are padded or cut to one block, the next
//! two bytes of the input name the block it was read from, and when the selector's high bit is
//! set the block's checksum is recomputed first, so the decoders behind the checksum are
//! reached too.
//!
//! Properties:
//! - no decoder panics, whatever the bytes;
//! - a decoded value encodes to bytes that decode to the same value (semantic round trip);
//! - where the format is canonical (item keys, inode, directory-entry and extent values, the
//!   payload of a tree node), the encoding gives back exactly the input bytes.

use lcfs::alloc::freemap;
use lcfs::format::header::{self, BLOCK_SIZE, MAGIC};
use lcfs::format::records::{
    decode_dir_entry, decode_extent, decode_inode, decode_key, encode_dir_entry, encode_extent,
    encode_inode,
};
use lcfs::format::superblock::Superblock;
use lcfs::layer::LayerRecord;
use lcfs::tree::{Node, NodeRef};
use lcfs::{BlockDevice, BlockNo, MemDevice};

/// Blocks of the device a free-map block is decoded from.
const FREE_MAP_DEVICE_BLOCKS: u64 = 64;

/// Runs the decoder the first byte selects on the rest; panics on a broken property.
pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector & 0x7f {
        0..=3 => {
            let Some((at, block)) = block_input(rest, selector & 0x80 != 0) else { return };
            match selector & 0x7f {
                0 => check_header(&block, at),
                1 => check_superblock(&block, at),
                2 => check_free_map(&block, at),
                _ => check_node(&block, at),
            }
        }
        4 => check_key(rest),
        5 => check_canonical(rest, decode_inode, encode_inode),
        6 => check_canonical(rest, decode_dir_entry, encode_dir_entry),
        7 => check_canonical(rest, decode_extent, encode_extent),
        _ => check_layer_record(rest),
    }
}

/// The block number (two bytes) and one whole block; the checksum recomputed on request.
fn block_input(rest: &[u8], reseal: bool) -> Option<(BlockNo, Vec<u8>)> {
    let (at, bytes) = rest.split_first_chunk::<2>()?;
    let mut block = bytes.iter().copied().take(BLOCK_SIZE).collect::<Vec<u8>>();
    block.resize(BLOCK_SIZE, 0);
    if reseal {
        reseal_checksum(&mut block);
    }
    Some((BlockNo(u64::from(u16::from_le_bytes(*at))), block))
}

/// Recomputes the header checksum of a block that carries the magic: crc32c of the block with
/// the checksum field (bytes 32..36) taken as zero.
pub fn reseal_checksum(block: &mut [u8]) {
    if block.len() != BLOCK_SIZE || block.get(..4) != Some(&MAGIC.to_le_bytes()[..]) {
        return;
    }
    if let Some(field) = block.get_mut(32..36) {
        field.fill(0);
    }
    let crc = crc32c::crc32c(block).to_le_bytes();
    if let Some(field) = block.get_mut(32..36) {
        field.copy_from_slice(&crc);
    }
}

fn check_header(block: &[u8], at: BlockNo) {
    let Ok(h) = header::verify_any(block, at) else { return };
    let mut again = block.to_vec();
    header::seal(&mut again, &h);
    let back = header::verify(&again, at, h.kind).expect("a sealed header verifies");
    assert_eq!(back, h, "header round trip");
    assert_eq!(header::payload(&again), header::payload(block), "seal keeps the payload");
}

fn check_superblock(block: &[u8], at: BlockNo) {
    for device_blocks in [256, 1 << 20, u64::MAX] {
        let Ok(sb) = Superblock::decode(block, at, device_blocks) else { continue };
        assert_eq!(sb.slot(), at, "a superblock decodes only from its own slot");
        let again = sb.encode();
        let back = Superblock::decode(&again, at, device_blocks).expect("an encoded superblock");
        assert_eq!(back, sb, "superblock round trip");
    }
}

fn check_free_map(block: &[u8], at: BlockNo) {
    let dev = MemDevice::new(FREE_MAP_DEVICE_BLOCKS);
    if at.0 >= FREE_MAP_DEVICE_BLOCKS || dev.write(at.0, block).is_err() {
        return;
    }
    let Ok((extents, chain)) = freemap::load(&dev, at, 1, FREE_MAP_DEVICE_BLOCKS) else { return };
    assert_eq!(chain, vec![at], "a chain of one block");
    let generation = header::verify_any(block, at).expect("loaded, so verified").generation;
    let encoded = freemap::encode(&extents, &chain, generation);
    assert_eq!(encoded.len(), 1, "one block for one block's extents");
    for (b, bytes) in chain.iter().zip(&encoded) {
        dev.write(b.0, bytes).expect("the device takes the block back");
    }
    let back = freemap::load(&dev, at, 1, FREE_MAP_DEVICE_BLOCKS).expect("an encoded free map");
    assert_eq!(back, (extents, chain), "free-map round trip");
}

fn check_node(block: &[u8], at: BlockNo) {
    let Ok(node) = Node::decode(block, at) else { return };
    let h = header::verify_any(block, at).expect("decoded, so verified");
    assert_eq!(node.owner(), h.owner, "the node's owner is the header's");
    let again = node.encode(at, h.generation).expect("a decoded node has its children on disk");
    assert_eq!(header::payload(&again), header::payload(block), "node payload round trip");
    let back = Node::decode(&again, at).expect("an encoded node decodes");
    assert_eq!(summary(&back), summary(&node), "node round trip");
    assert_eq!(back.owner(), node.owner());
}

/// What a node holds, comparable (children by their `Debug` form: a decoded node's children
/// are all on disk, so that form is their pointer).
fn summary(node: &Node) -> (u8, Vec<(Vec<u8>, Vec<u8>)>, Vec<(Vec<u8>, String)>) {
    let items = node.items().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let children = node
        .children()
        .map(|(k, child)| {
            assert!(!matches!(child, NodeRef::Mem(_)), "a decoded node has no child in memory");
            (k.to_vec(), format!("{child:?}"))
        })
        .collect();
    (node.level(), items, children)
}

fn check_key(bytes: &[u8]) {
    let Ok(key) = decode_key(bytes) else { return };
    assert_eq!(key.encode(), bytes, "item keys are canonical");
    assert_eq!(decode_key(&key.encode()).ok(), Some(key));
}

/// A value codec whose encoding is canonical: decode, then encode, gives the input back.
fn check_canonical<T: PartialEq + std::fmt::Debug, E>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    let Ok(value) = decode(bytes) else { return };
    let again = encode(&value);
    assert_eq!(again, bytes, "canonical round trip of {value:?}");
}

fn check_layer_record(bytes: &[u8]) {
    let Ok(rec) = LayerRecord::decode(bytes, 0) else { return };
    let back = LayerRecord::decode(&rec.encode(), 0).expect("an encoded layer record");
    assert_eq!(back, rec, "layer record round trip");
}
